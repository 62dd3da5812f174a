package fakecli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"

	"github.com/rpcproxy/rpcproxy/internal/jsonrpc"
)

// Client is a small JSON-RPC client for tests and benchmarks, speaking to a
// fake or real CLI, or to the proxy in front of them: a jsonrpc.Conn that
// speaks in this package's types (RPCError, Message with Event). Calls may
// be made from several goroutines; notifications and server→client
// requests arrive, in order, through Next (or a RequestHandler).
type Client struct {
	conn *jsonrpc.Conn
}

// RequestHandler answers a server→client request on the Client's reader
// goroutine; it must return quickly. A nil *RPCError means success.
type RequestHandler func(method string, params json.RawMessage) (any, *RPCError)

// ClientQueue bounds the notifications and server requests a Client holds
// for Next; when it is full the Client stops reading until Next is called.
const ClientQueue = jsonrpc.DefaultQueue

// ErrClientClosed is wrapped by the errors of calls on a Client whose
// connection ended.
var ErrClientClosed = jsonrpc.ErrClosed

// Message is one JSON-RPC message as a Client sees it.
type Message struct {
	ID     json.RawMessage `json:"id,omitempty"`
	Method string          `json:"method,omitempty"`
	Params json.RawMessage `json:"params,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  *RPCError       `json:"error,omitempty"`
}

// IsRequest reports a server→client request (it has an id and a method).
func (m *Message) IsRequest() bool { return m.Method != "" && len(m.ID) > 0 }

// Event is a decoded session.event notification.
type Event struct {
	SessionID string
	Type      string
	ID        string
	ParentID  string
	Timestamp string
	Ephemeral bool
	Data      json.RawMessage
}

// Event decodes a session.event notification; ok is false for any other
// message.
func (m *Message) Event() (ev Event, ok bool) {
	if m.Method != "session.event" || len(m.ID) > 0 {
		return Event{}, false
	}
	var p struct {
		SessionID string `json:"sessionId"`
		Event     struct {
			Type      string          `json:"type"`
			ID        string          `json:"id"`
			ParentID  *string         `json:"parentId"`
			Timestamp string          `json:"timestamp"`
			Ephemeral bool            `json:"ephemeral"`
			Data      json.RawMessage `json:"data"`
		} `json:"event"`
	}
	if err := json.Unmarshal(m.Params, &p); err != nil {
		return Event{}, false
	}
	ev = Event{SessionID: p.SessionID, Type: p.Event.Type, ID: p.Event.ID, Timestamp: p.Event.Timestamp,
		Ephemeral: p.Event.Ephemeral, Data: p.Event.Data}
	if p.Event.ParentID != nil {
		ev.ParentID = *p.Event.ParentID
	}
	return ev, true
}

// Dial connects a Client to addr. It does not send connect; see Connect.
func Dial(addr string) (*Client, error) {
	conn, err := jsonrpc.Dial(addr, jsonrpc.Config{Queue: ClientQueue})
	if err != nil {
		return nil, fmt.Errorf("fakecli: %w", err)
	}
	return &Client{conn: conn}, nil
}

// NewClient runs a Client over an open connection, which it owns from then on.
func NewClient(nc net.Conn) *Client {
	return &Client{conn: jsonrpc.NewConn(nc, jsonrpc.Config{Queue: ClientQueue})}
}

// SetRequestHandler makes the Client answer server→client requests itself
// instead of handing them to Next. Nil restores Next.
func (c *Client) SetRequestHandler(h RequestHandler) {
	if h == nil {
		c.conn.SetRequestHandler(nil)
		return
	}
	c.conn.SetRequestHandler(func(method string, params json.RawMessage) (any, *jsonrpc.Error) {
		result, rerr := h(method, params)
		if rerr != nil {
			return nil, &jsonrpc.Error{Code: rerr.Code, Message: rerr.Message, Data: rerr.Data}
		}
		return result, nil
	})
}

// Connect sends the connect handshake with token ("" sends none).
func (c *Client) Connect(ctx context.Context, token string) error {
	params := map[string]any{"supportedTaskKinds": []string{"agent", "client", "shell"}}
	if token != "" {
		params["token"] = token
	}
	return c.Call(ctx, "connect", params, nil)
}

// Call sends a request and waits for its response, decoding the result into
// result when it is not nil. An error response is returned as *RPCError.
func (c *Client) Call(ctx context.Context, method string, params, result any) error {
	raw, err := c.conn.Call(ctx, method, params)
	if err != nil {
		var je *jsonrpc.Error
		if errors.As(err, &je) {
			return rpcError(je)
		}
		return fmt.Errorf("fakecli: %w", err)
	}
	if result != nil {
		if err := json.Unmarshal(raw, result); err != nil {
			return fmt.Errorf("fakecli: decoding %s result: %w", method, err)
		}
	}
	return nil
}

// Notify sends a notification.
func (c *Client) Notify(method string, params any) error { return c.conn.Notify(method, params) }

// Reply answers a server→client request with a result.
func (c *Client) Reply(id json.RawMessage, result any) error { return c.conn.Reply(id, result) }

// ReplyError answers a server→client request with an error.
func (c *Client) ReplyError(id json.RawMessage, e *RPCError) error {
	return c.conn.ReplyError(id, &jsonrpc.Error{Code: e.Code, Message: e.Message, Data: e.Data})
}

// WriteRaw sends body framed as it is, valid or not: for malformed-input tests.
func (c *Client) WriteRaw(body []byte) error { return c.conn.WriteRaw(body) }

// Next returns the next notification or server→client request (or answer
// to no call of this Client's).
func (c *Client) Next(ctx context.Context) (*Message, error) {
	m, err := c.conn.Next(ctx)
	if err != nil {
		return nil, err
	}
	out := &Message{ID: m.ID, Method: m.Method, Params: m.Params, Result: m.Result}
	if m.Error != nil {
		out.Error = rpcError(m.Error)
	}
	return out, nil
}

func rpcError(e *jsonrpc.Error) *RPCError {
	return &RPCError{Code: e.Code, Message: e.Message, Data: e.Data}
}

// Collect reads messages until a session.event of type until for the
// session, returning that session's events up to and including it. Other
// messages (lifecycle notifications, other sessions' events, and server
// requests when no RequestHandler is set) are discarded.
func (c *Client) Collect(ctx context.Context, sessionID, until string) ([]Event, error) {
	var evs []Event
	for {
		m, err := c.Next(ctx)
		if err != nil {
			return evs, err
		}
		ev, ok := m.Event()
		if !ok || ev.SessionID != sessionID {
			continue
		}
		evs = append(evs, ev)
		if ev.Type == until {
			return evs, nil
		}
	}
}

// Close closes the connection and waits for the reader. It is safe to call
// more than once.
func (c *Client) Close() error { return c.conn.Close() }

// Done is closed when the connection has ended.
func (c *Client) Done() <-chan struct{} { return c.conn.Done() }
