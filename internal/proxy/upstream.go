package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/rpcproxy/rpcproxy/internal/frame"
	"github.com/rpcproxy/rpcproxy/internal/jsonrpc"
	"github.com/rpcproxy/rpcproxy/internal/router"
)

// upstream is one client's own connection to one backend. The CLI keeps
// state per connection (tools, providers, loaded sessions), so upstreams are
// never shared between clients, and one lives as long as its client.
//
// An upstream is usable as soon as it exists: its own goroutine (run) dials
// and performs the handshake while frames written meanwhile wait in a
// bounded queue, so a slow or silent backend never holds up the client's
// reader and its sessions on other backends. Once open, the same goroutine
// reads the backend. Writers (the client's reader, session movers, the
// opener) hold wmu; pending is guarded by mu. Lock order: wmu, then mu.
type upstream struct {
	c       *clientConn
	backend *router.Backend
	obs     BackendObserver // the backend's counters; nil when metrics are off
	ready   chan struct{}   // closed when the handshake is done or failed

	// conn is set under mu by the opener; r belongs to the run goroutine.
	conn net.Conn
	r    *frame.Reader

	// wmu is wmuOwn, or the link's write lock for a lane on a shared link.
	wmu       *sync.Mutex
	wmuOwn    sync.Mutex
	w         *frame.Writer
	open      bool            // frames go to w; before, to queue
	queue     []*frame.Buffer // frames written while opening, in order
	queued    int             // bytes in queue
	unflushed int             // frames written since the last flush

	mu      sync.Mutex
	closed  bool
	aborted error // why the proxy closed it (its backend was marked down)
	nextID  uint64
	pending map[uint64]pendingReq

	// A lane on a shared link (link.go): its ids are idBase plus a
	// sequence; held (guarded by link.mu) lists the sessions it attached.
	link   *link
	lane   uint32
	idBase uint64
	held   map[string]struct{}
}

// Bounds of what waits for an upstream still opening: more is refused to
// the request that brought it (retryable), never buffered without limit. A
// single frame is always taken when nothing waits, whatever its size (it is
// bounded by the frame limit).
const (
	maxOpeningQueueBytes  = 4 << 20
	maxOpeningQueueFrames = 256
)

// pendingReq is a request in flight on an upstream: either the client's own
// (answered with the client's id) or one part of a fan-out.
type pendingReq struct {
	client rawID
	fan    *fanOut
	part   int
	wait   chan internalResult // the proxy's own request (callSync)
	turn   *session            // the session whose turn this session.send starts
	fresh  freshPlace          // the session this request placed, given back if it is refused
	sent   int64               // unix nanoseconds, when a request timeout or metrics are on
}

// own reports whether the request is the client's own, counted against its limit.
func (p *pendingReq) own() bool { return p.fan == nil && p.wait == nil }

var (
	errUpstreamClosed = errors.New("upstream connection closed")
	errOpeningFull    = errors.New("backend connection still opening and its queue is full")
	errMarkedDown     = errors.New("backend marked down by its health checks")
)

// newUpstream returns an upstream to b that has not started opening.
func newUpstream(c *clientConn, b *router.Backend) *upstream {
	u := &upstream{c: c, backend: b, ready: make(chan struct{}), pending: make(map[uint64]pendingReq)}
	u.wmu = &u.wmuOwn
	if c.obs != nil {
		u.obs = c.obs.Backend(b.Name)
	}
	return u
}

// run opens the connection, then reads the backend until the connection
// ends. It is the upstream's own goroutine, owned by the client.
func (u *upstream) run() {
	defer u.c.wg.Done()
	defer u.c.recoverPeer("upstream " + u.backend.Name)
	if u.link != nil {
		u.openLane()
		return
	}
	err := u.openConn()
	close(u.ready)
	if err != nil {
		var re *rpcError
		if !errors.As(err, &re) {
			u.c.log().Warn("cannot open upstream", "backend", u.backend.Name, "error", err)
		}
		u.fail(err)
		return
	}
	u.readLoop()
}

// openLane waits for the lane's link to open, then sends the frames
// queued meanwhile on it. The link's goroutine reads for the lane.
func (u *upstream) openLane() {
	defer close(u.ready)
	select {
	case <-u.link.ready:
	case <-u.c.done:
		return
	}
	if err := u.link.openErr; err != nil {
		u.end(err, false) // the link failed every lane already, or is about to
		return
	}
	u.wmu.Lock()
	u.w = u.link.w
	err := u.sendQueueLocked()
	u.wmu.Unlock()
	if err != nil {
		u.link.fail(err) // after wmu: failing takes every lane's (the link's) write lock
	}
}

// openConn dials the backend and performs the handshake as this client:
// connect with b's token (ping for servers that predate connect), then the
// client's process-wide registrations, then the frames queued meanwhile.
// Bounded by the dial and handshake timeouts. A backend's JSON-RPC refusal
// is returned as *rpcError.
func (u *upstream) openConn() error {
	c := u.c
	cfg := &c.srv.cfg
	d := net.Dialer{Timeout: cfg.DialTimeout}
	conn, err := d.Dial("tcp", u.backend.Addr)
	if err != nil {
		return fmt.Errorf("dial %s: %w", u.backend.Addr, err)
	}
	u.mu.Lock()
	if u.closed || u.aborted != nil {
		aborted := u.aborted
		u.mu.Unlock()
		conn.Close()
		if aborted != nil {
			return aborted
		}
		return errUpstreamClosed
	}
	u.conn = conn
	u.mu.Unlock()
	u.r = frame.NewReader(conn, conn, cfg.Limits)
	// Every backend frame is done with (written to the client, decoded or
	// dropped) before the next is read: bodies can stay in the read buffer.
	u.r.Lend()
	u.wmu.Lock()
	u.w = frame.NewWriter(newDeadlineWriter(conn, cfg.WriteTimeout))
	u.wmu.Unlock()
	_ = conn.SetDeadline(time.Now().Add(cfg.HandshakeTimeout))
	result, err := u.call("connect", c.upstreamConnectParams(u.backend.Token))
	var re *rpcError
	if errors.As(err, &re) && re.Code == -32601 {
		result, err = u.call("ping", nil)
	}
	if err != nil {
		return err
	}
	c.srv.SetInfo(result)
	for _, reg := range c.registrations() {
		if _, err := u.call(reg.method, reg.params); err != nil {
			return err
		}
	}
	// The write deadline stays: u.w's deadlineWriter keeps it fresh.
	_ = conn.SetReadDeadline(time.Time{})
	u.wmu.Lock()
	defer u.wmu.Unlock()
	return u.sendQueueLocked()
}

// sendQueueLocked writes and flushes the frames queued while the upstream
// opened, releases them, and marks it open when that worked; wmu is held.
func (u *upstream) sendQueueLocked() error {
	var err error
	for i, b := range u.queue {
		if err == nil {
			err = u.w.Write(b.B)
		}
		b.Release()
		u.queue[i] = nil
	}
	u.queue, u.queued = nil, 0
	if err == nil {
		err = u.flushLocked(true)
	}
	u.open = err == nil
	return err
}

// call sends a request and waits for its answer, reading the connection
// directly. Only for the handshake, on the run goroutine before it reads.
func (u *upstream) call(method string, params json.RawMessage) (json.RawMessage, error) {
	u.mu.Lock()
	u.nextID++
	id := u.nextID
	u.mu.Unlock()
	// Without wmu: until open is set, writers queue and never touch u.w,
	// and holding wmu while the backend answers would hold them up.
	result, err := jsonrpc.Call(u.r, u.w, id, method, params)
	var re *rpcError
	if err != nil && !errors.As(err, &re) {
		return nil, fmt.Errorf("handshake with %s: %w", u.backend.Addr, err)
	}
	return result, err
}

// decodeResponse splits a response into its result or its error.
func decodeResponse(body []byte) (json.RawMessage, *rpcError) {
	return jsonrpc.DecodeResponse(body)
}

// readLoop passes the backend's frames to the client: responses with the
// client's id restored, server→client requests with an id unique on the
// client connection, notifications untouched.
func (u *upstream) readLoop() {
	c := u.c
	var m frame.Meta
	for {
		buf, err := u.r.Read()
		if err != nil {
			c.srv.noteReadError(err)
			u.fail(err)
			return
		}
		if u.obs != nil {
			u.obs.FromBackend(len(buf.B))
		}
		// flush: nothing more at hand, so what this reader wrote to the
		// client goes out after this frame, whether the frame itself is
		// written, dropped or answers the proxy.
		flush := !u.r.Ready()
		if !u.handle(buf, &m, flush) && flush {
			c.flush()
		}
	}
}

// handle passes one backend frame on and reports whether it was written to
// the client with flush (so the caller need not flush).
func (u *upstream) handle(buf *frame.Buffer, m *frame.Meta, flush bool) bool {
	// The backend is trusted past the head of its events and answers: they
	// are most of the bytes, and nothing after their head routes them.
	if err := frame.ScanHead(buf.B, m); err != nil {
		u.c.log().Warn("backend frame is not a JSON object; dropped", "backend", u.backend.Name, "bytes", len(buf.B))
		buf.Release()
		return false
	}
	return u.handleScanned(buf, m, flush)
}

// handleScanned is handle for a frame whose head m holds (a shared link's
// reader scanned it to route it).
func (u *upstream) handleScanned(buf *frame.Buffer, m *frame.Meta, flush bool) bool {
	c := u.c
	switch m.Kind {
	case frame.KindNotification:
		if !c.wants(u, buf.B, m) {
			buf.Release()
			return false
		}
		ended := c.noteTurnEnd(buf.B, m)
		c.send(outFrame{buf: buf}, flush)
		if ended {
			c.activity.Add(1)
			c.busy.Add(-1)
		}
		return true
	case frame.KindResponse:
		return u.deliver(buf, m, flush)
	case frame.KindRequest:
		id := c.registerS2C(u, m.ID.Of(buf.B))
		c.send(outFrame{buf: buf, idStart: m.ID.Start, idEnd: m.ID.End, id: id}, flush)
		return true
	}
	c.log().Warn("backend message is neither request, response nor notification; dropped", "backend", u.backend.Name)
	buf.Release()
	return false
}

// deliver routes a backend's response to whoever asked, and reports whether
// it was written to the client (with flush).
func (u *upstream) deliver(buf *frame.Buffer, m *frame.Meta, flush bool) bool {
	id, ok := parseUint(m.ID.Of(buf.B))
	u.mu.Lock()
	p, found := u.pending[id]
	if found {
		delete(u.pending, id)
	}
	u.mu.Unlock()
	if !ok || !found {
		u.c.log().Debug("backend answered an unknown request; dropped", "backend", u.backend.Name)
		buf.Release()
		return false
	}
	if u.obs != nil && p.sent != 0 && p.wait == nil {
		u.obs.Answered(time.Duration(time.Now().UnixNano() - p.sent))
	}
	if p.fan != nil || p.wait != nil {
		result, rerr := decodeResponse(buf.B)
		buf.Release()
		if p.wait != nil {
			p.wait <- internalResult{result: result, err: rerr}
			return false
		}
		p.fan.deliver(p.part, result, rerr)
		return false
	}
	if p.turn != nil && m.HasError {
		p.turn.inTurn.Store(false) // the send was refused: no turn runs
	}
	if p.fresh.s != nil && m.HasError {
		u.c.placeRefused(p.fresh)
	}
	if m.HasError && u.c.obs != nil {
		u.c.obs.ErrorAnswer(errorCode(buf.B))
	}
	u.c.send(outFrame{buf: buf, idStart: m.ID.Start, idEnd: m.ID.End, id: p.client}, flush)
	// Counted off once written: a draining server never closes the client
	// between the two.
	u.c.pending.Add(-1)
	u.c.activity.Add(1)
	return true
}

// forward writes a client request with a fresh upstream id and records p
// for its answer. An error means the request was not sent and nothing
// answers it; a write failure fails the upstream, which answers p.
func (u *upstream) forward(body []byte, m *frame.Meta, p pendingReq) error {
	var nb [20]byte
	u.wmu.Lock()
	if !u.open && !u.roomLocked(len(body)) {
		u.wmu.Unlock()
		return errOpeningFull
	}
	id, err := u.track(p)
	if err != nil {
		u.wmu.Unlock()
		return err
	}
	err = u.writeLocked(body, m.ID, strconv.AppendUint(nb[:0], id, 10))
	u.wmu.Unlock()
	if err != nil {
		u.fail(err)
	}
	return nil
}

// request writes a request the proxy builds itself (fan-out parts, session
// moves), with the same contract as forward.
func (u *upstream) request(method string, params json.RawMessage, p pendingReq) (uint64, error) {
	body := requestBody(0, method, params) // the id is set below
	var m frame.Meta
	_ = frame.Scan(body, &m)
	var nb [20]byte
	u.wmu.Lock()
	if !u.open && !u.roomLocked(len(body)) {
		u.wmu.Unlock()
		return 0, errOpeningFull
	}
	id, err := u.track(p)
	if err != nil {
		u.wmu.Unlock()
		return 0, err
	}
	err = u.writeLocked(body, m.ID, strconv.AppendUint(nb[:0], id, 10))
	u.wmu.Unlock()
	if err != nil {
		u.fail(err)
	}
	return id, nil
}

func (u *upstream) track(p pendingReq) (uint64, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return 0, errUpstreamClosed
	}
	u.nextID++
	id := u.nextID
	if u.link != nil {
		id = u.idBase | uint64(uint32(id))
	}
	if u.c.srv.cfg.RequestTimeout > 0 || u.obs != nil {
		p.sent = time.Now().UnixNano()
	}
	u.pending[id] = p
	if p.turn != nil {
		// Under u.mu: fail either finds this send pending (the turn never
		// started) or runs before it and it is refused here. A turn marked
		// outside the lock could be "ended" by fail with a session.idle of a
		// turn that was never sent.
		p.turn.inTurn.Store(true)
		p.turn.turnStart.Store(p.sent)
	}
	if p.own() {
		u.c.pending.Add(1)
	}
	return id, nil
}

// forget drops a request nobody waits for any more.
func (u *upstream) forget(id uint64) {
	u.mu.Lock()
	delete(u.pending, id)
	u.mu.Unlock()
}

// write and writeWithID pass a frame that needs no tracking (notifications,
// the client's answers to server requests). The caller flushes, or marks
// the upstream dirty for the client's reader to flush. A frame that does
// not fit the opening queue is dropped and reported as errOpeningFull; a
// write failure fails the upstream.
func (u *upstream) write(body []byte) error {
	return u.writeWithID(body, frame.Span{}, nil)
}

func (u *upstream) writeWithID(body []byte, span frame.Span, id []byte) error {
	u.wmu.Lock()
	if !u.open && !u.roomLocked(len(body)) {
		u.wmu.Unlock()
		return errOpeningFull
	}
	err := u.writeLocked(body, span, id)
	u.wmu.Unlock()
	if err != nil {
		u.fail(err)
	}
	return err
}

// roomLocked reports whether n more bytes fit the opening queue, counting
// a refusal by that limit when they do not; wmu is held.
func (u *upstream) roomLocked(n int) bool {
	if len(u.queue) == 0 || len(u.queue) < maxOpeningQueueFrames && u.queued+n <= maxOpeningQueueBytes {
		return true
	}
	u.c.srv.limitHit(limitOpeningQueue)
	return false
}

// writeLocked writes body, its id replaced by id when id is set, to the
// connection or, while it opens, to the queue; wmu is held.
func (u *upstream) writeLocked(body []byte, span frame.Span, id []byte) error {
	if !u.open {
		var b *frame.Buffer
		if id != nil {
			b = frame.Get(len(body) - int(span.End-span.Start) + len(id))
			n := copy(b.B, body[:span.Start])
			n += copy(b.B[n:], id)
			copy(b.B[n:], body[span.End:])
		} else {
			b = frame.Copy(body)
		}
		u.queue = append(u.queue, b)
		u.queued += len(b.B)
		if u.obs != nil {
			u.obs.ToBackend(len(b.B))
		}
		return nil
	}
	var err error
	if id != nil {
		err = u.w.WriteWithID(body, int(span.Start), int(span.End), id)
	} else {
		err = u.w.Write(body)
	}
	if err != nil {
		return err
	}
	if u.obs != nil {
		n := len(body)
		if id != nil {
			n += len(id) - int(span.End-span.Start)
		}
		u.obs.ToBackend(n)
	}
	u.unflushed++
	if u.unflushed >= maxUnflushed {
		return u.flushLocked(false)
	}
	return nil
}

// maxUnflushed bounds the frames buffered for a backend while a client
// keeps its input full, so latency stays bounded under sustained load.
const maxUnflushed = 64

// flush sends what is buffered. Any writer may call it.
func (u *upstream) flush() error {
	u.wmu.Lock()
	defer u.wmu.Unlock()
	return u.flushLocked(false)
}

// flushLocked sends what is buffered once the connection is open (the
// opener sends the queue itself, force); wmu is held.
func (u *upstream) flushLocked(force bool) error {
	u.unflushed = 0
	if !u.open && !force || u.w.Buffered() == 0 {
		return nil
	}
	return u.w.Flush()
}

// abort closes the upstream because its backend was marked down. It only
// closes the socket, so it never waits on anyone: the upstream's own
// goroutine then fails it (answering what was pending there) for its client.
func (u *upstream) abort(reason error) {
	if u.link != nil {
		u.link.abort(reason)
		return
	}
	u.mu.Lock()
	if u.closed || u.aborted != nil {
		u.mu.Unlock()
		return
	}
	u.aborted = reason
	conn := u.conn
	u.mu.Unlock()
	if conn != nil {
		conn.Close()
	}
}

// fail ends the upstream after an error: every request pending on it is
// answered with a retryable error naming the backend (or the backend's own
// refusal of the handshake), the client forgets it, and the health checker
// is asked to probe the backend, which alone decides whether it is down.
// The client's connection stays open for its other sessions, and no other
// client is touched. Safe to call more than once, from any goroutine. A
// lane's failure (a write error, a request past its timeout) is its
// link's: every lane on the link fails with it.
func (u *upstream) fail(err error) {
	if u.link != nil {
		u.link.fail(err)
		return
	}
	u.end(err, true)
}

// end is fail for this upstream alone; suspect asks the health checker to
// probe the backend (a link asks once for all its lanes).
func (u *upstream) end(err error, suspect bool) {
	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		return
	}
	u.closed = true
	if u.aborted != nil {
		err = u.aborted
	}
	aborted := u.aborted != nil
	pending := u.pending
	u.pending = nil
	conn := u.conn
	u.mu.Unlock()
	if conn != nil {
		conn.Close()
	}
	if u.link != nil {
		u.link.leave(u)
	}
	u.wmu.Lock()
	for _, b := range u.queue {
		b.Release()
	}
	u.queue, u.queued = nil, 0
	u.wmu.Unlock()
	c := u.c
	c.dropUpstream(u)
	if c.closing() {
		return
	}
	lost := proxyError(codeBackendUnavailable, "backend connection lost", errorData{Retryable: true, Backend: u.backend.Name})
	var refused *rpcError
	if errors.As(err, &refused) {
		lost = refused // the backend refused the handshake: its own answer
	} else {
		c.log().Warn("upstream connection lost", "backend", u.backend.Name, "error", err, "pending", len(pending))
		// The proxy's own memory budget running out says nothing of the
		// backend; anything else asks the health checker to look.
		if suspect && !aborted && !errors.Is(err, frame.ErrBudget) {
			c.srv.suspect(u.backend, err)
		}
	}
	unstarted := map[*session]bool{}
	for _, p := range pending {
		if p.turn != nil {
			unstarted[p.turn] = true
		}
	}
	c.endTurnsOn(u.backend.Name, unstarted)
	for _, p := range pending {
		if p.wait != nil {
			p.wait <- internalResult{err: lost}
			continue
		}
		if p.fan != nil {
			p.fan.deliver(p.part, nil, lost)
			continue
		}
		if p.fresh.s != nil {
			c.placeRefused(p.fresh)
		}
		c.replyError(p.client.Bytes(), lost)
		c.pending.Add(-1)
	}
}

// close shuts the upstream when its client goes; nothing is answered.
func (u *upstream) close() {
	u.mu.Lock()
	u.closed = true
	conn := u.conn
	u.mu.Unlock()
	if u.link != nil {
		u.link.leave(u) // detaches what only this client held; the link stays
	}
	if conn != nil {
		conn.Close()
	}
}

// upstreamConnectParams is the client's connect params with the backend's
// token in place of the client's (sent only when the backend has one).
func (c *clientConn) upstreamConnectParams(token string) json.RawMessage {
	params := map[string]json.RawMessage{}
	if len(c.connectParams) > 0 {
		_ = json.Unmarshal(c.connectParams, &params)
	}
	if token != "" {
		t, _ := json.Marshal(token)
		params["token"] = t
	}
	b, _ := json.Marshal(params)
	return b
}

// overdue reports whether a request has waited longer than timeout.
func (u *upstream) overdue(now time.Time, timeout time.Duration) bool {
	limit := now.Add(-timeout).UnixNano()
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, p := range u.pending {
		if p.sent != 0 && p.sent < limit {
			return true
		}
	}
	return false
}

// expire answers a lane's requests that waited longer than timeout with
// -32030 (the backend did not answer in time; it may still act on them, so
// not retryable), forgets them (a late answer is dropped) and asks the
// health checker to probe the backend. The link and the client's other
// requests on it carry on.
func (u *upstream) expire(now time.Time, timeout time.Duration) {
	limit := now.Add(-timeout).UnixNano()
	var late []pendingReq
	u.mu.Lock()
	for id, p := range u.pending {
		if p.sent != 0 && p.sent < limit {
			late = append(late, p)
			delete(u.pending, id)
		}
	}
	u.mu.Unlock()
	if len(late) == 0 {
		return
	}
	c := u.c
	err := fmt.Errorf("request unanswered after %s", timeout)
	c.log().Warn("request timed out on a shared upstream", "backend", u.backend.Name, "requests", len(late), "timeout", timeout)
	c.srv.suspect(u.backend, err)
	e := proxyError(codeBackendUnavailable, "backend did not answer within the request timeout", errorData{Backend: u.backend.Name, Reason: err.Error()})
	for _, p := range late {
		switch {
		case p.wait != nil:
			p.wait <- internalResult{err: e}
		case p.fan != nil:
			p.fan.deliver(p.part, nil, e)
		default:
			if p.fresh.s != nil {
				c.placeRefused(p.fresh)
			}
			c.replyError(p.client.Bytes(), e)
			c.pending.Add(-1)
		}
	}
}

// pendingID finds the upstream id of the client's request in flight with
// the given client id.
func (u *upstream) pendingID(clientID []byte) (uint64, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for id, p := range u.pending {
		if p.own() && bytes.Equal(p.client.Bytes(), clientID) {
			return id, true
		}
	}
	return 0, false
}
