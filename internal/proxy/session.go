package proxy

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/rpcproxy/rpcproxy/internal/frame"
	"github.com/rpcproxy/rpcproxy/internal/router"
)

// session is what the proxy keeps of a session on one client connection.
// backend, up, ring and resume belong to the client's reader goroutine,
// except while moving is set: then they belong to the session's mover
// goroutine, and the reader only appends the session's frames to held.
// inTurn is also cleared by upstream readers when the turn ends.
type session struct {
	backend *router.Backend
	// up is the upstream connection the session was attached on. When that
	// connection is lost, the CLI unloads the session: a new connection to
	// the same backend must resume it before anything else.
	up *upstream
	// ring is the ring the placement was last checked against: a new ring
	// (a backend joined, left or started draining) triggers a check.
	ring *router.Ring
	// resume holds the params of the client's last session.create or
	// session.resume: what a resume elsewhere must carry again (tools,
	// provider, flags). In memory only; never logged.
	resume json.RawMessage
	// inTurn is set when a session.send is tracked on an upstream and
	// cleared by session.idle (or the send's refusal): a session moves
	// between backends only between turns.
	inTurn atomic.Bool
	// turnStart is when the turn's session.send was tracked (unix
	// nanoseconds; zero when metrics and request timeouts are off).
	turnStart atomic.Int64
	// deleted: the client deleted or detached the session (it is released:
	// no longer counted against MaxSessions nor placed on its backend). It
	// stays in the map a while (see release) so the backend's
	// session.lifecycle about it still reaches the client.
	deleted bool
	// moving, held and heldBytes are guarded by the client's mu: a mover
	// goroutine is moving or reattaching the session, and the client's
	// frames for it wait in held, in order, until it is done.
	moving    bool
	held      []*frame.Buffer
	heldBytes int
	// sid is the session's id, the same string as its key in the map.
	sid string
	// gen counts the times the session was placed (created or taken back),
	// so a late refusal of an earlier placement leaves a later one alone.
	// Written by the reader under clientConn.mu.
	gen uint64
}

// Reasons a session moves to another backend, as Config.OnSessionMoved
// reports them.
const (
	// ReasonBackendLost: its backend stopped answering (a failover).
	ReasonBackendLost = "backend lost"
	// ReasonOwnerChanged: its owner on the ring changed (a backend joined,
	// left or is draining); it moved at a turn boundary.
	ReasonOwnerChanged = "ring owner changed"
)

// Bounds of the frames a session's client may send while the session
// moves: more are refused (retryable), never buffered without limit. One
// frame is always taken when none waits.
const (
	maxHeldBytes  = 4 << 20
	maxHeldFrames = 64
)

// freshPlace is a session placed by the request that carries it: when the
// backend refuses that request (or its connection is lost first), the
// client does not hold the session and its place is given back.
type freshPlace struct {
	s   *session
	gen uint64
}

// maxReleased bounds the released sessions a client's map keeps: past it
// the oldest is forgotten, so the map tracks the live sessions.
const maxReleased = 64

// session returns the session's state on this connection. With place, a
// new session is placed by the ring (see placeSession); nil then means the
// ring is empty or a limit refused it. Without place, an unknown session
// gets an unstored state naming its ring owner, or nil.
func (c *clientConn) session(sid []byte, place bool) *session {
	if place {
		s, _, _ := c.placeSession(sid)
		return s
	}
	c.mu.Lock()
	s := c.sessions[string(sid)]
	c.mu.Unlock()
	if s == nil {
		if b := c.srv.table.Ring().Lookup(sid); b != nil {
			return &session{backend: b}
		}
	}
	return s
}

// placeSession returns the session's state on this connection, placing it
// by the ring when it is new, or taking back a released one (then fresh
// names the placement). A session beyond MaxSessions is refused. Reader
// goroutine only (the only one that adds sessions).
func (c *clientConn) placeSession(sid []byte) (s *session, fresh freshPlace, rerr *rpcError) {
	c.mu.Lock()
	s = c.sessions[string(sid)]
	if s != nil && !s.deleted {
		c.mu.Unlock()
		return s, freshPlace{}, nil
	}
	if max := c.srv.cfg.MaxSessions; max > 0 && c.lim.live >= max {
		c.mu.Unlock()
		c.srv.limitReached(LimitSessions, "session refused: limit reached", "client", c.id)
		return nil, freshPlace{}, proxyError(codeTooManySessions,
			fmt.Sprintf("too many sessions on this connection (limit %d): delete or detach one first", max),
			errorData{Reason: LimitSessions.String()})
	}
	if s != nil {
		// Taken back: it stays on the backend it was on.
		s.deleted = false
		s.gen++
		c.lim.live++
		c.mu.Unlock()
		c.srv.placed(s.backend.Name, 1)
		return s, freshPlace{s: s, gen: s.gen}, nil
	}
	c.mu.Unlock()
	ring := c.srv.table.Ring()
	b := ring.Lookup(sid)
	if b == nil {
		return nil, freshPlace{}, proxyError(codeNoBackend, "no backend available", errorData{Retryable: true})
	}
	s = &session{backend: b, ring: ring, sid: string(sid)}
	c.mu.Lock()
	c.sessions[s.sid] = s
	c.lim.live++
	c.mu.Unlock()
	c.srv.placed(b.Name, 1)
	return s, freshPlace{s: s}, nil
}

// placeRefused gives back the place of a session whose placing request the
// backend refused (a session.resume of an unknown session, a session.send
// naming none) or lost: the client does not hold it, and it must not count
// against MaxSessions nor stay in the map. Called from upstream goroutines;
// the params stay until the entry leaves the map (s.resume is reader state).
func (c *clientConn) placeRefused(f freshPlace) {
	c.mu.Lock()
	s := f.s
	if s.deleted || s.gen != f.gen || c.sessions[s.sid] != s {
		c.mu.Unlock()
		return // released or placed again since
	}
	backend := s.backend.Name
	c.releaseLocked(s)
	c.mu.Unlock()
	c.srv.placed(backend, -1)
}

// forgetSession releases a session the client deleted or detached: it no
// longer counts as live, its params are dropped, and the oldest released
// session beyond maxReleased leaves the map.
func (c *clientConn) forgetSession(sid []byte) {
	c.mu.Lock()
	s := c.sessions[string(sid)]
	forget := s != nil && !s.deleted
	if forget {
		c.setResumeLocked(s, nil)
		c.releaseLocked(s)
	}
	c.mu.Unlock()
	if forget {
		c.srv.placed(s.backend.Name, -1)
	}
}

// releaseLocked marks a live session released and forgets the oldest
// released one beyond maxReleased. c.mu held.
func (c *clientConn) releaseLocked(s *session) {
	s.deleted = true
	c.lim.live--
	c.lim.released = append(c.lim.released, s.sid)
	if len(c.lim.released) > maxReleased {
		old := c.lim.released[0]
		c.lim.released = append(c.lim.released[:0], c.lim.released[1:]...)
		if o := c.sessions[old]; o != nil && o.deleted {
			c.setResumeLocked(o, nil)
			delete(c.sessions, old)
		}
	}
}

// releaseSessions gives back the placement counts of a closed client.
func (c *clientConn) releaseSessions() {
	c.mu.Lock()
	sessions := c.sessions
	c.sessions = map[string]*session{}
	c.lim.live, c.lim.released, c.lim.paramsBytes = 0, nil, 0
	c.mu.Unlock()
	for _, s := range sessions {
		if !s.deleted {
			c.srv.placed(s.backend.Name, -1)
		}
	}
}

// forwardSession sends a session-scoped request to the session's backend.
// A session whose backend is lost (at once) or is no longer its owner on
// the ring (between turns only), or whose connection there was lost, is
// first moved or reattached by a goroutine of its own: this request and the
// session's next frames wait for it while the client's other sessions flow.
func (c *clientConn) forwardSession(body []byte, m *frame.Meta, sid []byte) {
	method := methodName(body, m)
	id := m.ID.Of(body)
	var params json.RawMessage
	attach := string(method) == "session.create" || string(method) == "session.resume"
	if attach {
		// Kept for failover as long as the session lives: bounded, and
		// refused before the session takes a place.
		params = paramsOf(body)
		if max := c.srv.cfg.MaxSessionParams; max > 0 && len(params) > max {
			c.srv.limitReached(LimitSessionParams, "session create/resume refused: limit reached", "client", c.id, "bytes", len(params))
			c.replyError(id, proxyError(codeParamsTooLarge,
				fmt.Sprintf("session parameters too large: %d bytes, limit %d", len(params), max),
				errorData{Reason: LimitSessionParams.String()}))
			return
		}
	}
	release := string(method) == "session.delete" || string(method) == "session.detach"
	var s *session
	var fresh freshPlace
	var rerr *rpcError
	if release {
		// Releasing takes no place: an unknown session goes to its ring
		// owner without an entry, even at MaxSessions.
		if s = c.session(sid, false); s == nil {
			rerr = proxyError(codeNoBackend, "no backend available", errorData{Retryable: true})
		}
	} else {
		s, fresh, rerr = c.placeSession(sid)
	}
	if rerr != nil {
		c.replyError(id, rerr)
		return
	}
	if attach && !c.roomForParams(s, len(params)) {
		c.srv.limitReached(LimitSessionParams, "session create/resume refused: client's params limit reached", "client", c.id, "bytes", len(params))
		c.replyError(id, proxyError(codeParamsTooLarge,
			fmt.Sprintf("session parameters too large: this connection keeps %d bytes of them already, limit %d", c.keptParams(), c.srv.cfg.MaxClientParams),
			errorData{Reason: "max_client_params_bytes"}))
		if fresh.s != nil {
			c.placeRefused(fresh)
		}
		return
	}
	if c.hold(s, body, true) {
		return
	}
	switch string(method) {
	case "session.create", "session.resume":
		// The client (re)attaches the session: place it where the ring says.
		c.setResume(s, params)
		s.inTurn.Store(false)
		ring := c.srv.table.Ring()
		if owner := ring.Lookup(sid); owner != nil && owner.Name != s.backend.Name {
			c.setBackend(s, owner)
		}
		s.ring = ring
		c.log().Info("session placed", "session", string(sid), "backend", s.backend.Name, "method", string(method))
	case "session.delete", "session.detach":
		// Either way the client no longer holds the session.
		c.forgetSession(sid)
	default:
		if to, reason := c.placement(s, sid); to != nil || reason != "" {
			c.startMove(s, string(sid), body, to, reason)
			return
		}
	}
	if !c.admit(body, m) {
		return
	}
	u, err := c.upstream(s.backend)
	if err != nil {
		c.replyError(id, asRPCError(err, s.backend.Name))
		return
	}
	if u.link != nil && string(method) == "session.detach" && u.link.othersHold(string(sid), u) {
		// Another client holds the session on the same shared connection:
		// one detach there would release it for both. This client's hold
		// ends here, as its own connection's would.
		u.link.release(string(sid), u)
		c.reply(id, json.RawMessage(`{"success":true}`))
		return
	}
	if !attach && !release && s.up != nil && s.up != u {
		// The connection the session lived on was lost and the backend
		// still answers (or was never down): load the session on the new
		// connection first. A delete or detach needs it loaded nowhere.
		c.startMove(s, string(sid), body, nil, "connection lost")
		return
	}
	c.sendOnSession(s, u, body, m, fresh, false)
}

// sendOnSession forwards a session request on u, the session's upstream;
// fresh names the session if this request placed it.
func (c *clientConn) sendOnSession(s *session, u *upstream, body []byte, m *frame.Meta, fresh freshPlace, flushNow bool) {
	s.up = u
	if u.link != nil {
		u.noteHold(body, m)
	}
	p := pendingReq{fresh: fresh}
	if string(m.Method.Of(body)) == "session.send" {
		p.turn = s // in a turn once the send is tracked on u (upstream.track)
	}
	if !c.forwardVia(u, body, m, router.ClassSession, p, flushNow) && fresh.s != nil {
		c.placeRefused(fresh)
	}
}

// placement says whether a session must move before its next request: to
// its ring owner (to) when its backend was lost, or when its owner changed
// and it is between turns; reason names why. A lost backend with no owner
// left gives a nil to and a reason: the move then fails with the reason.
func (c *clientConn) placement(s *session, sid []byte) (to *router.Backend, reason string) {
	ring := c.srv.table.Ring()
	if !c.srv.usable(s.backend.Name) {
		s.ring = ring
		if to = ring.Lookup(sid); to == nil {
			return nil, ReasonBackendLost
		}
		return to, ReasonBackendLost
	}
	if s.ring == ring || s.inTurn.Load() {
		return nil, ""
	}
	s.ring = ring
	owner := ring.Lookup(sid)
	switch {
	case owner == nil:
	case owner.Name != s.backend.Name:
		return owner, ReasonOwnerChanged
	case owner != s.backend:
		// The same server, updated at reload (token, weight): its next
		// connection uses the new token.
		c.mu.Lock()
		s.backend = owner
		c.mu.Unlock()
	}
	return nil, ""
}

// hold appends a frame for a session that is being moved to the frames
// waiting for the move, and reports whether it did. A request that does
// not fit is refused at once (retryable). Client reader only.
func (c *clientConn) hold(s *session, body []byte, request bool) bool {
	c.mu.Lock()
	if !s.moving {
		c.mu.Unlock()
		return false
	}
	fits := len(s.held) == 0 || len(s.held) < maxHeldFrames && s.heldBytes+len(body) <= maxHeldBytes
	if fits {
		s.held = append(s.held, frame.Copy(body))
		s.heldBytes += len(body)
	}
	c.mu.Unlock()
	if !fits {
		c.srv.limitHit(limitMoveQueue)
	}
	if !fits && request {
		var m frame.Meta
		_ = frame.Scan(body, &m)
		c.replyError(m.ID.Of(body), proxyError(codeOverloaded, "too many requests waiting for the session to move", errorData{Retryable: true}))
	}
	return true
}

// startMove hands the session to a mover goroutine with body as its first
// held frame: to is the backend to move it to, or nil to reattach it on a
// new connection to its own backend. Client reader only.
func (c *clientConn) startMove(s *session, sid string, body []byte, to *router.Backend, reason string) {
	c.mu.Lock()
	s.moving = true
	s.held = append(s.held, frame.Copy(body))
	s.heldBytes += len(body)
	c.mu.Unlock()
	c.wg.Add(1)
	go c.relocate(s, sid, to, reason)
}

// relocate is a session's mover goroutine: it moves the session to to (or
// reattaches it when to is nil), then forwards the frames held meanwhile
// in order, or answers the held requests with the move's error.
func (c *clientConn) relocate(s *session, sid string, to *router.Backend, reason string) {
	defer c.wg.Done()
	defer c.recoverPeer("session move")
	var rerr *rpcError
	switch {
	case to != nil:
		rerr = c.move(s, sid, to, reason)
	case reason == "connection lost":
		rerr = c.reattach(s, sid)
	default:
		rerr = proxyError(codeNoBackend, "no backend available", errorData{Retryable: true, Backend: s.backend.Name})
	}
	var m frame.Meta
	for {
		c.mu.Lock()
		if len(s.held) == 0 || c.closing() {
			for _, b := range s.held {
				b.Release()
			}
			s.held, s.heldBytes, s.moving = nil, 0, false
			c.mu.Unlock()
			return
		}
		b := s.held[0]
		s.held[0] = nil
		s.held = s.held[1:]
		s.heldBytes -= len(b.B)
		c.mu.Unlock()
		c.forwardHeld(s, b.B, &m, rerr)
		b.Release()
	}
}

// forwardHeld forwards one frame held during a move, or answers it with the
// move's error. Mover goroutine only.
func (c *clientConn) forwardHeld(s *session, body []byte, m *frame.Meta, moveErr *rpcError) {
	if frame.Scan(body, m) != nil {
		return
	}
	request := m.Kind == frame.KindRequest
	if moveErr != nil {
		if request {
			c.replyError(m.ID.Of(body), moveErr)
		}
		return
	}
	u, err := c.upstream(s.backend)
	if err != nil {
		if request {
			c.replyError(m.ID.Of(body), asRPCError(err, s.backend.Name))
		}
		return
	}
	if !request {
		if u.write(body) == nil {
			if err := u.flush(); err != nil {
				u.fail(err)
			}
		}
		return
	}
	switch string(m.Method.Of(body)) {
	case "session.create", "session.resume":
		c.setResume(s, paramsOf(body))
		s.inTurn.Store(false)
	case "session.delete", "session.detach":
		if sid, ok := sessionID(body, m); ok {
			c.forgetSession(sid)
		}
	}
	if !c.admit(body, m) {
		return
	}
	c.sendOnSession(s, u, body, m, freshPlace{}, true)
}

// countMove counts a successful move for metrics: a failover when the
// session's backend was lost, else a move at a turn boundary.
func (c *clientConn) countMove(reason string) {
	switch {
	case c.obs == nil:
	case reason == ReasonBackendLost:
		c.obs.Failover()
	default:
		c.obs.TurnBoundaryMove()
	}
}

// verdictWait bounds how long a mover waits for the health checker's
// verdict on a backend whose new connection failed.
const verdictWait = 3 * time.Second

// move resumes the session on to with the params the client gave at
// create/resume, after detaching it from the old backend where that one
// still answers (the CLI does not stop two processes sharing a store from
// loading one session). Mover goroutine only.
func (c *clientConn) move(s *session, sid string, to *router.Backend, reason string) *rpcError {
	from := s.backend
	if len(s.resume) == 0 {
		return proxyError(codeBackendUnavailable, "session's backend changed and the proxy holds no create/resume parameters to restore it",
			errorData{Retryable: false, Backend: from.Name})
	}
	start := time.Now()
	if c.srv.usable(from.Name) {
		if u := c.existingUpstream(from); u != nil {
			detach, _ := json.Marshal(map[string]string{"sessionId": sid})
			if u.link != nil && u.link.release(sid, u) > 0 {
				// Another client still holds it on that connection: the
				// backend keeps it loaded for that one.
			} else if _, err := u.callSync("session.detach", detach); err != nil {
				c.log().Debug("detach before move failed", "session", sid, "backend", from.Name, "error", err)
			}
		}
	}
	u, err := c.upstream(to)
	if err != nil {
		return asRPCError(err, to.Name)
	}
	if u.link != nil {
		u.link.hold(sid, u) // before the resume: its events come ahead of its answer
		u.link.holdRegistration(s.resume, u)
	}
	if _, err := u.callSync("session.resume", s.resume); err != nil {
		c.log().Warn("session resume failed", "session", sid, "from", from.Name, "to", to.Name, "error", err)
		return asRPCError(err, to.Name)
	}
	s.up = u
	c.setBackend(s, to)
	s.inTurn.Store(false)
	c.log().Info("session moved", "session", sid, "from", from.Name, "to", to.Name, "reason", reason, "took", time.Since(start))
	c.countMove(reason)
	if f := c.srv.cfg.OnSessionMoved; f != nil {
		f(sid, from.Name, to.Name, reason)
	}
	return nil
}

// reattach resumes a session on a new connection to the backend it already
// lives on, after its own connection there was lost. When that connection
// cannot be had either, it waits for the health checker's verdict on the
// backend (the failure asked for a probe): a backend found down moves the
// session to its new owner. Mover goroutine only.
func (c *clientConn) reattach(s *session, sid string) *rpcError {
	b := s.backend
	if len(s.resume) == 0 {
		return proxyError(codeBackendUnavailable, "session's connection was lost and the proxy holds no create/resume parameters to restore it",
			errorData{Retryable: false, Backend: b.Name})
	}
	u, err := c.upstream(b)
	if err == nil {
		if u.link != nil {
			u.link.hold(sid, u)
			u.link.holdRegistration(s.resume, u)
		}
		_, err = u.callSync("session.resume", s.resume)
	}
	if err == nil {
		s.up = u
		s.inTurn.Store(false)
		c.log().Info("session reattached", "session", sid, "backend", b.Name)
		return nil
	}
	rerr := asRPCError(err, b.Name)
	if rerr.Code != codeBackendUnavailable || !c.srv.awaitDown(b.Name, verdictWait, c.done) {
		c.log().Warn("session reattach failed", "session", sid, "backend", b.Name, "error", err)
		return rerr
	}
	to := c.srv.table.Ring().Lookup([]byte(sid))
	if to == nil {
		return proxyError(codeNoBackend, "no backend available", errorData{Retryable: true, Backend: b.Name})
	}
	return c.move(s, sid, to, ReasonBackendLost)
}

func (c *clientConn) setBackend(s *session, b *router.Backend) {
	c.srv.placed(s.backend.Name, -1)
	c.srv.placed(b.Name, 1)
	c.mu.Lock() // upstream goroutines read it under c.mu (endTurnsOn)
	s.backend = b
	c.mu.Unlock()
}

// endTurnsOn ends, towards the client, every turn that was running on a
// backend that was lost: the turn cannot finish there, and an SDK waiting
// for session.idle would otherwise wait for ever. Each such session gets a
// session.error then a session.idle event (both ephemeral), so sendAndWait
// fails with the reason; the session's next request moves it.
//
// A session whose session.send was still unanswered is skipped: that send
// gets the retryable error, and the turn never started as far as the client
// knows.
func (c *clientConn) endTurnsOn(backend string, unstarted map[*session]bool) {
	var ended []string
	c.busy.Add(1) // until the turn ends are written (see noteTurnEnd)
	defer c.busy.Add(-1)
	c.mu.Lock()
	for sid, s := range c.sessions {
		if unstarted[s] {
			s.inTurn.Store(false)
			continue
		}
		if s.backend.Name == backend && s.inTurn.Swap(false) {
			ended = append(ended, sid)
		}
	}
	c.mu.Unlock()
	for _, sid := range ended {
		c.log().Warn("turn lost with its backend", "session", sid, "backend", backend)
		c.sendBody(sessionEvent(sid, "session.error", map[string]any{
			"errorType": "backend_unavailable",
			"message":   "rpcproxy: the CLI server running this turn (" + backend + ") was lost; the turn did not finish. The session carries on at its next request.",
		}))
		c.sendBody(sessionEvent(sid, "session.idle", map[string]any{}))
	}
}

// sessionEvent builds a session.event notification of the proxy's own.
func sessionEvent(sid, typ string, data map[string]any) []byte {
	var id [16]byte
	_, _ = rand.Read(id[:])
	id[6] = id[6]&0x0f | 0x40 // a version 4 UUID, as the CLI's event ids are
	id[8] = id[8]&0x3f | 0x80
	b, _ := json.Marshal(map[string]any{
		"jsonrpc": "2.0",
		"method":  "session.event",
		"params": map[string]any{
			"sessionId": sid,
			"event": map[string]any{
				"type":      typ,
				"data":      data,
				"id":        fmt.Sprintf("%x-%x-%x-%x-%x", id[0:4], id[4:6], id[6:8], id[8:10], id[10:]),
				"timestamp": time.Now().UTC().Format("2006-01-02T15:04:05.000Z"),
				"parentId":  nil,
				"ephemeral": true,
			},
		},
	})
	return b
}

func (c *clientConn) existingUpstream(b *router.Backend) *upstream {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.upstreams[b.Name]
}

var idleEvent = []byte("session.idle")

// noteTurnEnd clears a session's turn when a backend reports session.idle,
// and reports whether it did: the caller then writes the event and counts
// c.busy off (counted on here first, so a draining server never sees the
// turn ended before the client has its session.idle). Called from upstream
// readers for every notification; Scan already found the event type, so it
// costs a comparison for everything else.
func (c *clientConn) noteTurnEnd(body []byte, m *frame.Meta) bool {
	if m.SessionID.Len() == 0 || !bytes.Equal(m.EventType.Of(body), idleEvent) {
		return false
	}
	c.mu.Lock()
	s := c.sessions[string(m.SessionID.Of(body))]
	c.mu.Unlock()
	if s == nil {
		return false
	}
	c.busy.Add(1)
	if s.inTurn.Swap(false) && c.obs != nil {
		if t := s.turnStart.Load(); t != 0 {
			c.obs.TurnEnded(time.Duration(time.Now().UnixNano() - t))
		}
	}
	return true
}

// internalResult is the answer to a request the proxy sent on its own behalf.
type internalResult struct {
	result json.RawMessage
	err    *rpcError
}

var errInternalTimeout = errors.New("backend did not answer in time")

// callSync sends a request of the proxy's own on an upstream (open or
// still opening) and waits for the answer, bounded by the dial and
// handshake timeouts. Never on the client's reader goroutine.
func (u *upstream) callSync(method string, params json.RawMessage) (json.RawMessage, error) {
	ch := make(chan internalResult, 1)
	id, err := u.request(method, params, pendingReq{wait: ch})
	if err != nil {
		return nil, err
	}
	if err := u.flush(); err != nil {
		u.fail(err)
	}
	cfg := &u.c.srv.cfg
	timer := time.NewTimer(cfg.DialTimeout + cfg.HandshakeTimeout)
	defer timer.Stop()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, r.err
		}
		return r.result, nil
	case <-timer.C:
		u.forget(id)
		return nil, fmt.Errorf("%s on %s: %w", method, u.backend.Name, errInternalTimeout)
	case <-u.c.done:
		return nil, errUpstreamClosed
	}
}

// setResume keeps params as the session's create/resume params, counted
// against the client's MaxClientParams. The session's owner only (reader,
// or its mover).
func (c *clientConn) setResume(s *session, params json.RawMessage) {
	c.mu.Lock()
	c.setResumeLocked(s, params)
	c.mu.Unlock()
}

func (c *clientConn) setResumeLocked(s *session, params json.RawMessage) {
	c.lim.paramsBytes += len(params) - len(s.resume)
	s.resume = params
}

// roomForParams reports whether n bytes of params for s (replacing what s
// keeps) fit the client's MaxClientParams.
func (c *clientConn) roomForParams(s *session, n int) bool {
	max := c.srv.cfg.MaxClientParams
	if max <= 0 {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lim.paramsBytes-len(s.resume)+n <= max
}

// keptParams is the size of the create/resume params the client's sessions keep.
func (c *clientConn) keptParams() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lim.paramsBytes
}
