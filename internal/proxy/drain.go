package proxy

import (
	"context"
	"time"
)

// A graceful stop ("drain"), as a load balancer does it: the server stops
// accepting (StopAccepting), then serves the clients it has as before, new
// requests and new turns included, and closes each one as soon as it is
// idle (Shutdown): nothing in flight, as seen by idleLocked, and nothing
// read from or answered to it for drainQuiet. A client is never closed
// between a request the proxy forwarded and its answer, nor between a
// session.send and its session.idle; a frame it sends while the proxy
// closes it is never handled (no backend sees it), so the client knows that
// every request left unanswered did not run and may retry it on a new
// connection. What is still open when the caller's deadline passes is
// closed by Close.

// drainPoll is how often a draining server looks for idle clients.
const drainPoll = 50 * time.Millisecond

// drainQuiet is how long a client must have been quiet (no frame read, no
// answer or turn end written) before a drain closes it: a client usually
// sends its next request right after an answer or a session.idle, and that
// request should not meet a closing connection.
const drainQuiet = 500 * time.Millisecond

// ShuttingDown reports whether the server stopped accepting for good
// (StopAccepting or Shutdown was called): a readiness check should fail from
// then on. Safe from any goroutine.
func (s *Server) ShuttingDown() bool {
	select {
	case <-s.stopping:
		return true
	default:
		return false
	}
}

// ShutdownStarted is closed when the server stops accepting for good: for
// whoever must react at once (a readiness endpoint, a metrics gauge).
func (s *Server) ShutdownStarted() <-chan struct{} { return s.stopping }

// StopAccepting closes the listener (Serve returns ErrServerClosed) and
// marks the server shutting down; its clients are served as before. When
// the listening socket is shared with another process (a seamless upgrade),
// only this process's descriptor closes: the other keeps accepting, the
// connections queued included. Safe to call more than once.
func (s *Server) StopAccepting() {
	s.drainOnce.Do(func() {
		close(s.stopping)
		s.mu.Lock()
		l := s.listener
		s.mu.Unlock()
		if l != nil {
			l.Close()
		}
	})
}

// Shutdown drains the server: it stops accepting, keeps serving every
// client and closes each one once it is idle (see the top of this file). It
// returns nil when no client is left, ctx.Err() when ctx ends first (the
// clients left are still open: call Close), or ErrServerClosed when Close
// was called meanwhile.
func (s *Server) Shutdown(ctx context.Context) error {
	s.StopAccepting()
	tick := time.NewTicker(drainPoll)
	defer tick.Stop()
	type mark struct {
		activity uint64
		since    time.Time
	}
	seen := map[*clientConn]mark{}
	for {
		s.mu.Lock()
		clients := make([]*clientConn, 0, len(s.clients))
		for c := range s.clients {
			clients = append(clients, c)
		}
		s.mu.Unlock()
		if len(clients) == 0 {
			return nil
		}
		now := time.Now()
		next := make(map[*clientConn]mark, len(clients))
		for _, c := range clients {
			a := c.activity.Load()
			m, ok := seen[c]
			if !ok || m.activity != a {
				m = mark{activity: a, since: now}
			} else if now.Sub(m.since) >= drainQuiet && c.closeIfIdle() {
				c.log().Debug("idle client closed: shutting down")
				continue
			}
			next[c] = m
		}
		seen = next
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.done:
			return ErrServerClosed
		case <-tick.C:
		}
	}
}

// closeIfIdle closes the client if it is idle, and reports whether it did.
// It never waits: a client whose reader is handling a frame, or that
// someone is writing to, is not idle.
func (c *clientConn) closeIfIdle() bool {
	if !c.dispatchMu.TryLock() {
		return false
	}
	defer c.dispatchMu.Unlock()
	if !c.idleLocked() {
		return false
	}
	c.shutdown()
	return true
}

// idleLocked reports whether the client waits for nothing: no request
// pending, no fan-out, no turn running or ending, no session moving, no
// server→client request unanswered, nothing unflushed either way. When it
// is, nothing more is written to the client (it is about to close).
// c.dispatchMu is held, so the reader is between frames.
func (c *clientConn) idleLocked() bool {
	if c.pending.Load() > 0 || c.busy.Load() > 0 || c.dirty.len() > 0 {
		return false
	}
	c.mu.Lock()
	busy := len(c.s2c) > 0
	for _, s := range c.sessions {
		if busy = s.moving || s.inTurn.Load(); busy {
			break
		}
	}
	c.mu.Unlock()
	if busy || !c.wmu.TryLock() {
		return false
	}
	idle := !c.wfailed && c.w.Buffered() == 0 && (c.ob == nil || c.ob.idleLocked())
	if idle {
		c.wfailed = true
	}
	c.wmu.Unlock()
	return idle
}
