package jsonrpc

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

// Defaults for Config fields left zero.
const (
	// DefaultQueue is how many notifications, server→client requests and
	// stray answers a Conn holds for Next.
	DefaultQueue = 4096
	// DefaultWriteTimeout bounds one write to the peer.
	DefaultWriteTimeout = 30 * time.Second
	// dialTimeout bounds Dial.
	dialTimeout = 5 * time.Second
)

// Sentinel errors a Conn's caller branches on.
var (
	// ErrClosed: the connection has ended (closed by either side, or its
	// stream broke). Errors from a Conn after its end wrap it.
	ErrClosed = errors.New("jsonrpc: connection closed")
	// ErrBadMessage: the peer sent a frame that is not a JSON object; the
	// Conn ends on it, since nothing after it can be trusted.
	ErrBadMessage = errors.New("jsonrpc: undecodable message from peer")
)

// Message is one JSON-RPC message as a Conn reads it. ID is the id's JSON
// text exactly as the peer sent it (empty for a notification).
type Message struct {
	ID     json.RawMessage `json:"id,omitempty"`
	Method string          `json:"method,omitempty"`
	Params json.RawMessage `json:"params,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  *Error          `json:"error,omitempty"`
}

// IsRequest reports a request from the peer (it has an id and a method).
func (m *Message) IsRequest() bool { return m.Method != "" && len(m.ID) > 0 }

// IsResponse reports an answer (it has no method).
func (m *Message) IsResponse() bool { return m.Method == "" }

// RequestHandler answers a server→client request on the Conn's reader
// goroutine, so it must return quickly. A nil *Error means success.
type RequestHandler func(method string, params json.RawMessage) (result any, err *Error)

// Config tunes a Conn. The zero value is ready to use.
type Config struct {
	// Queue bounds the messages held for Next (notifications, the peer's
	// requests when no RequestHandler is set, answers to no pending call).
	// While it is full the Conn stops reading until Next is called. Zero
	// means DefaultQueue.
	Queue int
	// MaxBody is the largest frame accepted from the peer. Zero means
	// frame.DefaultMaxBody.
	MaxBody int
	// WriteTimeout bounds each write to the peer. Zero means
	// DefaultWriteTimeout; negative means no bound.
	WriteTimeout time.Duration
}

// Conn is a JSON-RPC client over one framed connection: calls from any
// number of goroutines, each answered by id; notifications and the peer's
// requests handed over, in order, by Next (or answered by a
// RequestHandler). One reader goroutine, started by NewConn and stopped by
// Close, owns the reading side.
type Conn struct {
	nc      net.Conn
	wtime   time.Duration
	done    chan struct{} // closed when the reader has stopped
	closing chan struct{} // closed by Close
	once    sync.Once
	wg      sync.WaitGroup

	wmu sync.Mutex // one writer at a time; guards w
	w   *frame.Writer

	mu      sync.Mutex
	nextID  uint64
	pending map[string]chan<- Message // by the id's JSON text
	err     error                     // why the reader stopped; set before done closes

	incoming chan Message
	handler  atomic.Pointer[RequestHandler]
}

// Dial connects to addr over TCP and runs a Conn on it.
func Dial(addr string, cfg Config) (*Conn, error) {
	nc, err := net.DialTimeout("tcp", addr, dialTimeout)
	if err != nil {
		return nil, fmt.Errorf("jsonrpc: dial %s: %w", addr, err)
	}
	return NewConn(nc, cfg), nil
}

// NewConn runs a Conn over nc, which it owns from then on: Close closes it.
func NewConn(nc net.Conn, cfg Config) *Conn {
	if cfg.Queue <= 0 {
		cfg.Queue = DefaultQueue
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	c := &Conn{
		nc:       nc,
		wtime:    cfg.WriteTimeout,
		done:     make(chan struct{}),
		closing:  make(chan struct{}),
		w:        frame.NewWriter(nc),
		pending:  make(map[string]chan<- Message),
		incoming: make(chan Message, cfg.Queue),
	}
	c.wg.Add(1)
	go c.readLoop(frame.NewReader(nc, nil, frame.Limits{MaxBody: cfg.MaxBody}))
	return c
}

// NetConn is the connection under the Conn, for tests that write bytes no
// JSON-RPC client would. Reading from it is the Conn's alone.
func (c *Conn) NetConn() net.Conn { return c.nc }

// SetRequestHandler makes the Conn answer the peer's requests itself
// instead of handing them to Next. Nil restores Next.
func (c *Conn) SetRequestHandler(h RequestHandler) {
	if h == nil {
		c.handler.Store(nil)
		return
	}
	c.handler.Store(&h)
}

// Call sends a request and waits for its answer, the connection's end or
// ctx. A refusal by the peer is returned as *Error, as it came; any other
// error wraps the connection's or ctx's with the method's name.
func (c *Conn) Call(ctx context.Context, method string, params any) (json.RawMessage, error) {
	ch := make(chan Message, 1)
	id, err := c.Go(method, params, ch)
	if err != nil {
		return nil, err
	}
	select {
	case m := <-ch:
		if m.Error != nil {
			return nil, m.Error
		}
		return m.Result, nil
	case <-c.done:
		// The answer may have come just before the end.
		select {
		case m := <-ch:
			if m.Error != nil {
				return nil, m.Error
			}
			return m.Result, nil
		default:
		}
		return nil, fmt.Errorf("jsonrpc: %s: %w", method, c.Err())
	case <-ctx.Done():
		c.forget(id)
		return nil, fmt.Errorf("jsonrpc: %s: %w", method, ctx.Err())
	}
}

// Go sends a request with the next id of the Conn and returns that id; its
// answer is delivered on done, which must have room for it (an answer that
// finds done full is dropped rather than stall the reader).
func (c *Conn) Go(method string, params any, done chan<- Message) (json.RawMessage, error) {
	var raw json.RawMessage
	if params != nil {
		var err error
		if raw, err = json.Marshal(params); err != nil {
			return nil, fmt.Errorf("jsonrpc: encoding %s params: %w", method, err)
		}
	}
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return nil, fmt.Errorf("jsonrpc: %s: %w", method, err)
	}
	c.nextID++
	n := c.nextID
	id := json.RawMessage(strconv.AppendUint(nil, n, 10))
	c.pending[string(id)] = done
	c.mu.Unlock()
	if err := c.write(AppendRequest(nil, n, method, raw)); err != nil {
		c.forget(id)
		return nil, fmt.Errorf("jsonrpc: %s: %w", method, err)
	}
	return id, nil
}

// Expect delivers the answer with the given id (its JSON text, as the peer
// will send it) on done, which must have room for it: for a request the
// caller writes itself with WriteRaw. The first answer with that id is
// taken; a later one goes to Next.
func (c *Conn) Expect(id json.RawMessage, done chan<- Message) {
	c.mu.Lock()
	c.pending[string(id)] = done
	c.mu.Unlock()
}

func (c *Conn) forget(id json.RawMessage) {
	c.mu.Lock()
	delete(c.pending, string(id))
	c.mu.Unlock()
}

// Notify sends a notification.
func (c *Conn) Notify(method string, params any) error {
	body, err := json.Marshal(struct {
		JSONRPC string `json:"jsonrpc"`
		Method  string `json:"method"`
		Params  any    `json:"params,omitempty"`
	}{"2.0", method, params})
	if err != nil {
		return fmt.Errorf("jsonrpc: encoding %s params: %w", method, err)
	}
	return c.write(body)
}

// Reply answers a request from the peer with a result.
func (c *Conn) Reply(id json.RawMessage, result any) error {
	body, err := json.Marshal(struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Result  any             `json:"result"`
	}{"2.0", id, result})
	if err != nil {
		return fmt.Errorf("jsonrpc: encoding reply: %w", err)
	}
	return c.write(body)
}

// ReplyError answers a request from the peer with an error.
func (c *Conn) ReplyError(id json.RawMessage, e *Error) error {
	body, err := json.Marshal(struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   *Error          `json:"error"`
	}{"2.0", id, e})
	if err != nil {
		return fmt.Errorf("jsonrpc: encoding error reply: %w", err)
	}
	return c.write(body)
}

// WriteRaw frames body as it is, valid JSON or not.
func (c *Conn) WriteRaw(body []byte) error { return c.write(body) }

func (c *Conn) write(body []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.wtime > 0 {
		c.nc.SetWriteDeadline(time.Now().Add(c.wtime))
	}
	err := c.w.Write(body)
	if err == nil {
		err = c.w.Flush()
	}
	if err != nil {
		return fmt.Errorf("jsonrpc: write: %w", err)
	}
	return nil
}

// Next returns the next notification, request from the peer, or answer to
// no pending call, in the order they came. After the connection's end it
// returns what is still queued, then the end's error.
func (c *Conn) Next(ctx context.Context) (Message, error) {
	select {
	case m := <-c.incoming:
		return m, nil
	default:
	}
	select {
	case m := <-c.incoming:
		return m, nil
	case <-c.done:
		select {
		case m := <-c.incoming:
			return m, nil
		default:
		}
		return Message{}, c.Err()
	case <-ctx.Done():
		return Message{}, ctx.Err()
	}
}

// Done is closed when the connection has ended and the reader stopped.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err is why the connection ended (wrapping ErrClosed), or nil while it
// is open.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close closes the connection and waits for the reader to stop. It is
// safe to call more than once and from any goroutine.
func (c *Conn) Close() error {
	var err error
	c.once.Do(func() {
		close(c.closing)
		err = c.nc.Close()
	})
	c.wg.Wait()
	return err
}

// readLoop is the Conn's one reader: it sorts each message to its call,
// the RequestHandler or Next, until the stream ends or Close.
func (c *Conn) readLoop(r *frame.Reader) {
	defer c.wg.Done()
	var err error
	for err == nil {
		err = c.readOne(r)
	}
	c.mu.Lock()
	c.err = fmt.Errorf("%w: %w", ErrClosed, err)
	c.mu.Unlock()
	close(c.done)
	c.nc.Close()
}

func (c *Conn) readOne(r *frame.Reader) error {
	buf, err := r.Read()
	if err != nil {
		return err
	}
	var m Message
	err = json.Unmarshal(buf.B, &m)
	buf.Release()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadMessage, err)
	}
	switch {
	case m.IsResponse():
		c.mu.Lock()
		ch, ok := c.pending[string(m.ID)]
		delete(c.pending, string(m.ID))
		c.mu.Unlock()
		if ok {
			select {
			case ch <- m:
			default:
			}
			return nil
		}
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
	case c.incoming <- m: // while the queue is full, the reader waits for Next
		return nil
	case <-c.closing:
		return net.ErrClosed
	}
}
