package proxy

// Read-only views of the proxy for operators (the admin API). Each walks
// every client under its lock: off the hot path, never called per frame.

// SessionHolder is one client connection holding a session.
type SessionHolder struct {
	// Client is the connection's id (as in the proxy's logs).
	Client uint64
	// Backend is the backend the session lives on for this client now.
	Backend string
	// Moving: the session is being moved or reattached right now.
	Moving bool
}

// SessionHolders returns every client connection that holds the session
// (created or resumed it and has not deleted it), in no order.
func (s *Server) SessionHolders(sid string) []SessionHolder {
	var out []SessionHolder
	for _, c := range s.clientList() {
		c.mu.Lock()
		if ss := c.sessions[sid]; ss != nil && !ss.deleted {
			out = append(out, SessionHolder{Client: c.id, Backend: ss.backend.Name, Moving: ss.moving})
		}
		c.mu.Unlock()
	}
	return out
}

// ClientsPerBackend counts, for each backend, the client connections that
// have a connection open (or opening) to it.
func (s *Server) ClientsPerBackend() map[string]int {
	out := make(map[string]int)
	for _, c := range s.clientList() {
		c.mu.Lock()
		for name := range c.upstreams {
			out[name]++
		}
		c.mu.Unlock()
	}
	return out
}

// SessionCounts returns the sessions placed on each backend over all client
// connections (SessionCount of every backend at once).
func (s *Server) SessionCounts() map[string]int {
	s.placedMu.Lock()
	defer s.placedMu.Unlock()
	out := make(map[string]int, len(s.counts))
	for name, n := range s.counts {
		out[name] = n
	}
	return out
}

// clientList is a copy of the open client connections.
func (s *Server) clientList() []*clientConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*clientConn, 0, len(s.clients))
	for c := range s.clients {
		out = append(out, c)
	}
	return out
}
