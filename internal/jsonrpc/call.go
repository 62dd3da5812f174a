// Package jsonrpc is the one frame-level JSON-RPC client: Call, a request
// written and its answer read on a framed connection that nothing else
// reads meanwhile (the proxy's upstream handshake, the health probe), and
// Conn, a connection with its own reader that many goroutines call over
// and that hands the peer's notifications and requests over in order
// (the fake CLI's client, test clients of the proxy and the CLI).
package jsonrpc

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/rpcproxy/rpcproxy/internal/frame"
)

// Error is a JSON-RPC error object. Error() is its message alone, so it
// can be passed on to a client as it came.
type Error struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data,omitempty"`
}

func (e *Error) Error() string { return e.Message }

// AppendRequest appends a request with a numeric id; params is left out
// when empty.
func AppendRequest(b []byte, id uint64, method string, params json.RawMessage) []byte {
	b = append(b, `{"jsonrpc":"2.0","id":`...)
	b = strconv.AppendUint(b, id, 10)
	b = append(b, `,"method":`...)
	m, _ := json.Marshal(method) // a string always encodes
	b = append(b, m...)
	if len(params) > 0 {
		b = append(b, `,"params":`...)
		b = append(b, params...)
	}
	return append(b, '}')
}

// DecodeResponse splits a response body into its result or its error. An
// undecodable body is an *Error with code -32603 (internal error).
func DecodeResponse(body []byte) (json.RawMessage, *Error) {
	var resp struct {
		Result json.RawMessage `json:"result"`
		Error  *Error          `json:"error"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return nil, &Error{Code: -32603, Message: "peer sent an undecodable response"}
	}
	if resp.Error != nil {
		return nil, resp.Error
	}
	return resp.Result, nil
}

// Call writes the request (id, method, params), flushes it, and reads
// frames from r until the answer with that id: what else arrives meanwhile
// (notifications, the peer's own requests, stale answers) is dropped, so r
// must be read by nobody else during the call. Deadlines are the caller's,
// on the connection. A refusal by the peer is returned as *Error; any other
// error is the connection's and is wrapped with the method's name.
func Call(r *frame.Reader, w *frame.Writer, id uint64, method string, params json.RawMessage) (json.RawMessage, error) {
	if err := w.Write(AppendRequest(nil, id, method, params)); err != nil {
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	if err := w.Flush(); err != nil {
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	var want [20]byte
	wantID := strconv.AppendUint(want[:0], id, 10)
	var m frame.Meta
	for {
		buf, err := r.Read()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", method, err)
		}
		if frame.Scan(buf.B, &m) != nil || m.Kind != frame.KindResponse || string(m.ID.Of(buf.B)) != string(wantID) {
			buf.Release()
			continue
		}
		result, rerr := DecodeResponse(buf.B)
		buf.Release()
		if rerr != nil {
			return nil, rerr
		}
		return result, nil
	}
}
