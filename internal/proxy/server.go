// Package proxy is the serve loop of rpcproxy: it accepts SDK connections,
// answers the handshake, and multiplexes each client's sessions over
// upstream connections of its own to the backends the router picks.
package proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/rpcproxy/rpcproxy/internal/frame"
	"github.com/rpcproxy/rpcproxy/internal/router"
)

// DefaultMaxBufferedBytes is the default bound on the bytes held in frames
// not yet whole, across all of a Server's connections.
const DefaultMaxBufferedBytes = 256 << 20

// Config tunes a Server. Zero fields take the defaults named.
type Config struct {
	// Token is what SDK clients must present in connect. Empty accepts every
	// client (the CLI's behaviour without COPILOT_CONNECTION_TOKEN).
	Token string
	// Limits bound frames read from clients and backends. A nil
	// Limits.Budget means one of DefaultMaxBufferedBytes, shared by all.
	Limits frame.Limits
	// MaxBodyBeforeConnect caps a client's frames until its connect
	// succeeds, when Token is set. Default 64 KiB.
	MaxBodyBeforeConnect int
	// HandshakeTimeout bounds an upstream connect handshake. Default 10s.
	HandshakeTimeout time.Duration
	// DialTimeout bounds dialing a backend. Default 5s.
	DialTimeout time.Duration
	// WriteTimeout bounds one flush to a peer; a peer that does not read
	// for this long is closed. Default 30s.
	WriteTimeout time.Duration
	// RequestTimeout bounds the wait for a backend's answer to one request;
	// a request past it fails its upstream connection (answering every
	// request pending there with a retryable error) and counts as a failure
	// of the backend. Zero means no timeout.
	RequestTimeout time.Duration
	// MaxPending caps a client's requests in flight. Default 4096.
	MaxPending int
	// Logger receives the proxy's logs; nil discards them.
	Logger hclog.Logger
}

func (c Config) withDefaults() Config {
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = 10 * time.Second
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = 5 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 30 * time.Second
	}
	if c.MaxPending <= 0 {
		c.MaxPending = 4096
	}
	if c.MaxBodyBeforeConnect <= 0 {
		c.MaxBodyBeforeConnect = 64 << 10
	}
	if c.Limits.Budget == nil {
		c.Limits.Budget = frame.NewBudget(DefaultMaxBufferedBytes)
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	return c
}

// Health is the proxy's view of backend states. It may be nil (every
// backend is then usable).
type Health interface {
	// ReportFailure is told of failures seen on live traffic (passive checks).
	ReportFailure(backend string, err error)
	// Usable reports whether the backend answers (up or draining): sessions
	// on a backend that is not usable are moved at once.
	Usable(backend string) bool
}

// Server accepts SDK connections and proxies them. Create one with New,
// run it with Serve, stop it with Close.
type Server struct {
	cfg    Config
	log    hclog.Logger
	table  *router.Table
	health Health

	// info is the result of a backend's connect (protocolVersion, version,
	// taskKinds): the proxy answers its clients' connect with it.
	info atomic.Pointer[json.RawMessage]

	nextClient atomic.Uint64

	placedMu sync.Mutex
	counts   map[string]int // sessions placed per backend, over all clients

	mu       sync.Mutex
	closed   bool
	listener net.Listener
	clients  map[*clientConn]struct{}
	wg       sync.WaitGroup
}

// New returns a Server routing over table. health may be nil.
func New(cfg Config, table *router.Table, health Health) *Server {
	cfg = cfg.withDefaults()
	return &Server{cfg: cfg, log: cfg.Logger, table: table, health: health,
		clients: make(map[*clientConn]struct{}), counts: make(map[string]int)}
}

// ErrServerClosed is returned by Serve after Close.
var ErrServerClosed = errors.New("proxy: server closed")

// Serve accepts connections on l until Close. It owns l.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.listener = l
	s.mu.Unlock()
	var backoff time.Duration
	for {
		conn, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				// Out of file descriptors and the like: back off, keep serving.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed; retrying", "error", err, "backoff", backoff)
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("proxy: accept: %w", err)
		}
		backoff = 0
		s.startClient(conn)
	}
}

func isTemporary(err error) bool {
	t, ok := err.(interface{ Temporary() bool })
	return ok && t.Temporary()
}

func (s *Server) startClient(conn net.Conn) {
	c := newClientConn(s, conn)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		conn.Close()
		return
	}
	s.clients[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		c.serve()
		s.mu.Lock()
		delete(s.clients, c)
		s.mu.Unlock()
	}()
}

// Close stops accepting, closes every client and its upstream connections,
// and waits for their goroutines. It is safe to call more than once.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.wg.Wait()
		return nil
	}
	s.closed = true
	if s.listener != nil {
		s.listener.Close()
	}
	clients := make([]*clientConn, 0, len(s.clients))
	for c := range s.clients {
		clients = append(clients, c)
	}
	s.mu.Unlock()
	for _, c := range clients {
		c.shutdown()
	}
	s.wg.Wait()
	return nil
}

// Clients reports the number of client connections open.
func (s *Server) Clients() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.clients)
}

// SetInfo records a backend's connect result, which the proxy's own connect
// answer repeats. The health checker calls it after a successful probe.
func (s *Server) SetInfo(result json.RawMessage) {
	cp := append(json.RawMessage(nil), result...)
	s.info.Store(&cp)
}

func (s *Server) poolInfo() json.RawMessage {
	if p := s.info.Load(); p != nil {
		return *p
	}
	return nil
}

func (s *Server) reportFailure(b *router.Backend, err error) {
	if s.health != nil {
		s.health.ReportFailure(b.Name, err)
	}
}

func (s *Server) usable(backend string) bool {
	return s.health == nil || s.health.Usable(backend)
}

func (s *Server) placed(backend string, delta int) {
	s.placedMu.Lock()
	s.counts[backend] += delta
	empty := s.counts[backend] <= 0
	if empty {
		delete(s.counts, backend)
	}
	s.placedMu.Unlock()
	if empty && delta < 0 && s.draining(backend) {
		s.log.Info("draining backend holds no sessions", "backend", backend)
	}
}

// draining reports a backend that answers but takes no new sessions.
func (s *Server) draining(backend string) bool {
	if !s.usable(backend) {
		return false
	}
	for _, b := range s.table.Ring().Backends() {
		if b.Name == backend {
			return false
		}
	}
	return true
}

// SessionCount reports the sessions placed on a backend over all client
// connections: a draining backend is drained when this reaches zero.
func (s *Server) SessionCount(backend string) int {
	s.placedMu.Lock()
	defer s.placedMu.Unlock()
	return s.counts[backend]
}

// BackendDown fails every client's upstream connection to a backend that
// was marked down: requests pending there are answered at once with a
// retryable error, and each session moves on its next request. Called by
// whoever owns backend states; safe from any goroutine.
func (s *Server) BackendDown(backend string) {
	s.mu.Lock()
	clients := make([]*clientConn, 0, len(s.clients))
	for c := range s.clients {
		clients = append(clients, c)
	}
	s.mu.Unlock()
	lost := fmt.Errorf("backend %s marked down", backend)
	for _, c := range clients {
		c.mu.Lock()
		u := c.upstreams[backend]
		c.mu.Unlock()
		if u != nil {
			u.fail(lost)
		}
	}
}
