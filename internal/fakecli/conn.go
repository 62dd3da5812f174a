package fakecli

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rpcproxy/rpcproxy/internal/frame"
)

// Bounds on what one connection may hold.
const (
	// maxPendingCalls bounds the server→client requests awaiting an answer
	// on one connection.
	maxPendingCalls = 64
	// frameTimeout bounds the time a client may take to send one frame.
	frameTimeout = 30 * time.Second
)

// conn is one client connection: a reader goroutine that handles requests
// in arrival order and a writer goroutine that owns the socket's write side.
type conn struct {
	s    *Server
	nc   net.Conn
	out  chan *frame.Buffer // to the writer
	done chan struct{}      // closed when the connection ends
	once sync.Once

	// authed is set by the reader once the client may call methods; the
	// lifecycle broadcast reads it from other goroutines.
	authed atomic.Bool

	// sessions holds the sessions this connection is attached to; guarded
	// by s.mu.
	sessions map[string]*session

	callMu sync.Mutex
	nextID uint64 // last server→client request id; the first is 1
	calls  map[uint64]chan<- reply
}

// reply is a client's answer to a server→client request.
type reply struct {
	Result json.RawMessage `json:"result"`
	Error  *RPCError       `json:"error"`
}

func newConn(s *Server, nc net.Conn) *conn {
	c := &conn{
		s:        s,
		nc:       nc,
		out:      make(chan *frame.Buffer, s.cfg.WriteQueue),
		done:     make(chan struct{}),
		sessions: make(map[string]*session),
		calls:    make(map[uint64]chan<- reply),
	}
	c.authed.Store(s.cfg.Token == "")
	return c
}

// closed reports whether the connection has ended.
func (c *conn) closed() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// shutdown ends the connection once: the socket closes, the writer stops
// and the server drops the connection's sessions.
func (c *conn) shutdown() {
	c.once.Do(func() {
		close(c.done)
		c.nc.Close()
		c.s.dropConn(c)
	})
}

// send queues one message for the writer, which releases it. It gives up,
// releasing b, when the connection or the server ends first.
func (c *conn) send(b *frame.Buffer) bool {
	select {
	case c.out <- b:
		return true
	case <-c.done:
	case <-c.s.done:
	}
	b.Release()
	return false
}

// sendBytes queues a copy of p.
func (c *conn) sendBytes(p []byte) bool { return c.send(frame.Copy(p)) }

func (c *conn) writeLoop() {
	defer c.s.wg.Done()
	defer c.drain()
	w := frame.NewWriter(c.nc)
	for {
		select {
		case b := <-c.out:
			if !c.s.gate(c.done) {
				b.Release()
				return
			}
			err := w.Write(b.B)
			b.Release()
			if err == nil && len(c.out) == 0 {
				err = w.Flush()
			}
			if err != nil {
				c.s.cfg.Logger.Debug("write failed; closing connection", "remote", c.nc.RemoteAddr(), "error", err)
				c.shutdown()
				return
			}
		case <-c.done:
			return
		}
	}
}

// drain releases what is left in the queue once the writer has stopped.
func (c *conn) drain() {
	for {
		select {
		case b := <-c.out:
			b.Release()
		default:
			return
		}
	}
}

func (c *conn) readLoop() {
	defer c.s.wg.Done()
	defer c.shutdown()
	log := c.s.cfg.Logger
	log.Debug("connection opened", "remote", c.nc.RemoteAddr())
	r := frame.NewReader(c.nc, c.nc, frame.Limits{FrameTimeout: frameTimeout})
	for {
		buf, err := r.Read()
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !c.closed() {
				log.Warn("bad frame; closing connection", "remote", c.nc.RemoteAddr(), "error", err)
			}
			log.Debug("connection closed", "remote", c.nc.RemoteAddr())
			return
		}
		if !c.s.gate(c.done) {
			buf.Release()
			return
		}
		err = c.handle(buf.B)
		buf.Release()
		if err != nil {
			log.Warn("malformed message; closing connection", "remote", c.nc.RemoteAddr(), "error", err)
			return
		}
	}
}

// message is a client message decoded for handling.
type message struct {
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
	Result json.RawMessage `json:"result"`
	Error  *RPCError       `json:"error"`
}

var errInvalidMessage = errors.New("fakecli: not a JSON-RPC message")

// handle acts on one message from the client. An error means the stream
// cannot be trusted and the connection must close.
func (c *conn) handle(body []byte) error {
	var meta frame.Meta
	if err := frame.Scan(body, &meta); err != nil {
		return err
	}
	if meta.Kind == frame.KindInvalid {
		return errInvalidMessage
	}
	var m message
	if err := json.Unmarshal(body, &m); err != nil {
		return err
	}
	switch meta.Kind {
	case frame.KindNotification:
		// Accepted silently, as the CLI does with what it does not know.
		return nil
	case frame.KindResponse:
		c.deliver(meta.ID.Of(body), reply{Result: m.Result, Error: m.Error})
		return nil
	}
	req := &request{
		id:     append([]byte(nil), meta.ID.Of(body)...),
		method: m.Method,
		params: m.Params,
	}
	if hold := c.s.cfg.Hold; hold != nil {
		if d := hold(req.method, req.params); d > 0 {
			c.s.wg.Add(1)
			go func() {
				defer c.s.wg.Done()
				t := time.NewTimer(d)
				defer t.Stop()
				select {
				case <-t.C:
					c.s.dispatch(c, req)
				case <-c.s.done:
				}
			}()
			return nil
		}
	}
	c.s.dispatch(c, req)
	return nil
}

// call sends a server→client request whose answer goes to ch, which must
// have room for it. Ids count from 1 on every connection, as the CLI's do.
// It returns the id, or false when too many calls are pending or the
// connection is gone.
func (c *conn) call(method string, params []byte, ch chan<- reply) (uint64, bool) {
	c.callMu.Lock()
	if len(c.calls) >= maxPendingCalls {
		c.callMu.Unlock()
		return 0, false
	}
	c.nextID++
	id := c.nextID
	c.calls[id] = ch
	c.callMu.Unlock()
	c.s.pendingCalls.Add(1)
	b := frame.Get(0)
	b.B = appendRequest(b.B[:0], id, method, params)
	if !c.send(b) {
		c.cancelCall(id)
		return 0, false
	}
	return id, true
}

// cancelCall forgets a call whose answer is no longer wanted.
func (c *conn) cancelCall(id uint64) {
	c.callMu.Lock()
	_, ok := c.calls[id]
	delete(c.calls, id)
	c.callMu.Unlock()
	if ok {
		c.s.pendingCalls.Add(-1)
	}
}

// deliver hands a client's response to the call waiting for it. Answers to
// unknown ids are dropped.
func (c *conn) deliver(rawID []byte, r reply) {
	id, err := strconv.ParseUint(string(rawID), 10, 64)
	if err != nil {
		return
	}
	c.callMu.Lock()
	ch, ok := c.calls[id]
	delete(c.calls, id)
	c.callMu.Unlock()
	if !ok {
		return
	}
	c.s.pendingCalls.Add(-1)
	select {
	case ch <- r:
	default: // the waiter already has an answer
	}
}
