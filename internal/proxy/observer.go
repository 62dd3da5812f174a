package proxy

import (
	"bytes"
	"errors"
	"time"

	"github.com/rpcproxy/rpcproxy/internal/frame"
	"github.com/rpcproxy/rpcproxy/internal/router"
)

// Observer is told what the proxy does, for metrics (internal/metrics
// implements it; Config.Observer nil turns it off, as in unit tests and
// the benchmarks). Its methods are called from every client's and
// upstream's goroutines, several per frame: they must be safe for
// concurrent use, never block, and allocate nothing.
type Observer interface {
	// ClientAccepted: a client connection was accepted.
	ClientAccepted()
	// ClientRefused: a client connection was refused or closed unserved;
	// reason is one of the refused* names below.
	ClientRefused(reason string)
	// ClientRequest: a client request of the given method class arrived.
	ClientRequest(class router.Class)
	// FromClient and ToClient: a frame of n body bytes was read from or
	// written to a client.
	FromClient(n int)
	ToClient(n int)
	// ErrorAnswer: an error answer with this JSON-RPC code went to a client
	// (the proxy's own or a backend's).
	ErrorAnswer(code int)
	// TurnEnded: a turn ended (session.send forwarded → session.idle).
	TurnEnded(took time.Duration)
	// Failover: a session was resumed on another backend after its own was lost.
	Failover()
	// TurnBoundaryMove: a session moved between turns to its new ring owner.
	TurnBoundaryMove()
	// LimitHit: the named limit refused something (one of the limit* names
	// below; internal/metrics counts names it does not list as "other").
	LimitHit(name string)
	// Backend returns what is counted per backend. It is called once per
	// upstream connection, which keeps the result for its frames.
	Backend(name string) BackendObserver
}

// BackendObserver is what the proxy counts per backend. It is an alias of an
// unnamed interface type, declared identically in internal/metrics, so that
// its implementation satisfies Observer without either package importing
// the other.
type BackendObserver = interface {
	// Request: a request of the given class was sent to the backend.
	Request(class router.Class)
	// Answered: the backend answered a request after took.
	Answered(took time.Duration)
	// FromBackend and ToBackend: a frame of n body bytes was read from or
	// written to the backend.
	FromBackend(n int)
	ToBackend(n int)
}

// Names the proxy passes to Observer.ClientRefused and LimitHit; they
// match the names internal/metrics lists (TestObserverNames checks).
//
// To count a new limit (max_connections, max_sessions, …): add a limit*
// constant here with the name metrics.Limits has for it (add it there and
// to the README's metrics table if it is new; an unlisted name counts as
// "other"), add it to TestObserverNames, and call s.limitHit(name) where
// the limit refuses. A refused client connection is also a refusal:
//
//	if max := s.cfg.MaxConnections; max > 0 && len(s.clients) >= max {
//		s.limitHit(limitMaxConnections) // "max_connections"
//		if s.cfg.Observer != nil {
//			s.cfg.Observer.ClientRefused(refusedMaxConnections) // "max_connections"
//		}
//		conn.Close()
//	}
const (
	refusedClosing          = "closing"
	refusedHandshakeTimeout = "handshake_timeout"
	refusedAuth             = "auth_failed"
	refusedBadInput         = "bad_input"

	limitMaxPending   = "max_pending_requests"
	limitOpeningQueue = "opening_queue"
	limitMoveQueue    = "move_queue"
	limitFrameSize    = "frame_size"
)

// limitHit counts a limit's refusal when metrics are on.
func (s *Server) limitHit(name string) {
	if s.cfg.Observer != nil {
		s.cfg.Observer.LimitHit(name)
	}
}

// noteReadError counts a peer's frame over the size limits.
func (s *Server) noteReadError(err error) {
	switch {
	case errors.Is(err, frame.ErrBodyTooLarge) || errors.Is(err, frame.ErrHeaderTooLong) || errors.Is(err, frame.ErrTooManyHeaders):
		s.limitHit(limitFrameSize)
	case errors.Is(err, frame.ErrBudget):
		s.limitHit("max_buffered_bytes")
	}
}

// errorCode reads the code of a JSON-RPC error response without decoding
// it: the first "code" member after "error". Only for frames Scan found to
// carry an error (so no result member can hold those keys). -1 if absent.
func errorCode(body []byte) int {
	i := bytes.Index(body, errorKey)
	if i < 0 {
		return -1
	}
	j := bytes.Index(body[i:], codeKey)
	if j < 0 {
		return -1
	}
	b := body[i+j+len(codeKey):]
	k := 0
	for k < len(b) && (b[k] == ' ' || b[k] == ':' || b[k] == '\t' || b[k] == '\n' || b[k] == '\r') {
		k++
	}
	neg := k < len(b) && b[k] == '-'
	if neg {
		k++
	}
	n, digits := 0, 0
	for ; k < len(b) && b[k] >= '0' && b[k] <= '9' && digits < 9; k++ {
		n = n*10 + int(b[k]-'0')
		digits++
	}
	if digits == 0 {
		return -1
	}
	if neg {
		n = -n
	}
	return n
}

var (
	errorKey = []byte(`"error"`)
	codeKey  = []byte(`"code"`)
)
