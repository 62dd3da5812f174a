package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"runtime/debug"
	"sync"
	"time"

	"github.com/rpcproxy/rpcproxy/internal/frame"
	"github.com/rpcproxy/rpcproxy/internal/jsonrpc"
	"github.com/rpcproxy/rpcproxy/internal/router"
)

// link is an upstream connection shared by the proxy's clients, when
// Config.ConnectionsPerBackend is above zero. Each client that uses a link
// has an upstream on it, a lane: the lane keeps that client's requests in
// flight (ids carry the lane number in their upper 32 bits, so two
// clients' ids never collide on the link) and writes through the link's
// writer, under the link's write lock. The link's own goroutine opens the
// connection with the proxy's connect params, then reads it and hands each
// frame to the lane it is for: an answer by the lane in its id, a
// session's notification or server→client request by the lanes that hold
// the session (hold, release). It never writes to a client itself: a lane
// on a link belongs to a client with an outbound queue (outQueue), so a
// client that does not read never holds the link up.
//
// A link's loss fails every lane on it (each answers its own pending
// requests, as a lost dedicated upstream does) and asks the health
// checker to probe the backend. A lane whose client leaves is released:
// the sessions no other lane of the link holds are detached there, as the
// CLI does itself when a direct connection closes.
type link struct {
	srv     *Server
	backend *router.Backend
	obs     BackendObserver
	ready   chan struct{} // closed once opening ended; then openErr is set or w is
	openErr error

	conn  net.Conn
	r     *frame.Reader         // the run goroutine's
	dirty dirtySet[*clientConn] // the run goroutine's: clients written to since its last flush
	bcast []*clientConn         // the run goroutine's: broadcast's reused list
	// listener: the backend's first slot, kept open with PoolLifecycle;
	// its session.lifecycle notifications go to every client. Set before
	// run starts, never changed.
	listener bool

	wmu sync.Mutex // the lanes' write lock: each lane's upstream.wmu is this
	w   *frame.Writer

	mu       sync.Mutex
	closed   bool
	aborted  error
	orphan   bool // no longer in its server's slot: closed when its last lane leaves
	lanes    map[uint32]*upstream
	nextLane uint32
	nextOwn  uint64                 // ids of the link's own requests (lane 0)
	holders  map[string][]*upstream // sessionId → the lanes holding it, latest last
	// regs: a GitHub token provider's registrationId (chosen by the
	// client, given in session.create/resume) → the lane that gave it:
	// gitHubToken.getToken carries it and perhaps no sessionId.
	regs map[string]*upstream
	// ownq: the link's own messages waiting for its writer (post).
	ownq       [][]byte
	ownRunning bool
}

// sharedTaskKinds is what a link declares in connect: what the 1.0.x SDKs
// declare, so the CLI treats a shared connection as it treats theirs.
var sharedTaskKinds = []string{"agent", "client", "shell"}

func newLink(s *Server, b *router.Backend) *link {
	l := &link{srv: s, backend: b, ready: make(chan struct{}), lanes: map[uint32]*upstream{}, holders: map[string][]*upstream{}, regs: map[string]*upstream{}, nextOwn: 2}
	if s.cfg.Observer != nil {
		l.obs = s.cfg.Observer.Backend(b.Name)
	}
	return l
}

// linkFor returns the link of b for a new lane: the open one with the
// fewest lanes, or a new one in a free slot while fewer than
// ConnectionsPerBackend are open (a slot whose link closed, or whose
// backend was updated at reload, is free). Nil when the server is closed.
func (s *Server) linkFor(b *router.Backend) *link {
	n := s.cfg.ConnectionsPerBackend
	s.linksMu.Lock()
	defer s.linksMu.Unlock()
	if s.linksClosed {
		return nil
	}
	ls := s.links[b.Name]
	if ls == nil {
		ls = make([]*link, n)
		s.links[b.Name] = ls
	}
	best, bestLanes, free := -1, 0, -1
	for i, l := range ls {
		if l == nil {
			if free < 0 {
				free = i
			}
			continue
		}
		l.mu.Lock()
		usable := !l.closed && l.backend == b
		if !usable {
			l.orphan = true
		}
		lanes := len(l.lanes)
		l.mu.Unlock()
		if !usable {
			ls[i] = nil
			l.closeIfUnused()
			if free < 0 {
				free = i
			}
			continue
		}
		if best < 0 || lanes < bestLanes {
			best, bestLanes = i, lanes
		}
	}
	if best >= 0 && (bestLanes == 0 || free < 0) {
		return ls[best]
	}
	return s.startLinkLocked(b, ls, free)
}

// startLinkLocked opens a link to b in slot i of ls; linksMu is held.
func (s *Server) startLinkLocked(b *router.Backend, ls []*link, i int) *link {
	l := newLink(s, b)
	l.listener = i == 0 && s.cfg.PoolLifecycle
	ls[i] = l
	s.wg.Add(1)
	go l.run()
	return l
}

// dropLink takes a closed link out of its slot.
func (s *Server) dropLink(l *link) {
	s.linksMu.Lock()
	defer s.linksMu.Unlock()
	for i, x := range s.links[l.backend.Name] {
		if x == l {
			s.links[l.backend.Name][i] = nil
		}
	}
}

// closeLinks closes every link and keeps new ones from opening (Close).
func (s *Server) closeLinks() {
	s.linksMu.Lock()
	s.linksClosed = true
	all := s.linksLocked(func(string) bool { return true })
	s.linksMu.Unlock()
	for _, l := range all {
		l.abort(errUpstreamClosed)
	}
}

// linksTo lists the open links to a backend.
func (s *Server) linksTo(name string) []*link {
	s.linksMu.Lock()
	defer s.linksMu.Unlock()
	return s.linksLocked(func(n string) bool { return n == name })
}

// linksLocked lists the links to the backends whose names match accepts;
// linksMu is held.
func (s *Server) linksLocked(match func(name string) bool) []*link {
	var out []*link
	for name, ls := range s.links {
		if !match(name) {
			continue
		}
		for _, l := range ls {
			if l != nil {
				out = append(out, l)
			}
		}
	}
	return out
}

// run opens the link, then reads it until it ends. Owned by the server.
func (l *link) run() {
	defer l.srv.wg.Done()
	defer func() {
		if r := recover(); r != nil {
			l.srv.panics.Add(1)
			l.srv.log.Error("panic while reading a shared upstream; closing it", "backend", l.backend.Name, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			l.fail(errUpstreamClosed)
		}
	}()
	if err := l.open(); err != nil {
		l.openErr = err
		close(l.ready)
		var re *rpcError
		if !errors.As(err, &re) {
			l.srv.log.Warn("cannot open shared upstream", "backend", l.backend.Name, "error", err)
		}
		l.fail(err)
		return
	}
	close(l.ready)
	l.readLoop()
}

// open dials the backend and connects with the proxy's own params: the
// backend's token and sharedTaskKinds (ping for servers that predate
// connect). A link never carries a client's process-wide registrations.
func (l *link) open() error {
	cfg := &l.srv.cfg
	d := net.Dialer{Timeout: cfg.DialTimeout}
	conn, err := d.Dial("tcp", l.backend.Addr)
	if err != nil {
		return fmt.Errorf("dial %s: %w", l.backend.Addr, err)
	}
	l.mu.Lock()
	if l.closed || l.aborted != nil {
		aborted := l.aborted
		l.mu.Unlock()
		conn.Close()
		if aborted != nil {
			return aborted
		}
		return errUpstreamClosed
	}
	l.conn = conn
	l.mu.Unlock()
	l.r = frame.NewReader(conn, conn, cfg.Limits)
	l.r.Lend() // every frame is routed (and copied where kept) before the next is read
	w := frame.NewWriter(newDeadlineWriter(conn, cfg.WriteTimeout))
	_ = conn.SetDeadline(time.Now().Add(cfg.HandshakeTimeout))
	params := map[string]any{"supportedTaskKinds": sharedTaskKinds}
	if l.backend.Token != "" {
		params["token"] = l.backend.Token
	}
	p, _ := json.Marshal(params)
	result, err := jsonrpc.Call(l.r, w, 1, "connect", p)
	var re *rpcError
	if errors.As(err, &re) && re.Code == -32601 {
		result, err = jsonrpc.Call(l.r, w, 2, "ping", nil)
	}
	if err != nil {
		if !errors.As(err, &re) {
			err = fmt.Errorf("handshake with %s: %w", l.backend.Addr, err)
		}
		return err
	}
	l.srv.SetInfo(result)
	_ = conn.SetReadDeadline(time.Time{})
	l.wmu.Lock()
	l.w = w
	l.wmu.Unlock()
	return nil
}

// readLoop routes the backend's frames to the lanes they are for. What
// it writes to clients is buffered and flushed, without blocking, once no
// whole frame is left to read (so a burst for one client goes out in one
// system call).
func (l *link) readLoop() {
	var m frame.Meta
	for {
		buf, err := l.r.Read()
		if err != nil {
			l.flushDirty()
			l.srv.noteReadError(err)
			l.fail(err)
			return
		}
		if l.obs != nil {
			l.obs.FromBackend(len(buf.B))
		}
		l.route(buf, &m)
		if l.dirty.len() >= maxDirty || !l.r.Ready() {
			l.flushDirty()
		}
	}
}

// maxDirty bounds the clients a link's reader writes to between flushes.
const maxDirty = 64

// wrote notes that the reader wrote (unflushed) to c. Reader only.
func (l *link) wrote(c *clientConn) { l.dirty.add(c) }

// flushDirty flushes what the reader wrote to clients. Reader only; a
// client's flush never blocks (outBuffer).
func (l *link) flushDirty() { l.dirty.drain((*clientConn).flush) }

// maxFanIn bounds the lanes one session's frame is copied to without
// allocating the list of them.
const maxFanIn = 4

// route hands one frame to the lane (or lanes) it is for.
func (l *link) route(buf *frame.Buffer, m *frame.Meta) {
	if err := frame.ScanHead(buf.B, m); err != nil {
		l.srv.log.Warn("backend frame is not a JSON object; dropped", "backend", l.backend.Name, "bytes", len(buf.B))
		buf.Release()
		return
	}
	switch m.Kind {
	case frame.KindResponse:
		id, ok := parseUint(m.ID.Of(buf.B))
		lane := uint32(id >> 32)
		var u *upstream
		if ok && lane != 0 {
			l.mu.Lock()
			u = l.lanes[lane]
			l.mu.Unlock()
		}
		if u == nil {
			// The link's own request (a detach for a client that left), or
			// a lane whose client left since: nobody waits for it.
			buf.Release()
			return
		}
		u.handleScanned(buf, m, false)
		l.wrote(u.c)
		return
	case frame.KindNotification, frame.KindRequest:
	default:
		l.srv.log.Warn("backend message is neither request, response nor notification; dropped", "backend", l.backend.Name)
		buf.Release()
		return
	}
	if m.Kind == frame.KindNotification && l.srv.cfg.PoolLifecycle && bytes.Equal(m.Method.Of(buf.B), lifecycleMethod) {
		// Every link of the backend carries the broadcast: its listener
		// alone passes it on, to every client.
		if l.listener {
			l.srv.broadcast(buf.B, &l.bcast)
		}
		buf.Release()
		return
	}
	var arr [maxFanIn]*upstream
	to := arr[:0]
	if m.SessionID.Len() > 0 {
		l.mu.Lock()
		to = append(to, l.holders[string(m.SessionID.Of(buf.B))]...)
		l.mu.Unlock()
	}
	if len(to) == 0 && m.Kind == frame.KindRequest && bytes.Contains(buf.B, registrationKey) {
		if reg := registrationIDOf(paramsOf(buf.B)); reg != "" {
			l.mu.Lock()
			if u := l.regs[reg]; u != nil {
				to = append(to, u)
			}
			l.mu.Unlock()
		}
	}
	if len(to) == 0 {
		if m.Kind == frame.KindRequest {
			// Nobody here can answer it: say so at once rather than leave
			// the CLI waiting.
			l.post(responseBody(m.ID.Of(buf.B), nil, &rpcError{Code: -32603, Message: "rpcproxy: no client holds this session on this connection"}))
		}
		buf.Release()
		return
	}
	if m.Kind == frame.KindRequest {
		// A request is answered once: by the client that attached the
		// session last.
		u := to[len(to)-1]
		u.handleScanned(buf, m, false)
		l.wrote(u.c)
		return
	}
	for _, u := range to[:len(to)-1] {
		u.handleScanned(frame.Copy(buf.B), m, false)
		l.wrote(u.c)
	}
	u := to[len(to)-1]
	u.handleScanned(buf, m, false)
	l.wrote(u.c)
}

// addLane puts u on the link, or reports that the link is closed.
func (l *link) addLane(u *upstream) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.nextLane++
	if l.nextLane == 0 {
		l.nextLane = 1
	}
	for l.lanes[l.nextLane] != nil {
		l.nextLane++
	}
	u.lane = l.nextLane
	u.idBase = uint64(u.lane) << 32
	u.held = map[string]struct{}{}
	l.lanes[u.lane] = u
	return true
}

// hold records that u attached sid (create or resume) on this link.
func (l *link) hold(sid string, u *upstream) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || u.held == nil {
		return
	}
	hs := l.holders[sid]
	for i, h := range hs {
		if h == u {
			hs = append(hs[:i], hs[i+1:]...)
			break
		}
	}
	l.holders[sid] = append(hs, u)
	u.held[sid] = struct{}{}
}

// holdRegistration records the GitHub token provider registration that
// a create or resume's params name, if any, as u's. Bounded by the
// sessions the lane attaches: a registration lives as long as its lane.
func (l *link) holdRegistration(params []byte, u *upstream) {
	reg := registrationIDOf(params)
	if reg == "" {
		return
	}
	l.mu.Lock()
	if !l.closed && u.held != nil {
		l.regs[reg] = u
	}
	l.mu.Unlock()
}

var registrationKey = []byte("egistrationId") // in both spellings below

// registrationIDOf reads the registration id of a create or resume's
// params (gitHubTokenProviderRegistrationId) or of a gitHubToken.getToken
// request's (registrationId); "" when there is none. It decodes only
// params that mention one.
func registrationIDOf(params []byte) string {
	if !bytes.Contains(params, registrationKey) {
		return ""
	}
	var p struct {
		Create string `json:"gitHubTokenProviderRegistrationId"`
		Get    string `json:"registrationId"`
	}
	if json.Unmarshal(params, &p) != nil {
		return ""
	}
	if p.Create != "" {
		return p.Create
	}
	return p.Get
}

// release records that u no longer holds sid, and reports how many lanes
// of the link still do.
func (l *link) release(sid string, u *upstream) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.releaseLocked(sid, u)
}

func (l *link) releaseLocked(sid string, u *upstream) int {
	hs := l.holders[sid]
	for i, h := range hs {
		if h == u {
			hs = append(hs[:i], hs[i+1:]...)
			break
		}
	}
	if u.held != nil {
		delete(u.held, sid)
	}
	if len(hs) == 0 {
		delete(l.holders, sid)
		return 0
	}
	l.holders[sid] = hs
	return len(hs)
}

// othersHold reports whether a lane other than u holds sid.
func (l *link) othersHold(sid string, u *upstream) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, h := range l.holders[sid] {
		if h != u {
			return true
		}
	}
	return false
}

// leave takes the lane of a client that left off the link and detaches
// there the sessions no other lane holds. Answers still in flight for the
// lane are dropped when they come.
func (l *link) leave(u *upstream) {
	l.mu.Lock()
	if l.closed {
		u.held = nil // the CLI unloaded them with the connection
		l.mu.Unlock()
		return
	}
	if l.lanes[u.lane] == u {
		delete(l.lanes, u.lane)
	}
	var detach []string
	for sid := range u.held {
		if l.releaseLocked(sid, u) == 0 {
			detach = append(detach, sid)
		}
	}
	u.held = nil
	for reg, x := range l.regs {
		if x == u {
			delete(l.regs, reg)
		}
	}
	l.mu.Unlock()
	for _, sid := range detach {
		p, _ := json.Marshal(map[string]string{"sessionId": sid})
		l.mu.Lock()
		l.nextOwn++
		id := l.nextOwn
		l.mu.Unlock()
		l.post(requestBody(id, "session.detach", p))
	}
	if len(detach) > 0 {
		l.srv.log.Debug("detached the sessions of a client that left", "backend", l.backend.Name, "sessions", len(detach))
	}
	l.closeIfUnused()
}

// closeIfUnused closes an orphaned link that has no lane left.
func (l *link) closeIfUnused() {
	l.mu.Lock()
	unused := l.orphan && len(l.lanes) == 0
	l.mu.Unlock()
	if unused {
		l.abort(errUpstreamClosed)
	}
}

// post queues a message of the link's own (an error answer, a detach) for
// its writer goroutine, which exists while any wait: whoever posts (the
// link's reader, a client's shutdown) never writes to the backend itself.
// At most maxOwnQueue wait; more are dropped with a log line (a detach
// dropped leaves the session loaded on the CLI until it is resumed or the
// connection closes).
func (l *link) post(body []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	if len(l.ownq) >= maxOwnQueue {
		l.srv.log.Warn("shared upstream's own queue is full; message dropped", "backend", l.backend.Name)
		return
	}
	l.ownq = append(l.ownq, body)
	if !l.ownRunning {
		l.ownRunning = true
		l.srv.wg.Add(1) // the link is open, so its run goroutine still counts
		go l.writeOwnLoop()
	}
}

const maxOwnQueue = 4096

// writeOwnLoop writes the posted messages, in order, and ends when none
// is left; a write failure fails the link.
func (l *link) writeOwnLoop() {
	defer l.srv.wg.Done()
	var batch [][]byte
	for {
		l.mu.Lock()
		if len(l.ownq) == 0 || l.closed {
			l.ownq = nil
			l.ownRunning = false
			l.mu.Unlock()
			return
		}
		batch, l.ownq = l.ownq, batch[:0]
		l.mu.Unlock()
		l.wmu.Lock()
		var err error
		for i, body := range batch {
			if err == nil && l.w != nil {
				err = l.w.Write(body)
			}
			batch[i] = nil
		}
		if err == nil && l.w != nil {
			err = l.w.Flush()
		}
		l.wmu.Unlock()
		if err != nil {
			l.fail(err)
		}
	}
}

// abort closes the link's socket (its backend was marked down, or the
// server closes); the link's goroutine then fails it. It never waits.
func (l *link) abort(reason error) {
	l.mu.Lock()
	if l.closed || l.aborted != nil {
		l.mu.Unlock()
		return
	}
	l.aborted = reason
	conn := l.conn
	l.mu.Unlock()
	if conn != nil {
		conn.Close()
	}
}

// fail ends the link after an error: every lane on it fails with it (each
// answers the requests its client had pending there), and unless the
// proxy itself closed it, the health checker is asked to probe the
// backend. Safe to call more than once, from any goroutine.
func (l *link) fail(err error) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	if l.aborted != nil {
		err = l.aborted
	}
	aborted := l.aborted != nil
	lanes := make([]*upstream, 0, len(l.lanes))
	for _, u := range l.lanes {
		lanes = append(lanes, u)
	}
	l.lanes = map[uint32]*upstream{}
	l.holders = map[string][]*upstream{}
	l.regs = map[string]*upstream{}
	conn := l.conn
	l.mu.Unlock()
	if conn != nil {
		conn.Close()
	}
	l.srv.dropLink(l)
	if l.listener && !aborted {
		l.srv.relisten()
	}
	var refused *rpcError
	if !aborted && !errors.As(err, &refused) && !errors.Is(err, frame.ErrBudget) {
		l.srv.log.Warn("shared upstream lost", "backend", l.backend.Name, "error", err, "clients", len(lanes))
		l.srv.suspect(l.backend, err)
	}
	for _, u := range lanes {
		u.end(err, false)
	}
}

// onLink makes u, a new upstream of c's, a lane on the least used link
// of its backend. c.mu is held.
func (c *clientConn) onLink(u *upstream) error {
	for range 3 { // a link found open may close before the lane is on it
		l := c.srv.linkFor(u.backend)
		if l == nil {
			return net.ErrClosed
		}
		u.link = l
		u.wmu = &l.wmu
		if l.addLane(u) {
			return nil
		}
	}
	return errUpstreamClosed
}

// noteHold records, for a lane, the session a create or resume attaches
// or a detach or delete lets go. Before the request is sent: the CLI
// sends a session's first events ahead of the answer.
func (u *upstream) noteHold(body []byte, m *frame.Meta) {
	sid, ok := sessionID(body, m)
	if !ok {
		return
	}
	switch string(methodName(body, m)) {
	case "session.create", "session.resume":
		u.link.hold(string(sid), u)
		u.link.holdRegistration(paramsOf(body), u)
	case "session.detach", "session.delete":
		u.link.release(string(sid), u)
	}
}

// dedicate gives the client upstreams of its own from now on: it
// registered a process-wide provider, which the CLI binds to the
// connection. The lanes it has are let go; one that holds a session or
// waits for an answer refuses the registration instead (the CLI itself
// refuses these registrations while sessions are active). Reader only.
func (c *clientConn) dedicate() *rpcError {
	c.mu.Lock()
	if c.dedicated || c.srv.cfg.ConnectionsPerBackend <= 0 {
		c.mu.Unlock()
		return nil
	}
	var lanes []*upstream
	for _, u := range c.upstreams {
		if u.link != nil {
			lanes = append(lanes, u)
		}
	}
	for _, u := range lanes {
		if u.busy() {
			c.mu.Unlock()
			return &rpcError{Code: codeInternal, Message: "rpcproxy: register process-wide providers before creating sessions"}
		}
	}
	for _, u := range lanes {
		delete(c.upstreams, u.backend.Name)
	}
	c.dedicated = true
	c.mu.Unlock()
	for _, u := range lanes {
		u.close()
	}
	return nil
}

// busy reports whether a lane holds a session or waits for an answer.
func (u *upstream) busy() bool {
	u.mu.Lock()
	pending := len(u.pending)
	u.mu.Unlock()
	u.link.mu.Lock()
	held := len(u.held)
	u.link.mu.Unlock()
	return pending > 0 || held > 0
}
