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
	"strconv"
	"time"

	"github.com/rpcproxy/rpcproxy/internal/frame"
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
	id := p.nextID
	body := []byte(`{"jsonrpc":"2.0","id":` + strconv.FormatUint(id, 10) + `,"method":"` + method + `"`)
	if params != nil {
		body = append(append(body, `,"params":`...), params...)
	}
	body = append(body, '}')
	if err := p.w.Write(body); err != nil {
		return nil, err
	}
	if err := p.w.Flush(); err != nil {
		return nil, err
	}
	var m frame.Meta
	for {
		buf, err := p.r.Read()
		if err != nil {
			return nil, err
		}
		if frame.Scan(buf.B, &m) != nil || m.Kind != frame.KindResponse || string(m.ID.Of(buf.B)) != strconv.FormatUint(id, 10) {
			buf.Release()
			continue
		}
		var resp struct {
			Result json.RawMessage `json:"result"`
			Error  *struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		err = json.Unmarshal(buf.B, &resp)
		buf.Release()
		if err != nil {
			return nil, fmt.Errorf("%s: undecodable answer: %w", method, err)
		}
		if resp.Error != nil {
			return nil, fmt.Errorf("%w %s: %d %s", errRefused, method, resp.Error.Code, resp.Error.Message)
		}
		return resp.Result, nil
	}
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
