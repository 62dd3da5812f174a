package fakecli

import (
	"encoding/json"
	"errors"
)

// Process-wide provider registrations.

// errFsProviderGone is what the CLI answers once the connection that
// hosts session storage has left.
var errFsProviderGone = errors.New("session filesystem permission path authority is disconnected")

// fsProviderGone reports a sessionFs provider whose connection closed.
func (s *Server) fsProviderGone() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fsProvider != nil && s.fsProvider.closed()
}

func handleSetFsProvider(s *Server, c *conn, req *request) (any, *RPCError) {
	return s.claimProvider(c, req.method, &s.fsProvider, "session filesystem provider", "sessionFs.setProvider")
}

func handleSetLLMProvider(s *Server, c *conn, req *request) (any, *RPCError) {
	return s.claimProvider(c, req.method, &s.llmProvider, "LLM inference provider", "llmInference.setProvider")
}

// claimProvider makes c the owner of a process-wide registration. As in
// the CLI, a registration is refused while any session is loaded, and an
// owner stays the owner even after its connection has closed.
func (s *Server) claimProvider(c *conn, method string, owner **conn, what, call string) (any, *RPCError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.sessions) > 0 {
		return nil, failed(method, "Cannot set %s while sessions are active. Call %s before creating any sessions.", what, call)
	}
	if *owner != nil && *owner != c {
		return nil, failed(method, "Another client is already the %s.", what)
	}
	*owner = c
	return json.RawMessage(`{"success":true}`), nil
}
