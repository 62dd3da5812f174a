package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/go-hclog"

	"github.com/rpcproxy/rpcproxy/internal/frame"
	"github.com/rpcproxy/rpcproxy/internal/router"
)

// clientConn is one SDK connection. Its serve goroutine reads the client and
// owns everything marked "reader state"; whoever has a frame for the client
// writes it under wmu (see send); each upstream has a goroutine of its own
// that opens it and then reads it, and a session being moved has one that
// moves it. Nothing slow (a dial, a handshake, a move) runs on the reader.
type clientConn struct {
	srv  *Server
	obs  Observer // srv's, nil when metrics are off
	conn net.Conn
	id   uint64
	logp atomic.Pointer[hclog.Logger] // made on first use: most clients never log
	r    *frame.Reader
	done chan struct{} // closed by shutdown

	wmu     sync.Mutex // guards the write side: w and wfailed
	w       *frame.Writer
	wfailed bool
	ob      *outBuffer // with shared upstreams: w's socket end, which never blocks (see send)

	shutdownOnce sync.Once
	wg           sync.WaitGroup // upstream readers and the request-timeout loop
	// pending counts the client's requests forwarded and not yet answered
	// (a fan-out counts as one until merged, against MaxPending);
	// an answer is counted off after it is written to the client. busy
	// counts the rest of what the client still waits for: fan-outs in
	// flight and turn ends being written. A draining server closes a
	// client only when both are zero (drain.go).
	pending atomic.Int64
	busy    atomic.Int64
	// lim is the state of the limits: handshake and idle timers, wrong
	// tokens, session accounting (limits.go).
	lim clientLimits
	// activity counts the client's frames read and the answers and turn
	// ends written to it: a draining server closes a client only after it
	// stayed unchanged for a while.
	activity atomic.Uint64
	// dispatchMu is held by the reader while it handles one frame, and by
	// a draining server while it decides to close the client: a frame is
	// either handled whole or never (closeIfIdle).
	dispatchMu sync.Mutex

	// reader state
	connected     bool
	connectParams json.RawMessage // the client's connect params, token removed
	// dedicated: the client registered a process-wide provider, which
	// claims the CLI process per connection, so its upstreams are its own
	// (guarded by mu; written by the reader).
	dedicated bool
	dirty     dirtySet[*upstream] // upstreams written since the last flush
	routeKey  []byte              // spreads this client's queries over the pool

	mu        sync.Mutex     // guards the fields below
	regs      []registration // replayed on every upstream opened later
	sessions  map[string]*session
	upstreams map[string]*upstream
	s2c       map[uint64]s2cEntry // server→client requests in flight, by proxy id
	nextS2C   uint64
}

// registration is a process-wide registration to replay on new upstreams.
type registration struct {
	method string
	params json.RawMessage
}

// s2cEntry maps a proxy-chosen id of a server→client request back to the
// upstream that asked and the id it used.
type s2cEntry struct {
	up *upstream
	id rawID
}

func newClientConn(s *Server, conn net.Conn) *clientConn {
	id := s.nextClient.Add(1)
	c := &clientConn{
		srv:       s,
		obs:       s.cfg.Observer,
		conn:      conn,
		id:        id,
		done:      make(chan struct{}),
		sessions:  make(map[string]*session),
		upstreams: make(map[string]*upstream),
		s2c:       make(map[uint64]s2cEntry),
		routeKey:  strconv.AppendUint([]byte("client-"), id, 10),
	}
	limits := s.cfg.Limits
	if s.cfg.Token != "" {
		// Until connect succeeds a client is a stranger: it may make the
		// proxy hold only small frames.
		if limits.MaxBody <= 0 {
			limits.MaxBody = frame.DefaultMaxBody
		}
		limits.MaxBody = min(limits.MaxBody, s.cfg.MaxBodyBeforeConnect)
	}
	c.r = frame.NewReader(conn, conn, limits)
	if s.cfg.ConnectionsPerBackend > 0 {
		c.ob = newOutBuffer(c, conn, s.cfg.ClientQueueBytes, s.cfg.WriteTimeout)
		c.w = frame.NewWriter(c.ob)
	} else {
		c.w = frame.NewWriter(newDeadlineWriter(conn, s.cfg.WriteTimeout))
	}
	return c
}

// log is the client's logger, named with the client's id and address.
func (c *clientConn) log() hclog.Logger {
	if l := c.logp.Load(); l != nil {
		return *l
	}
	l := c.srv.log.With("client", c.id, "remote", c.conn.RemoteAddr().String())
	c.logp.CompareAndSwap(nil, &l)
	return *c.logp.Load()
}

// flush sends what is buffered for the client.
func (c *clientConn) flush() {
	c.wmu.Lock()
	var err error
	if !c.wfailed {
		if err = c.flushLocked(); err != nil {
			c.wfailed = true
		}
	}
	c.wmu.Unlock()
	if err != nil {
		c.shutdown()
	}
}

// wants filters what a backend broadcasts: the CLI sends session.lifecycle
// notifications for every session it holds to every connection it has. A
// client gets those of its own sessions from the backend that holds them
// (what a direct connection would show of them); the rest would multiply
// with every backend the client uses.
func (c *clientConn) wants(u *upstream, body []byte, m *frame.Meta) bool {
	if !bytes.Equal(m.Method.Of(body), lifecycleMethod) {
		return true
	}
	if c.srv.cfg.PoolLifecycle || m.SessionID.Len() == 0 {
		// With PoolLifecycle the backends' listeners give every client
		// every lifecycle notification (lifecycle.go).
		return false
	}
	c.mu.Lock()
	s := c.sessions[string(m.SessionID.Of(body))]
	// By name: a backend updated at reload (token, weight) is a new
	// *router.Backend for the same server.
	ok := s != nil && s.backend.Name == u.backend.Name
	c.mu.Unlock()
	return ok
}

var lifecycleMethod = []byte("session.lifecycle")

// serve runs the client until it disconnects or breaks the protocol, then
// tears down its upstreams and waits for every goroutine it started.
func (c *clientConn) serve() {
	c.log().Debug("client connected")
	if t := c.srv.cfg.RequestTimeout; t > 0 {
		c.wg.Add(1)
		go c.timeoutLoop(t)
	}
	err := c.readLoopGuarded()
	switch {
	case errors.Is(err, errPanicked):
		// Logged with its stack by recoverPeer.
	case errors.Is(err, errNoFirstFrame):
		c.log().Debug("closing client", "error", err)
		if c.obs != nil {
			c.obs.ClientRefused(refusedHandshakeTimeout)
		}
	case err == nil || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed):
		c.log().Debug("client disconnected")
	default:
		// The error that explains the close was written and flushed
		// already, or queued (then it goes out first).
		c.drainOut()
		c.log().Warn("closing client", "error", err)
		if c.obs != nil && (errors.Is(err, errBadInput) || errors.Is(err, frame.ErrMalformedHeader) || errors.Is(err, frame.ErrNoLength)) {
			c.obs.ClientRefused(refusedBadInput)
		}
	}
	c.shutdown()
	c.wg.Wait()
	if c.ob != nil {
		c.ob.close()
	}
	c.releaseSessions()
}

// drainOut waits, with shared upstreams, until what is queued for the
// client was written (at most the write timeout).
func (c *clientConn) drainOut() {
	if c.ob != nil {
		c.ob.waitEmpty(c.srv.cfg.WriteTimeout)
	}
}

// shutdown closes the client and all its upstreams. Safe from any goroutine, more than once.
func (c *clientConn) shutdown() {
	c.shutdownOnce.Do(func() {
		close(c.done)
		c.conn.Close()
		ups := c.upstreamList()
		for _, u := range ups {
			u.close()
		}
	})
}

// upstreamList is a snapshot of the client's upstreams, to use without c.mu.
func (c *clientConn) upstreamList() []*upstream {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Collect(maps.Values(c.upstreams))
}

func (c *clientConn) closing() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// readLoopGuarded is readLoop with a panic turned into an error for this
// client alone: every other client is still served.
func (c *clientConn) readLoopGuarded() (err error) {
	defer func() {
		if r := recover(); r != nil {
			c.panicked("client reader", r)
			err = errPanicked
		}
	}()
	return c.readLoop()
}

var errPanicked = errors.New("panic while serving the client")

// recoverPeer, deferred first thing on a goroutine that serves this client,
// turns a panic there into the close of this client alone.
func (c *clientConn) recoverPeer(where string) {
	if r := recover(); r != nil {
		c.panicked(where, r)
	}
}

// panicked logs a recovered panic once, with its stack, counts it and
// closes the client.
func (c *clientConn) panicked(where string, r any) {
	c.srv.panics.Add(1)
	c.log().Error("panic while serving client; closing it", "in", where, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
	c.shutdown()
}

// testHookClientFrame, when set by a test, sees every client frame first.
var testHookClientFrame func(body []byte)

// readLoop reads and dispatches client frames until an error.
// A new client has the handshake timeout to send its first frame.
func (c *clientConn) readLoop() error {
	var m frame.Meta
	_ = c.conn.SetReadDeadline(time.Now().Add(c.srv.cfg.HandshakeTimeout))
	first := true
	for {
		buf, err := c.r.Read()
		if err != nil {
			switch {
			case c.closing():
				return nil
			case first && errors.Is(err, os.ErrDeadlineExceeded):
				return errNoFirstFrame
			case errors.Is(err, frame.ErrBudget):
				// Mid-frame, the stream cannot go on; say why before the close.
				c.replyError(nil, proxyError(codeOverloaded, "proxy out of memory for unfinished frames", errorData{Retryable: true}))
			}
			c.srv.noteReadError(err)
			return err
		}
		if c.obs != nil {
			c.obs.FromClient(len(buf.B))
		}
		if first {
			first = false
			_ = c.conn.SetReadDeadline(time.Time{})
		}
		c.activity.Add(1)
		c.dispatchMu.Lock()
		if c.closing() {
			// A draining server closed the client as idle: this frame was
			// never handled, so nothing of it reached a backend.
			c.dispatchMu.Unlock()
			buf.Release()
			return nil
		}
		fatal := c.dispatch(buf, &m)
		buf.Release()
		// Flush what went to backends unless another whole frame is already
		// here: a client that sent only part of a frame must not hold back
		// what came before it.
		if fatal == nil && !c.r.Ready() {
			c.flushUpstreams()
		}
		c.dispatchMu.Unlock()
		if fatal != nil {
			return fatal
		}
	}
}

var errNoFirstFrame = errors.New("client sent no frame within the handshake timeout")

// errBadInput is returned by dispatch for input after which the stream can
// no longer be trusted; the client is closed.
var errBadInput = errors.New("client sent a message that is not JSON-RPC")

// dispatch handles one client frame. buf is released by the caller after it
// returns, so anything kept must be copied.
func (c *clientConn) dispatch(buf *frame.Buffer, m *frame.Meta) error {
	body := buf.B
	if testHookClientFrame != nil {
		testHookClientFrame(body)
	}
	// Scan checks the whole body: a frame that is not valid JSON, or not a
	// JSON-RPC object, is answered here and never reaches a backend. The
	// stream is still in step (the frame was whole), so the client stays
	// connected, as with the CLI itself.
	switch err := frame.Scan(body, m); {
	case errors.Is(err, frame.ErrSyntax):
		c.log().Debug("client frame is not valid JSON", "bytes", len(body))
		c.replyError(replyID(body, m), &rpcError{Code: codeParseError, Message: "parse error: message is not valid JSON"})
		return nil
	case err != nil:
		c.log().Debug("client frame is not a JSON-RPC object", "bytes", len(body))
		c.replyError(replyID(body, m), &rpcError{Code: codeInvalidRequest, Message: "invalid request: not a JSON-RPC message"})
		return nil
	}
	switch m.Kind {
	case frame.KindRequest:
		c.handleRequest(body, m)
	case frame.KindNotification:
		c.handleNotification(body, m)
	case frame.KindResponse:
		c.handleResponse(body, m)
	default:
		if m.ID.Len() > 0 {
			c.replyError(m.ID.Of(body), &rpcError{Code: codeInvalidRequest, Message: "invalid request: no method, result or error"})
			return nil
		}
		c.log().Warn("client message is neither request, response nor notification", "bytes", len(body))
		return errBadInput
	}
	return nil
}

// replyID is the id to answer a message the proxy refuses with: the id read
// from it when it is a string or a number, else none (null), as JSON-RPC asks.
func replyID(body []byte, m *frame.Meta) []byte {
	id := m.ID.Of(body)
	if len(id) == 0 {
		return nil
	}
	if c := id[0]; c == '"' || c == '-' || '0' <= c && c <= '9' {
		return id
	}
	return nil
}

func (c *clientConn) handleRequest(body []byte, m *frame.Meta) {
	method := methodName(body, m)
	id := m.ID.Of(body)
	if !c.connected {
		if string(method) == "connect" {
			if c.obs != nil {
				c.obs.ClientRequest(router.ClassLocal)
			}
			c.handleConnect(body, m)
			if c.connected && c.srv.cfg.Token != "" {
				c.r.SetMaxBody(c.srv.cfg.Limits.MaxBody)
			}
			return
		}
		if c.srv.cfg.Token != "" {
			c.replyError(id, &rpcError{Code: codeAuthRequired, Message: "authentication required: send connect with a token first"})
			return
		}
	}
	sid, route := routeOf(body, m)
	if c.obs != nil {
		c.obs.ClientRequest(route.Class)
	}
	switch route.Class {
	case router.ClassLocal:
		c.handleConnect(body, m)
	case router.ClassSession:
		c.forwardSession(body, m, sid)
	case router.ClassQuery:
		c.forwardQuery(body, m)
	case router.ClassAggregate, router.ClassRegistration, router.ClassGlobalWrite:
		c.fanOut(body, m, route)
	case router.ClassRefused:
		c.replyError(id, &rpcError{Code: -32601, Message: "method not available through rpcproxy: " + string(method)})
	}
}

// routeOf classes a request by its method and params.sessionId as the
// backend will read them: decoded, so that an escape ("runtime\u002eshutdown")
// cannot pass a method off as another. It returns the decoded session id.
func routeOf(body []byte, m *frame.Meta) (sid []byte, route router.Route) {
	sid, ok := sessionID(body, m)
	return sid, router.Lookup(methodName(body, m), ok)
}

// methodName returns the message's method, decoded when it holds an
// escape or bytes that are not UTF-8 (rare: it then allocates).
func methodName(body []byte, m *frame.Meta) []byte {
	if v := m.Method.Of(body); !m.MethodEscaped && utf8.Valid(v) {
		return v
	}
	return unquote(body, m.Method)
}

// sessionID returns the message's params.sessionId, decoded when needed:
// an escape, or bytes that are not UTF-8, which a JSON decoder (the
// CLI's, encoding/json) reads as U+FFFD, so the proxy routes the session
// the backend will see.
func sessionID(body []byte, m *frame.Meta) ([]byte, bool) {
	if m.SessionID.Len() == 0 {
		return nil, false
	}
	if v := m.SessionID.Of(body); !m.SessionIDEscaped && utf8.Valid(v) {
		return v, true
	}
	return unquote(body, m.SessionID), true
}

// unquote decodes the contents of a JSON string that Scan found (and so
// checked) in body, as encoding/json does.
func unquote(body []byte, s frame.Span) []byte {
	var v string
	if err := json.Unmarshal(body[s.Start-1:s.End+1], &v); err != nil {
		return s.Of(body) // cannot happen: Scan checked the string
	}
	return []byte(v)
}

func (c *clientConn) handleNotification(body []byte, m *frame.Meta) {
	if !c.connected && c.srv.cfg.Token != "" {
		return // as the CLI does: nothing is taken before authentication
	}
	if sid, ok := sessionID(body, m); ok {
		s := c.session(sid, false)
		if s == nil || c.hold(s, body, false) {
			return
		}
		u, err := c.upstream(s.backend)
		if err != nil {
			return
		}
		if u.write(body) == nil {
			c.markDirty(u)
		}
		return
	}
	method := methodName(body, m)
	if string(method) == "$/cancelRequest" {
		c.forwardCancel(body)
		return
	}
	// Other notifications without a session have no route.
	c.log().Trace("dropping client notification without a session", "method", string(method))
}

// forwardCancel passes a client's $/cancelRequest to the upstream where the
// request it names is in flight, naming it by the id the proxy gave it.
func (c *clientConn) forwardCancel(body []byte) {
	var n struct {
		Params struct {
			ID json.RawMessage `json:"id"`
		} `json:"params"`
	}
	if json.Unmarshal(body, &n) != nil || len(n.Params.ID) == 0 {
		return
	}
	ups := c.upstreamList()
	for _, u := range ups {
		if pid, ok := u.pendingID(n.Params.ID); ok {
			if u.write(cancelNotification(pid)) == nil {
				c.markDirty(u)
			}
			return
		}
	}
}

// handleResponse passes a client's answer to a server→client request back to
// the upstream that asked, with the id it used.
func (c *clientConn) handleResponse(body []byte, m *frame.Meta) {
	pid, ok := parseUint(m.ID.Of(body))
	c.mu.Lock()
	e, found := c.s2c[pid]
	if found {
		delete(c.s2c, pid)
	}
	c.mu.Unlock()
	if !ok || !found {
		c.log().Debug("client answered an unknown server request", "bytes", len(body))
		return
	}
	if e.up.writeWithID(body, m.ID, e.id.Bytes()) == nil {
		c.markDirty(e.up)
	}
}

// forwardQuery sends a request any backend can answer to one: an upstream
// this client already has, else the backend the ring gives the client.
func (c *clientConn) forwardQuery(body []byte, m *frame.Meta) {
	b := c.anyBackend()
	if b == nil {
		c.replyError(m.ID.Of(body), proxyError(codeNoBackend, "no backend available", errorData{Retryable: true}))
		return
	}
	c.forward(b, body, m)
}

// anyBackend picks a backend for a request without a session.
func (c *clientConn) anyBackend() *router.Backend {
	ring := c.srv.table.Ring()
	c.mu.Lock()
	for _, u := range c.upstreams {
		for _, rb := range ring.Backends() {
			if rb.Name == u.backend.Name {
				c.mu.Unlock()
				return u.backend
			}
		}
	}
	c.mu.Unlock()
	return ring.Lookup(c.routeKey)
}

// forward sends a request to b with a proxy-chosen id and remembers the
// client's id for the answer.
func (c *clientConn) forward(b *router.Backend, body []byte, m *frame.Meta) {
	if !c.admit(body, m) {
		return
	}
	u, err := c.upstream(b)
	if err != nil {
		c.replyError(m.ID.Of(body), asRPCError(err, b.Name))
		return
	}
	c.forwardVia(u, body, m, router.ClassQuery, pendingReq{}, false)
}

// admit enforces the limit of requests in flight per client.
func (c *clientConn) admit(body []byte, m *frame.Meta) bool {
	if c.pending.Load() >= int64(c.srv.cfg.MaxPending) {
		c.srv.limitReached(LimitPending, "request refused: limit reached", "client", c.id)
		c.replyError(m.ID.Of(body), proxyError(codeOverloaded, "too many requests in flight", errorData{Retryable: true}))
		return false
	}
	return true
}

// forwardVia sends a client request of the given class on u as p (p.turn:
// the session whose turn it starts; p.fresh: the session it placed),
// remembering the client's id, and reports whether it went. On the client's
// reader (flushNow false) the upstream is flushed when the reader runs out
// of input; elsewhere (a session mover) at once.
func (c *clientConn) forwardVia(u *upstream, body []byte, m *frame.Meta, class router.Class, p pendingReq, flushNow bool) bool {
	id := m.ID.Of(body)
	p.client = makeRawID(id)
	if err := u.forward(body, m, p); err != nil {
		c.replyError(id, asRPCError(err, u.backend.Name))
		return false
	}
	if u.obs != nil {
		u.obs.Request(class)
	}
	if !flushNow {
		c.markDirty(u)
	} else if err := u.flush(); err != nil {
		u.fail(err)
	}
	return true
}

// upstream returns this client's connection to b, starting to open it on
// first use. It never waits: frames written to an upstream still opening
// wait in its queue. It fails only when the client is closing.
func (c *clientConn) upstream(b *router.Backend) (*upstream, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if u := c.upstreams[b.Name]; u != nil {
		return u, nil
	}
	if c.closing() {
		// shutdown closed done before listing upstreams: one added now
		// would never be closed.
		return nil, net.ErrClosed
	}
	u := newUpstream(c, b)
	if c.srv.cfg.ConnectionsPerBackend > 0 && !c.dedicated {
		if err := c.onLink(u); err != nil {
			return nil, err
		}
	}
	c.upstreams[b.Name] = u
	c.wg.Add(1)
	go u.run()
	return u, nil
}

// registrations is a copy of the client's process-wide registrations.
func (c *clientConn) registrations() []registration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]registration(nil), c.regs...)
}

// dropUpstream forgets u after it failed, with the server→client requests it had asked.
func (c *clientConn) dropUpstream(u *upstream) {
	c.mu.Lock()
	if c.upstreams[u.backend.Name] == u {
		delete(c.upstreams, u.backend.Name)
	}
	for k, e := range c.s2c {
		if e.up == u {
			delete(c.s2c, k)
		}
	}
	c.mu.Unlock()
}

// registerS2C gives a server→client request an id unique on this client connection.
func (c *clientConn) registerS2C(u *upstream, id []byte) rawID {
	c.mu.Lock()
	c.nextS2C++
	pid := c.nextS2C
	c.s2c[pid] = s2cEntry{up: u, id: makeRawID(id)}
	c.mu.Unlock()
	return numericID(pid)
}

func (c *clientConn) markDirty(u *upstream) { c.dirty.add(u) }

// flushUpstreams sends what the reader wrote to upstreams: called when no
// more client input is at hand, so writes batch under load.
func (c *clientConn) flushUpstreams() {
	c.dirty.drain(func(u *upstream) {
		if err := u.flush(); err != nil {
			u.fail(err)
		}
	})
}

// paramsOf returns the raw params value of a small request (create/resume),
// or nil. It decodes only the envelope.
func paramsOf(body []byte) json.RawMessage {
	var env struct {
		Params json.RawMessage `json:"params"`
	}
	if json.Unmarshal(body, &env) != nil {
		return nil
	}
	return env.Params
}

// reply queues a response built by the proxy.
func (c *clientConn) reply(id []byte, result json.RawMessage) {
	c.sendBody(responseBody(id, result, nil))
}

// replyError queues an error response built by the proxy.
func (c *clientConn) replyError(id []byte, e *rpcError) {
	if c.obs != nil {
		c.obs.ErrorAnswer(e.Code)
	}
	c.sendBody(responseBody(id, nil, e))
}

func (c *clientConn) sendBody(body []byte) {
	c.send(outFrame{buf: frame.Copy(body)}, true)
}

// timeoutLoop fails upstreams with a request past the request timeout: a
// passive check, so a backend that stops answering is noticed on live
// traffic. A lane on a shared link is not failed (that would fail every
// client on the link): its overdue requests alone are answered, and the
// health checker is asked to probe the backend.
func (c *clientConn) timeoutLoop(timeout time.Duration) {
	defer c.wg.Done()
	defer c.recoverPeer("request timeouts")
	tick := time.NewTicker(max(timeout/4, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-c.done:
			return
		case now := <-tick.C:
			ups := c.upstreamList()
			for _, u := range ups {
				switch {
				case u.link != nil:
					u.expire(now, timeout)
				case u.overdue(now, timeout):
					u.fail(fmt.Errorf("request unanswered after %s", timeout))
				}
			}
		}
	}
}
