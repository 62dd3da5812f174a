package fakecli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rpcproxy/rpcproxy/internal/frame"
)

// Client is a small JSON-RPC client for tests and benchmarks, speaking to a
// fake or real CLI, or to the proxy in front of them. Calls may be made from
// several goroutines; notifications and server→client requests arrive, in
// order, through Next (or a RequestHandler).
type Client struct {
	nc      net.Conn
	done    chan struct{} // closed when the reader stops
	closing chan struct{} // closed by Close
	wg      sync.WaitGroup
	once    sync.Once

	wmu sync.Mutex
	w   *frame.Writer

	mu      sync.Mutex
	nextID  int64
	pending map[int64]chan *Message
	err     error // why the reader stopped

	incoming chan *Message
	handler  atomic.Pointer[RequestHandler]
}

// RequestHandler answers a server→client request on the Client's reader
// goroutine; it must return quickly. A nil *RPCError means success.
type RequestHandler func(method string, params json.RawMessage) (any, *RPCError)

// ClientQueue bounds the notifications and server requests a Client holds
// for Next; when it is full the Client stops reading until Next is called.
const ClientQueue = 4096

// ErrClientClosed is returned by calls on a Client whose connection ended.
var ErrClientClosed = errors.New("fakecli: client connection closed")

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
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("fakecli: dial %s: %w", addr, err)
	}
	return NewClient(nc), nil
}

// NewClient runs a Client over an open connection, which it owns from then on.
func NewClient(nc net.Conn) *Client {
	c := &Client{
		nc:       nc,
		done:     make(chan struct{}),
		closing:  make(chan struct{}),
		w:        frame.NewWriter(nc),
		pending:  make(map[int64]chan *Message),
		incoming: make(chan *Message, ClientQueue),
	}
	c.wg.Add(1)
	go c.readLoop()
	return c
}

// SetRequestHandler makes the Client answer server→client requests itself
// instead of handing them to Next. Nil restores Next.
func (c *Client) SetRequestHandler(h RequestHandler) {
	if h == nil {
		c.handler.Store(nil)
		return
	}
	c.handler.Store(&h)
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
	ch := make(chan *Message, 1)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return err
	}
	c.nextID++
	id := c.nextID
	c.pending[id] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
	}()

	body, err := json.Marshal(struct {
		JSONRPC string `json:"jsonrpc"`
		ID      int64  `json:"id"`
		Method  string `json:"method"`
		Params  any    `json:"params,omitempty"`
	}{"2.0", id, method, params})
	if err != nil {
		return fmt.Errorf("fakecli: encoding %s params: %w", method, err)
	}
	if err := c.write(body); err != nil {
		return err
	}
	select {
	case m := <-ch:
		if m.Error != nil {
			return m.Error
		}
		if result != nil {
			if err := json.Unmarshal(m.Result, result); err != nil {
				return fmt.Errorf("fakecli: decoding %s result: %w", method, err)
			}
		}
		return nil
	case <-c.done:
		return c.closedErr()
	case <-ctx.Done():
		return fmt.Errorf("fakecli: %s: %w", method, ctx.Err())
	}
}

// Notify sends a notification.
func (c *Client) Notify(method string, params any) error {
	body, err := json.Marshal(struct {
		JSONRPC string `json:"jsonrpc"`
		Method  string `json:"method"`
		Params  any    `json:"params,omitempty"`
	}{"2.0", method, params})
	if err != nil {
		return fmt.Errorf("fakecli: encoding %s params: %w", method, err)
	}
	return c.write(body)
}

// Reply answers a server→client request with a result.
func (c *Client) Reply(id json.RawMessage, result any) error {
	raw, err := json.Marshal(result)
	if err != nil {
		return fmt.Errorf("fakecli: encoding reply: %w", err)
	}
	return c.write(appendResult(nil, id, raw))
}

// ReplyError answers a server→client request with an error.
func (c *Client) ReplyError(id json.RawMessage, e *RPCError) error {
	return c.write(appendError(nil, id, e))
}

// WriteRaw sends body framed as it is, valid or not: for malformed-input tests.
func (c *Client) WriteRaw(body []byte) error { return c.write(body) }

func (c *Client) write(body []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	err := c.w.Write(body)
	if err == nil {
		err = c.w.Flush()
	}
	if err != nil {
		return fmt.Errorf("fakecli: write: %w", err)
	}
	return nil
}

// Next returns the next notification or server→client request.
func (c *Client) Next(ctx context.Context) (*Message, error) {
	select {
	case m := <-c.incoming:
		return m, nil
	default:
	}
	select {
	case m := <-c.incoming:
		return m, nil
	case <-c.done:
		// The reader may have queued more before it stopped.
		select {
		case m := <-c.incoming:
			return m, nil
		default:
		}
		return nil, c.closedErr()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
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
func (c *Client) Close() error {
	var err error
	c.once.Do(func() {
		close(c.closing)
		err = c.nc.Close()
	})
	c.wg.Wait()
	return err
}

// Done is closed when the connection has ended.
func (c *Client) Done() <-chan struct{} { return c.done }

func (c *Client) closedErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *Client) readLoop() {
	defer c.wg.Done()
	r := frame.NewReader(c.nc, nil, frame.Limits{})
	var err error
	for err == nil {
		err = c.readOne(r)
	}
	c.mu.Lock()
	c.err = fmt.Errorf("%w: %w", ErrClientClosed, err)
	c.mu.Unlock()
	close(c.done)
	c.nc.Close()
}

func (c *Client) readOne(r *frame.Reader) error {
	buf, err := r.Read()
	if err != nil {
		return err
	}
	m := new(Message)
	err = json.Unmarshal(buf.B, m)
	buf.Release()
	if err != nil {
		return fmt.Errorf("bad message from server: %w", err)
	}
	switch {
	case m.Method == "":
		id, err := strconv.ParseInt(string(m.ID), 10, 64)
		if err != nil {
			return nil // not one of ours
		}
		c.mu.Lock()
		ch := c.pending[id]
		c.mu.Unlock()
		select {
		case ch <- m: // buffered: the first response for an id is taken
		default:
		}
		return nil
	case m.IsRequest():
		if h := c.handler.Load(); h != nil {
			result, rerr := (*h)(m.Method, m.Params)
			if rerr != nil {
				return c.ReplyError(m.ID, rerr)
			}
			return c.Reply(m.ID, result)
		}
	}
	select {
	case c.incoming <- m: // blocks while full: the reader waits for Next
		return nil
	case <-c.closing:
		return net.ErrClosed
	}
}
