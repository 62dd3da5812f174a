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
// backend and ring belong to the client's reader goroutine; inTurn is also
// cleared by upstream readers when the turn ends.
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
	// deleted: the client deleted the session. It is kept (without its
	// params) so the backend's session.deleted lifecycle still reaches it.
	deleted bool
}

// session returns the session's state on this connection, placing it by
// the ring when it is new (and place is set). Nil when the ring is empty.
func (c *clientConn) session(sid []byte, place bool) *session {
	c.mu.Lock()
	s := c.sessions[string(sid)]
	revive := s != nil && s.deleted && place
	if revive {
		s.deleted = false
	}
	c.mu.Unlock()
	if revive {
		c.srv.placed(s.backend.Name, 1)
	}
	if s != nil || !place {
		if s == nil {
			if b := c.srv.table.Ring().Lookup(sid); b != nil {
				return &session{backend: b}
			}
		}
		return s
	}
	ring := c.srv.table.Ring()
	b := ring.Lookup(sid)
	if b == nil {
		return nil
	}
	s = &session{backend: b, ring: ring}
	c.mu.Lock()
	c.sessions[string(sid)] = s
	c.mu.Unlock()
	c.srv.placed(b.Name, 1)
	return s
}

// forgetSession marks a session the client deleted.
func (c *clientConn) forgetSession(sid []byte) {
	c.mu.Lock()
	s := c.sessions[string(sid)]
	forget := s != nil && !s.deleted
	if forget {
		s.deleted, s.resume = true, nil
	}
	c.mu.Unlock()
	if forget {
		c.srv.placed(s.backend.Name, -1)
	}
}

// releaseSessions gives back the placement counts of a closed client.
func (c *clientConn) releaseSessions() {
	c.mu.Lock()
	sessions := c.sessions
	c.sessions = map[string]*session{}
	c.mu.Unlock()
	for _, s := range sessions {
		if !s.deleted {
			c.srv.placed(s.backend.Name, -1)
		}
	}
}

// forwardSession sends a session-scoped request to the session's backend,
// first moving the session if its backend is lost (at once) or no longer
// its owner on the ring (between turns only).
func (c *clientConn) forwardSession(body []byte, m *frame.Meta, sid []byte) {
	method := methodName(body, m)
	id := m.ID.Of(body)
	s := c.session(sid, true)
	if s == nil {
		c.replyError(id, proxyError(codeNoBackend, "no backend available", errorData{Retryable: true}))
		return
	}
	attach := false
	switch string(method) {
	case "session.create", "session.resume":
		attach = true
		// The client (re)attaches the session: place it where the ring says.
		s.resume = paramsOf(body)
		s.inTurn.Store(false)
		ring := c.srv.table.Ring()
		if owner := ring.Lookup(sid); owner != nil && owner.Name != s.backend.Name {
			c.setBackend(s, owner)
		}
		s.ring = ring
		c.log().Info("session placed", "session", string(sid), "backend", s.backend.Name, "method", string(method))
	case "session.delete":
		c.forgetSession(sid)
	default:
		if err := c.checkPlacement(s, sid); err != nil {
			c.replyError(id, err)
			return
		}
	}
	if !c.admit(body, m) {
		return
	}
	u, err := c.upstream(s.backend)
	if err != nil && !attach && !c.srv.usable(s.backend.Name) {
		// The dial failure just took the backend down: move the session now.
		if rerr := c.checkPlacement(s, sid); rerr != nil {
			c.replyError(id, rerr)
			return
		}
		u, err = c.upstream(s.backend)
	}
	if err != nil {
		c.replyError(id, asRPCError(err, s.backend.Name))
		return
	}
	if !attach && s.up != nil && s.up != u {
		// The connection the session lived on was lost, the backend is
		// back (or was never down): load the session on the new connection.
		if rerr := c.reattach(s, sid, u); rerr != nil {
			c.replyError(id, rerr)
			return
		}
	}
	s.up = u
	var turn *session
	if string(method) == "session.send" {
		turn = s // in a turn once the send is tracked on u (upstream.track)
	}
	c.forwardVia(u, body, m, turn)
}

// checkPlacement moves a session whose backend was lost, or whose ring owner
// changed while it is between turns.
func (c *clientConn) checkPlacement(s *session, sid []byte) *rpcError {
	ring := c.srv.table.Ring()
	if !c.srv.usable(s.backend.Name) {
		return c.move(s, sid, ring, "backend lost")
	}
	if s.ring == ring || s.inTurn.Load() {
		return nil
	}
	s.ring = ring
	if owner := ring.Lookup(sid); owner != nil && owner.Name != s.backend.Name {
		return c.move(s, sid, ring, "ring owner changed")
	}
	return nil
}

// move resumes the session on its ring owner with the params the client gave
// at create/resume, after detaching it from the old backend where that one
// still answers (the CLI does not stop two processes sharing a store from
// loading one session). Runs on the client's reader goroutine; the client's
// next frames wait for it, so the request that triggered it follows the
// resume on the new backend.
func (c *clientConn) move(s *session, sid []byte, ring *router.Ring, reason string) *rpcError {
	from := s.backend
	to := ring.Lookup(sid)
	if to == nil {
		return proxyError(codeNoBackend, "no backend available", errorData{Retryable: true, Backend: from.Name})
	}
	if len(s.resume) == 0 {
		return proxyError(codeBackendUnavailable, "session's backend changed and the proxy holds no create/resume parameters to restore it",
			errorData{Retryable: false, Backend: from.Name})
	}
	start := time.Now()
	if c.srv.usable(from.Name) {
		if u := c.existingUpstream(from); u != nil {
			detach, _ := json.Marshal(map[string]string{"sessionId": string(sid)})
			if _, err := u.callSync("session.detach", detach); err != nil {
				c.log().Debug("detach before move failed", "session", string(sid), "backend", from.Name, "error", err)
			}
		}
	}
	u, err := c.upstream(to)
	if err != nil {
		return asRPCError(err, to.Name)
	}
	if _, err := u.callSync("session.resume", s.resume); err != nil {
		c.log().Warn("session resume failed", "session", string(sid), "from", from.Name, "to", to.Name, "error", err)
		return asRPCError(err, to.Name)
	}
	s.up = u
	c.setBackend(s, to)
	s.ring = ring
	s.inTurn.Store(false)
	c.log().Info("session moved", "session", string(sid), "from", from.Name, "to", to.Name, "reason", reason, "took", time.Since(start))
	return nil
}

// reattach resumes a session on a new connection to the backend it already
// lives on, after its own connection there was lost.
func (c *clientConn) reattach(s *session, sid []byte, u *upstream) *rpcError {
	if len(s.resume) == 0 {
		return proxyError(codeBackendUnavailable, "session's connection was lost and the proxy holds no create/resume parameters to restore it",
			errorData{Retryable: false, Backend: u.backend.Name})
	}
	if _, err := u.callSync("session.resume", s.resume); err != nil {
		c.log().Warn("session reattach failed", "session", string(sid), "backend", u.backend.Name, "error", err)
		return asRPCError(err, u.backend.Name)
	}
	s.up = u
	s.inTurn.Store(false)
	c.log().Info("session reattached", "session", string(sid), "backend", u.backend.Name)
	return nil
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

// noteTurnEnd clears a session's turn when a backend reports session.idle.
// Called from upstream readers for every notification; Scan already found
// the event type, so it costs a comparison for everything else.
func (c *clientConn) noteTurnEnd(body []byte, m *frame.Meta) {
	if m.SessionID.Len() == 0 || !bytes.Equal(m.EventType.Of(body), idleEvent) {
		return
	}
	c.mu.Lock()
	s := c.sessions[string(m.SessionID.Of(body))]
	c.mu.Unlock()
	if s != nil {
		s.inTurn.Store(false)
	}
}

// internalResult is the answer to a request the proxy sent on its own behalf.
type internalResult struct {
	result json.RawMessage
	err    *rpcError
}

var errInternalTimeout = errors.New("backend did not answer in time")

// callSync sends a request of the proxy's own on a running upstream and
// waits for the answer, bounded by the handshake timeout.
func (u *upstream) callSync(method string, params json.RawMessage) (json.RawMessage, error) {
	ch := make(chan internalResult, 1)
	id, err := u.track(pendingReq{wait: ch})
	if err != nil {
		return nil, err
	}
	u.write(requestBody(id, method, params))
	if err := u.flush(); err != nil {
		u.fail(err)
	}
	timer := time.NewTimer(u.c.srv.cfg.HandshakeTimeout)
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
