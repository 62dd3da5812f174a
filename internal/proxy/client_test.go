package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/rpcproxy/rpcproxy/internal/jsonrpc"
)

// testClient is an SDK-like JSON-RPC client over a real socket: a
// jsonrpc.Conn whose calls are answered by id, and whose other messages
// are sorted into notifications, session events (per session) and
// server→client requests. A response to no id it waits for fails the test,
// as does an undecodable frame.
type testClient struct {
	t    testing.TB
	rpc  *jsonrpc.Conn
	conn net.Conn // rpc's connection: for closing it, or writing bytes no client would

	mu       sync.Mutex
	notes    chan message            // notifications without a session
	events   map[string]chan message // session.event per session
	requests chan message
	stop     chan struct{} // closed at cleanup: the sorter gives up a full channel
	closed   chan struct{} // closed when the connection has ended and all it sent is sorted
}

type message = jsonrpc.Message

func dialClient(t testing.TB, addr string) *testClient {
	t.Helper()
	rpc, err := jsonrpc.Dial(addr, jsonrpc.Config{})
	if err != nil {
		t.Fatalf("dial proxy: %v", err)
	}
	c := &testClient{
		t: t, rpc: rpc, conn: rpc.NetConn(),
		events:   make(map[string]chan message),
		notes:    make(chan message, 4096),
		requests: make(chan message, 64),
		stop:     make(chan struct{}),
		closed:   make(chan struct{}),
	}
	go c.sortIncoming()
	t.Cleanup(func() { close(c.stop); c.rpc.Close(); <-c.closed })
	return c
}

// sortIncoming hands what the proxy sends, other than answers, to the
// channel a test reads it from, until the connection ends.
func (c *testClient) sortIncoming() {
	defer close(c.closed)
	for {
		m, err := c.rpc.Next(context.Background())
		if err != nil {
			if errors.Is(err, jsonrpc.ErrBadMessage) {
				c.t.Errorf("client got undecodable frame: %v", err)
			}
			return
		}
		var to chan message
		switch {
		case m.IsRequest():
			to = c.requests
		case m.Method == "session.event":
			var p struct {
				SessionID string `json:"sessionId"`
			}
			json.Unmarshal(m.Params, &p)
			to = c.sessionEvents(p.SessionID)
		case m.Method != "":
			select {
			case c.notes <- m:
			default:
			}
			continue
		default:
			c.t.Errorf("response to unknown id %s", m.ID)
			continue
		}
		select {
		case to <- m:
		case <-c.stop:
			return
		}
	}
}

// start sends a request and returns the channel its answer arrives on.
func (c *testClient) start(method string, params any) chan message {
	c.t.Helper()
	ch := make(chan message, 1)
	if _, err := c.rpc.Go(method, params, ch); err != nil {
		c.t.Fatalf("write %s: %v", method, err)
	}
	return ch
}

// expect returns the channel the answer with the given raw id arrives on,
// for a request the test frames itself (raw).
func (c *testClient) expect(id string) chan message {
	ch := make(chan message, 1)
	c.rpc.Expect(json.RawMessage(id), ch)
	return ch
}

func wait(t testing.TB, ch chan message, what string) message {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(10 * time.Second):
		t.Fatalf("no answer to %s", what)
	}
	return message{}
}

// call sends a request and waits for its answer.
func (c *testClient) call(method string, params any) message {
	c.t.Helper()
	return wait(c.t, c.start(method, params), method)
}

// mustCall fails the test unless the call succeeds, and decodes the result into out.
func (c *testClient) mustCall(method string, params any, out any) {
	c.t.Helper()
	m := c.call(method, params)
	if m.Error != nil {
		c.t.Fatalf("%s: error %d %s", method, m.Error.Code, m.Error.Message)
	}
	if out != nil {
		if err := json.Unmarshal(m.Result, out); err != nil {
			c.t.Fatalf("%s: decode %s: %v", method, m.Result, err)
		}
	}
}

// raw frames and sends a body as it is.
func (c *testClient) raw(body string) {
	c.t.Helper()
	if err := c.rpc.WriteRaw([]byte(body)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// respond answers a server→client request.
func (c *testClient) respond(id json.RawMessage, result any) {
	c.t.Helper()
	if err := c.rpc.Reply(id, result); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *testClient) sessionEvents(sid string) chan message {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := c.events[sid]
	if ch == nil {
		ch = make(chan message, 1<<14)
		c.events[sid] = ch
	}
	return ch
}

type eventParams struct {
	SessionID string `json:"sessionId"`
	Event     struct {
		Type string `json:"type"`
		Data struct {
			Content string `json:"content"`
		} `json:"data"`
	} `json:"event"`
}

// waitIdle reads the session's events until session.idle and returns
// their types, in order, and the assistant.message content.
func (c *testClient) waitIdle(sid string) (types []string, content string) {
	c.t.Helper()
	ch := c.sessionEvents(sid)
	deadline := time.After(10 * time.Second)
	for {
		select {
		case m := <-ch:
			var p eventParams
			json.Unmarshal(m.Params, &p)
			types = append(types, p.Event.Type)
			if p.Event.Type == "assistant.message" {
				content = p.Event.Data.Content
			}
			if p.Event.Type == "session.idle" {
				return types, content
			}
		case <-deadline:
			c.t.Fatalf("session %s: no session.idle; saw %v", sid, types)
		}
	}
}

// waitAssistant waits for the end of the session's turn and returns the
// assistant's message.
func (c *testClient) waitAssistant(sid string) string {
	c.t.Helper()
	_, content := c.waitIdle(sid)
	return content
}

// closedByPeer waits until the proxy closes the connection.
func (c *testClient) closedByPeer(within time.Duration) bool {
	select {
	case <-c.closed:
		return true
	case <-time.After(within):
		return false
	}
}
