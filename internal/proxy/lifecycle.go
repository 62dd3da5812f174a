package proxy

import (
	"time"

	"github.com/rpcproxy/rpcproxy/internal/router"
)

// With Config.PoolLifecycle every client gets the session.lifecycle
// notifications of every session in the pool, as a direct connection gets
// those of every session on its server. The CLI sends each to every
// connection it has, so each of a backend's shared links carries it: the
// link in the backend's first slot, its listener, passes it on, the others
// drop it, so a client sees each once. The proxy keeps a listener open to
// every usable backend, clients or not (ensureListeners: at every change
// of the health view, when a client connects, and a second after a
// listener is lost). A notification sent while a backend has no listener
// (between its loss and its replacement) is not seen, as a direct client
// does not see those sent while it is not connected.

// ensureListeners opens the listener of every usable backend that has
// none. It never waits: links open on their own goroutines.
func (s *Server) ensureListeners() {
	if !s.cfg.PoolLifecycle || s.cfg.ConnectionsPerBackend <= 0 {
		return
	}
	ring := s.table.Ring()
	if ring == nil {
		return
	}
	for _, b := range ring.Backends() {
		if s.usable(b.Name) {
			s.ensureListener(b)
		}
	}
}

func (s *Server) ensureListener(b *router.Backend) {
	s.linksMu.Lock()
	defer s.linksMu.Unlock()
	if s.linksClosed {
		return
	}
	ls := s.links[b.Name]
	if ls == nil {
		ls = make([]*link, s.cfg.ConnectionsPerBackend)
		s.links[b.Name] = ls
	}
	if l := ls[0]; l != nil {
		l.mu.Lock()
		usable := !l.closed && l.backend == b
		if !usable {
			l.orphan = true
		}
		l.mu.Unlock()
		if usable {
			return
		}
		ls[0] = nil
		l.closeIfUnused()
	}
	s.startLinkLocked(b, ls, 0)
}

// relisten asks for the listeners again a second after one was lost (the
// health view may not change: the backend can be up and the connection
// alone lost).
func (s *Server) relisten() {
	time.AfterFunc(time.Second, func() {
		select {
		case <-s.done:
		default:
			s.ensureListeners()
		}
	})
}

// broadcast writes a lifecycle notification to every client that may see
// it (every client once connected, when clients need a token), without
// blocking (their writers never block with shared upstreams). list is the
// caller's reused slice. Called by a listener's reader.
func (s *Server) broadcast(body []byte, list *[]*clientConn) {
	cs := (*list)[:0]
	s.mu.Lock()
	for c := range s.clients {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	for i, c := range cs {
		if s.cfg.Token == "" || c.lim.authed.Load() {
			c.sendCopy(body)
		}
		cs[i] = nil
	}
	*list = cs[:0]
}
