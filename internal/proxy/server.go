// Package proxy is the serve loop of rpcproxy: it accepts SDK connections,
// answers the handshake, and multiplexes each client's sessions over
// upstream connections of its own to the backends the router picks.
package proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
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

// DefaultClientQueueBytes is the default of Config.ClientQueueBytes.
const DefaultClientQueueBytes = 8 << 20

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
	// HandshakeTimeout bounds an upstream connect handshake and a new
	// client's wait for its first frame; with a Token, a client that has
	// not authenticated this long after it connected is closed. Default 10s.
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
	// MaxPending caps a client's requests in flight; a fan-out counts as
	// one until answered. Default 4096.
	MaxPending int
	// MaxConnections caps the client connections open at once; one more
	// has its first request answered with -32036 and is closed. Zero means
	// no cap.
	MaxConnections int
	// MaxConnectionsPerIP caps the client connections open at once from one
	// source IP address, like MaxConnections. Zero means no cap.
	MaxConnectionsPerIP int
	// MaxSessions caps the sessions one client holds (not deleted or
	// detached); one more is refused with -32034. Zero means no cap.
	MaxSessions int
	// MaxSessionParams caps the params of a session.create or
	// session.resume, kept for failover, in bytes; a larger one is refused
	// with -32035. Zero means no cap.
	MaxSessionParams int
	// MaxClientParams caps the create/resume params one client makes the
	// proxy keep over all its sessions, in bytes; a create or resume past it
	// is refused with -32035. Zero means no cap.
	MaxClientParams int
	// ClientIdleTimeout closes a client that holds no session, has no
	// request in flight and sent nothing for this long (it goes between
	// one and two times this after its last frame). Zero disables it.
	ClientIdleTimeout time.Duration
	// ConnectionsPerBackend, when above zero, makes clients share upstream
	// connections: each backend gets at most this many, opened on first
	// use, and every client's sessions there are multiplexed over one of
	// them (link.go). A client that registers a process-wide provider
	// keeps upstreams of its own. Zero gives each client its own upstream
	// to each backend it uses.
	ConnectionsPerBackend int
	// PoolLifecycle (with ConnectionsPerBackend above zero) gives every
	// client the session.lifecycle notifications of every session in the
	// pool, once each: the first shared upstream of each backend is kept
	// open as its listener (lifecycle.go). Otherwise a client gets those
	// of the sessions it holds.
	PoolLifecycle bool
	// ClientQueueBytes bounds what waits to be written to one client when
	// upstreams are shared; a client that lets more wait is closed.
	// Default 8 MiB.
	ClientQueueBytes int
	// OnEmpty, if set, is told when the sessions placed on a backend drop
	// to zero (the owner of a removed backend forgets it then). Called from
	// a client's goroutine; it must not block.
	OnEmpty func(backend string)
	// OnSessionMoved, if set, is told of every session moved to another
	// backend, with the reason (ReasonBackendLost, ReasonOwnerChanged).
	// Called from the session's mover goroutine; it must not block.
	OnSessionMoved func(session, from, to, reason string)
	// Logger receives the proxy's logs; nil discards them.
	Logger hclog.Logger
	// Observer is told what the proxy does, for metrics; nil turns
	// metrics off.
	Observer Observer
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
	if c.ClientQueueBytes <= 0 {
		c.ClientQueueBytes = DefaultClientQueueBytes
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

// Health is the proxy's view of backend states, owned by whoever checks the
// backends (the health checker). It may be nil (every backend is then
// usable). The proxy never changes a backend's state: it reports what it
// sees and reads what the owner publishes.
type Health interface {
	// Suspect is told of a failure seen on live traffic (a lost upstream, a
	// failed dial, a request past its timeout): one connection's failure,
	// for the owner to confirm or not with a probe. It must not block.
	Suspect(backend string, err error)
	// Usable reports whether the backend answers (up or draining): sessions
	// on a backend that is not usable are moved at once.
	Usable(backend string) bool
	// Changed is closed at the next change of any backend's state.
	Changed() <-chan struct{}
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
	// panics counts panics recovered while serving a client (each closed
	// that client alone).
	panics atomic.Uint64
	done   chan struct{} // closed by Close: stops watchHealth
	// stopping is closed when the server stops accepting for good
	// (StopAccepting, Shutdown): see drain.go.
	stopping  chan struct{}
	drainOnce sync.Once

	placedMu sync.Mutex
	counts   map[string]int // sessions placed per backend, over all clients

	hits limitHits

	// links are the shared upstreams, ConnectionsPerBackend slots per
	// backend name (link.go); linksClosed is set by Close.
	linksMu     sync.Mutex
	links       map[string][]*link
	linksClosed bool

	mu       sync.Mutex
	closed   bool
	listener net.Listener
	clients  map[*clientConn]struct{}
	perIP    map[string]int        // open connections per source IP, with MaxConnectionsPerIP
	refusing map[net.Conn]struct{} // connections over a cap being answered (refuse.go)
	wg       sync.WaitGroup
}

// New returns a Server routing over table. health may be nil.
func New(cfg Config, table *router.Table, health Health) *Server {
	cfg = cfg.withDefaults()
	s := &Server{cfg: cfg, log: cfg.Logger, table: table, health: health, done: make(chan struct{}), stopping: make(chan struct{}),
		clients: make(map[*clientConn]struct{}), counts: make(map[string]int), perIP: make(map[string]int),
		refusing: make(map[net.Conn]struct{}), links: make(map[string][]*link)}
	if health != nil {
		s.wg.Add(1)
		go s.watchHealth()
	}
	return s
}

// Panics reports the panics recovered while serving clients.
func (s *Server) Panics() uint64 { return s.panics.Load() }

// ErrServerClosed is returned by Serve after Close, StopAccepting or Shutdown.
var ErrServerClosed = errors.New("proxy: server closed")

// Serve accepts connections on l until Close. It owns l.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closed || s.ShuttingDown() {
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
			if closed || s.ShuttingDown() {
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

// startClient serves a new connection on a goroutine of its own, or refuses
// it at once when it would exceed a connection cap.
func (s *Server) startClient(conn net.Conn) {
	var ip string
	if s.cfg.MaxConnectionsPerIP > 0 {
		ip = sourceIP(conn)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		conn.Close()
		if s.cfg.Observer != nil {
			s.cfg.Observer.ClientRefused(refusedClosing)
		}
		return
	}
	if l, ok := s.admitConn(ip); !ok {
		s.mu.Unlock()
		s.refuseConn(conn, l)
		return
	}
	c := newClientConn(s, conn)
	s.clients[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	c.startTimers()
	if c.obs != nil {
		c.obs.ClientAccepted()
	}
	s.ensureListeners()
	go func() {
		defer s.wg.Done()
		c.serve()
		c.stopTimers()
		s.mu.Lock()
		delete(s.clients, c)
		s.releaseConn(ip)
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
	close(s.done)
	if s.listener != nil {
		s.listener.Close()
	}
	clients := make([]*clientConn, 0, len(s.clients))
	for c := range s.clients {
		clients = append(clients, c)
	}
	for conn := range s.refusing {
		conn.Close()
	}
	s.mu.Unlock()
	for _, c := range clients {
		c.shutdown()
	}
	s.closeLinks()
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

// suspect passes a live connection's failure to the owner of backend states.
func (s *Server) suspect(b *router.Backend, err error) {
	if s.health != nil {
		s.health.Suspect(b.Name, err)
	}
}

// awaitDown waits up to d for the health checker to find backend down and
// reports whether it did; stop ends the wait early.
func (s *Server) awaitDown(backend string, d time.Duration, stop <-chan struct{}) bool {
	if s.health == nil {
		return false
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		changed := s.health.Changed()
		if !s.health.Usable(backend) {
			return true
		}
		select {
		case <-changed:
		case <-timer.C:
			return false
		case <-stop:
			return false
		}
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
	if !empty || delta >= 0 {
		return
	}
	if s.draining(backend) {
		s.log.Info("draining backend holds no sessions", "backend", backend)
	}
	if s.cfg.OnEmpty != nil {
		s.cfg.OnEmpty(backend)
	}
}

// BackendDraining is told that a backend started draining. One holding no
// session is drained already, so it says so at once; otherwise the line
// follows when its last session leaves. Safe from any goroutine.
func (s *Server) BackendDraining(backend string) {
	if n := s.SessionCount(backend); n > 0 {
		s.log.Info("draining backend", "backend", backend, "sessions", n)
		return
	}
	s.log.Info("draining backend holds no sessions", "backend", backend)
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

// Sessions reports the sessions placed per backend over all client
// connections; a backend absent holds none. For operators (metrics).
func (s *Server) Sessions() map[string]int {
	s.placedMu.Lock()
	defer s.placedMu.Unlock()
	return maps.Clone(s.counts)
}

// SessionCount reports the sessions placed on a backend over all client
// connections: a draining backend is drained when this reaches zero.
func (s *Server) SessionCount(backend string) int {
	s.placedMu.Lock()
	defer s.placedMu.Unlock()
	return s.counts[backend]
}

// watchHealth follows the health checker's published states: when a
// backend stops answering, every client's upstream to it is aborted, which
// only closes its socket; each upstream's own goroutine then answers what
// was pending there for its client. So no client, however slow to read,
// delays another's error, and this goroutine never writes to a client.
func (s *Server) watchHealth() {
	defer s.wg.Done()
	for {
		changed := s.health.Changed()
		s.abortUnusable()
		s.ensureListeners()
		select {
		case <-s.done:
			return
		case <-changed:
		}
	}
}

// abortUnusable aborts every upstream to a backend that is not usable.
func (s *Server) abortUnusable() {
	for _, c := range s.clientList() {
		c.mu.Lock()
		for name, u := range c.upstreams {
			if !s.usable(name) {
				u.abort(errMarkedDown)
			}
		}
		c.mu.Unlock()
	}
	// Shared links no client uses at the moment.
	s.linksMu.Lock()
	down := s.linksLocked(func(name string) bool { return !s.usable(name) })
	s.linksMu.Unlock()
	for _, l := range down {
		l.abort(errMarkedDown)
	}
}
