package loadgen

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rpcproxy/rpcproxy/internal/frame"
)

// counters are one connection's traffic, updated by its goroutines and
// summed by Run at the edges of the measured window.
type counters struct {
	framesIn, bytesIn   atomic.Uint64 // server → client, bodies only
	framesOut, bytesOut atomic.Uint64 // client → server, bodies only
	events              atomic.Uint64 // session.event notifications
	lifecycle           atomic.Uint64 // session.lifecycle notifications
	serverRequests      atomic.Uint64 // server → client requests (not expected)
	errorResponses      atomic.Uint64 // responses carrying an error
	turns               atomic.Uint64 // turns completed inside the window
	requests            atomic.Uint64 // responses received inside the window
	badTurns            atomic.Uint64 // turns whose event count was not ExpectEvents
	_                   [64]byte      // keep neighbouring connections' counters apart
}

// Snapshot is a point-in-time sum of traffic counters.
type Snapshot struct {
	FramesIn, BytesIn, FramesOut, BytesOut uint64
	Events, Lifecycle, ServerRequests      uint64
	ErrorResponses                         uint64
}

func (c *counters) addTo(s *Snapshot) {
	s.FramesIn += c.framesIn.Load()
	s.BytesIn += c.bytesIn.Load()
	s.FramesOut += c.framesOut.Load()
	s.BytesOut += c.bytesOut.Load()
	s.Events += c.events.Load()
	s.Lifecycle += c.lifecycle.Load()
	s.ServerRequests += c.serverRequests.Load()
	s.ErrorResponses += c.errorResponses.Load()
}

func (s Snapshot) sub(o Snapshot) Snapshot {
	return Snapshot{
		FramesIn: s.FramesIn - o.FramesIn, BytesIn: s.BytesIn - o.BytesIn,
		FramesOut: s.FramesOut - o.FramesOut, BytesOut: s.BytesOut - o.BytesOut,
		Events: s.Events - o.Events, Lifecycle: s.Lifecycle - o.Lifecycle,
		ServerRequests: s.ServerRequests - o.ServerRequests, ErrorResponses: s.ErrorResponses - o.ErrorResponses,
	}
}

// clock gives monotonic nanoseconds since the run began, which fit in the
// atomics sessions and readers share.
type clock struct{ epoch time.Time }

func (c clock) now() int64 { return int64(time.Since(c.epoch)) }

// window is the measured interval in clock nanoseconds. end is MaxInt64
// until known.
type window struct {
	start, end atomic.Int64
}

// newWindow returns a window that has not opened yet.
func newWindow() *window {
	w := &window{}
	w.start.Store(math.MaxInt64)
	w.end.Store(math.MaxInt64)
	return w
}

// has reports whether t lies inside the window.
func (w *window) has(t int64) bool {
	return t >= w.start.Load() && t <= w.end.Load()
}

// conn is one generator connection. Its reader goroutine owns the read side
// and the histograms; sessions write their requests under wmu.
type conn struct {
	idx   int
	nc    net.Conn
	cfg   *Config
	clk   clock
	win   *window
	stats counters

	wmu sync.Mutex
	w   *frame.Writer

	sessions []*session          // by index; fixed before the reader starts
	byID     map[string]*session // read-only once the reader runs

	handshake chan bool     // the connect answer (true: an error)
	done      chan struct{} // closed when the reader stops
	err       error         // why the reader stopped; read after done

	// Reader-owned, read by Run after done. Nil for idle connections, whose
	// window never opens.
	reqHist, turnHist *Histogram
}

// handshakeID is the id of the connect request; session requests have a
// sequence number of at least 1 in their upper bits.
const handshakeID = 0

// requestID packs a session's index and its request sequence number: the
// reader finds the session without a lookup table.
func requestID(seq uint64, sess int) uint64 { return seq<<16 | uint64(sess) }

func newConn(idx int, nc net.Conn, cfg *Config, clk clock, win *window) *conn {
	c := &conn{
		idx:       idx,
		nc:        nc,
		cfg:       cfg,
		clk:       clk,
		win:       win,
		w:         frame.NewWriter(nc),
		byID:      make(map[string]*session, cfg.SessionsPerConn),
		handshake: make(chan bool, 1),
		done:      make(chan struct{}),
	}
	for i := range cfg.SessionsPerConn {
		id := fmt.Sprintf("%s-c%d-s%d", cfg.RunID, idx, i)
		if cfg.SessionID != nil {
			id = cfg.SessionID(idx, i)
		}
		s := newSession(c, i, id)
		c.sessions = append(c.sessions, s)
		c.byID[s.id] = s
	}
	return c
}

// start runs the reader goroutine; Run waits for it through done.
func (c *conn) start() { go c.readLoop() }

// write sends one request body; safe from any session goroutine.
func (c *conn) write(body []byte) error {
	c.wmu.Lock()
	err := c.w.Write(body)
	if err == nil {
		err = c.w.Flush()
	}
	c.wmu.Unlock()
	if err != nil {
		return fmt.Errorf("loadgen: conn %d write: %w", c.idx, err)
	}
	c.stats.framesOut.Add(1)
	c.stats.bytesOut.Add(uint64(len(body)))
	return nil
}

// connect sends the handshake and waits for its answer.
func (c *conn) connect(token string, timeout time.Duration) error {
	body := []byte(`{"jsonrpc":"2.0","id":0,"method":"connect","params":{"supportedTaskKinds":["agent","client","shell"]`)
	if token != "" {
		body = append(body, `,"token":`...)
		body = strconv.AppendQuote(body, token)
	}
	body = append(body, "}}"...)
	if err := c.write(body); err != nil {
		return err
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case failed := <-c.handshake:
		if failed {
			return fmt.Errorf("loadgen: conn %d: connect refused", c.idx)
		}
		return nil
	case <-c.done:
		return c.err
	case <-t.C:
		return fmt.Errorf("loadgen: conn %d: no connect answer in %v", c.idx, timeout)
	}
}

// close ends the connection; the reader stops.
func (c *conn) close() { c.nc.Close() }

var (
	// eventPrefix is how the CLI (and the fake) begin a session.event: a
	// frame starting so is classified without a full scan.
	eventPrefix = []byte(`{"jsonrpc":"2.0","method":"session.event","params":{"sessionId":"`)
	idleType    = []byte(`"type":"session.idle"`)
	startType   = []byte(`"type":"session.start"`)
	methodEvent = []byte("session.event")
	methodLife  = []byte("session.lifecycle")
)

// maxSmallEvent bounds the frames searched for a session.idle or a
// session.start: those events are small.
const maxSmallEvent = 2048

func (c *conn) readLoop() {
	defer close(c.done)
	r := frame.NewReader(c.nc, nil, frame.Limits{MaxBody: DefaultMaxFrame})
	var m frame.Meta
	for {
		buf, err := r.Read()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				err = net.ErrClosed
			}
			c.err = fmt.Errorf("loadgen: conn %d read: %w", c.idx, err)
			return
		}
		c.stats.framesIn.Add(1)
		c.stats.bytesIn.Add(uint64(len(buf.B)))
		c.handle(buf.B, &m)
		buf.Release()
	}
}

// handle acts on one frame from the server.
func (c *conn) handle(body []byte, m *frame.Meta) {
	if bytes.HasPrefix(body, eventPrefix) {
		rest := body[len(eventPrefix):]
		if end := bytes.IndexByte(rest, '"'); end >= 0 {
			c.onEvent(rest[:end], body)
			return
		}
	}
	if frame.Scan(body, m) != nil {
		return
	}
	switch m.Kind {
	case frame.KindResponse:
		c.onResponse(m.ID.Of(body), m.HasError)
	case frame.KindNotification:
		switch method := m.Method.Of(body); {
		case bytes.Equal(method, methodEvent):
			c.onEvent(m.SessionID.Of(body), body)
		case bytes.Equal(method, methodLife):
			c.stats.lifecycle.Add(1)
		}
	case frame.KindRequest:
		c.stats.serverRequests.Add(1)
	}
}

func (c *conn) onResponse(rawID []byte, isError bool) {
	if isError {
		c.stats.errorResponses.Add(1)
	}
	id, err := strconv.ParseUint(string(rawID), 10, 64)
	if err != nil {
		return
	}
	if id == handshakeID {
		select {
		case c.handshake <- isError:
		default:
		}
		return
	}
	idx := int(id & 0xffff)
	if idx >= len(c.sessions) {
		return
	}
	s := c.sessions[idx]
	if s.want.Load() != id {
		return // late answer to a request that timed out
	}
	// Rates count what completes inside the window; latencies only what
	// also started inside it.
	if now := c.clk.now(); c.win.has(now) {
		c.stats.requests.Add(1)
		if start := s.reqStart.Load(); c.win.has(start) {
			c.reqHist.Record(time.Duration(now - start))
		}
	}
	s.want.Store(0)
	select {
	case s.resp <- isError:
	default:
	}
}

func (c *conn) onEvent(sid, body []byte) {
	c.stats.events.Add(1)
	s := c.byID[string(sid)]
	if s == nil {
		return
	}
	small := len(body) <= maxSmallEvent
	if small && bytes.Contains(body, startType) {
		return // follows session.create, not part of a turn
	}
	s.turnEvents++
	if !small || !bytes.Contains(body, idleType) {
		return
	}
	if now := c.clk.now(); c.win.has(now) {
		c.stats.turns.Add(1)
		if start := s.turnStart.Load(); c.win.has(start) {
			c.turnHist.Record(time.Duration(now - start))
		}
		if c.cfg.ExpectEvents > 0 && s.turnEvents != c.cfg.ExpectEvents {
			c.stats.badTurns.Add(1)
		}
	}
	s.turnEvents = 0
	select {
	case s.idle <- struct{}{}:
	default:
	}
}
