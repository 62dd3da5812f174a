package proxy

import (
	"encoding/json"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/rpcproxy/rpcproxy/internal/frame"
)

// testClient is an SDK-like JSON-RPC client over a real socket: it sends
// requests with its own ids and sorts what comes back into responses (by
// id), notifications and server→client requests.
type testClient struct {
	t    testing.TB
	conn net.Conn
	w    *frame.Writer

	mu       sync.Mutex
	nextID   int
	waiting  map[string]chan message
	notes    chan message            // notifications without a session
	events   map[string]chan message // session.event per session
	requests chan message
	closed   chan struct{}
}

type message struct {
	ID     json.RawMessage `json:"id,omitempty"`
	Method string          `json:"method,omitempty"`
	Params json.RawMessage `json:"params,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  *rpcError       `json:"error,omitempty"`
}

func dialClient(t testing.TB, addr string) *testClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial proxy: %v", err)
	}
	c := &testClient{
		t: t, conn: conn, w: frame.NewWriter(conn),
		waiting:  make(map[string]chan message),
		events:   make(map[string]chan message),
		notes:    make(chan message, 4096),
		requests: make(chan message, 64),
		closed:   make(chan struct{}),
	}
	go c.readLoop()
	t.Cleanup(func() { c.conn.Close(); <-c.closed })
	return c
}

func (c *testClient) readLoop() {
	defer close(c.closed)
	r := frame.NewReader(c.conn, nil, frame.Limits{})
	for {
		buf, err := r.Read()
		if err != nil {
			return
		}
		var m message
		err = json.Unmarshal(buf.B, &m)
		buf.Release()
		if err != nil {
			c.t.Errorf("client got undecodable frame: %v", err)
			return
		}
		switch {
		case m.Method != "" && m.ID != nil:
			c.requests <- m
		case m.Method == "session.event":
			var p struct {
				SessionID string `json:"sessionId"`
			}
			json.Unmarshal(m.Params, &p)
			c.sessionEvents(p.SessionID) <- m
		case m.Method != "":
			select {
			case c.notes <- m:
			default:
			}
		default:
			c.mu.Lock()
			ch := c.waiting[string(m.ID)]
			delete(c.waiting, string(m.ID))
			c.mu.Unlock()
			if ch == nil {
				c.t.Errorf("response to unknown id %s", m.ID)
				continue
			}
			ch <- m
		}
	}
}

// start sends a request and returns the channel its answer arrives on.
func (c *testClient) start(method string, params any) chan message {
	c.t.Helper()
	c.mu.Lock()
	c.nextID++
	id := fmt.Sprint(c.nextID)
	ch := make(chan message, 1)
	c.waiting[id] = ch
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": c.nextID, "method": method, "params": params})
	c.w.Write(body)
	err := c.w.Flush()
	c.mu.Unlock()
	if err != nil {
		c.t.Fatalf("write %s: %v", method, err)
	}
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
	c.mu.Lock()
	defer c.mu.Unlock()
	c.w.Write([]byte(body))
	if err := c.w.Flush(); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// respond answers a server→client request.
func (c *testClient) respond(id json.RawMessage, result any) {
	c.t.Helper()
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "result": result})
	c.raw(string(body))
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
