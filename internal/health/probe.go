// Package health owns the state of every backend (up, down, draining): it
// probes each one actively on a connection of its own, takes passive
// reports of failures seen on live traffic, and rebuilds the routing ring
// whenever the routable set changes.
package health

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/rpcproxy/rpcproxy/internal/frame"
	"github.com/rpcproxy/rpcproxy/internal/jsonrpc"
	"github.com/rpcproxy/rpcproxy/internal/router"
)

// probe is the checker's own connection to one backend: connect once, then
// ping on every check. Owned by the backend's check goroutine.
type probe struct {
	b      *router.Backend
	conn   net.Conn
	r      *frame.Reader
	w      *frame.Writer
	nextID uint64
	info   json.RawMessage // the backend's connect result
}

// check makes sure the probe is connected and that the backend answers a
// ping within timeout. It returns the connect result on a new connection.
func (p *probe) check(timeout time.Duration) (fresh bool, err error) {
	deadline := time.Now().Add(timeout)
	if p.conn == nil {
		conn, err := net.DialTimeout("tcp", p.b.Addr, timeout)
		if err != nil {
			return false, err
		}
		p.conn, p.r, p.w = conn, frame.NewReader(conn, nil, frame.Limits{MaxBody: 1 << 20}), frame.NewWriter(conn)
		_ = conn.SetDeadline(deadline)
		params := json.RawMessage("{}")
		if p.b.Token != "" {
			params, _ = json.Marshal(map[string]string{"token": p.b.Token})
		}
		info, err := p.call("connect", params)
		if err != nil {
			p.close()
			return false, err
		}
		p.info = info
		fresh = true
	}
	_ = p.conn.SetDeadline(deadline)
	if _, err := p.call("ping", nil); err != nil {
		p.close()
		return false, err
	}
	return fresh, nil
}

// errRefused wraps a JSON-RPC error answer.
var errRefused = errors.New("backend refused")

func (p *probe) call(method string, params json.RawMessage) (json.RawMessage, error) {
	p.nextID++
	result, err := jsonrpc.Call(p.r, p.w, p.nextID, method, params)
	var re *jsonrpc.Error
	if errors.As(err, &re) {
		return nil, fmt.Errorf("%w %s: %d %s", errRefused, method, re.Code, re.Message)
	}
	return result, err
}

func (p *probe) close() {
	if p.conn != nil {
		p.conn.Close()
		p.conn = nil
	}
}

// protocolVersion reads protocolVersion from a connect or ping result.
func protocolVersion(info json.RawMessage) int {
	var v struct {
		ProtocolVersion int `json:"protocolVersion"`
	}
	_ = json.Unmarshal(info, &v)
	return v.ProtocolVersion
}
