package proxy

import (
	"math"
	"net"
	"net/netip"
	"sync/atomic"
	"time"
)

// Limit names one of the limits that turn a peer away.
type Limit int

// The limits the proxy enforces on its clients. Each has a counter that
// Server.LimitHits reads.
const (
	// LimitConnections: a connection refused by Config.MaxConnections.
	LimitConnections Limit = iota
	// LimitConnectionsPerIP: a connection refused by Config.MaxConnectionsPerIP.
	LimitConnectionsPerIP
	// LimitSessions: a session refused by Config.MaxSessions.
	LimitSessions
	// LimitSessionParams: a create/resume refused by Config.MaxSessionParams.
	LimitSessionParams
	// LimitPending: a request (or fan-out) refused by Config.MaxPending.
	LimitPending
	// LimitHandshake: a client closed for not authenticating within
	// Config.HandshakeTimeout (only when a token is set).
	LimitHandshake
	// LimitAuthFailures: a client closed after maxAuthFailures wrong tokens.
	LimitAuthFailures
	// LimitIdle: a client closed by Config.ClientIdleTimeout.
	LimitIdle
	// LimitClientQueue: a client closed because it let its outbound queue
	// fill past Config.ClientQueueBytes (shared upstreams only).
	LimitClientQueue

	numLimits
)

var limitNames = [numLimits]string{
	LimitConnections:      "max_connections",
	LimitConnectionsPerIP: "max_connections_per_ip",
	LimitSessions:         "max_sessions_per_client",
	LimitSessionParams:    "max_session_params_bytes",
	LimitPending:          "max_pending_requests",
	LimitHandshake:        "handshake_timeout",
	LimitAuthFailures:     "auth_failures",
	LimitIdle:             "client_idle_timeout",
	LimitClientQueue:      "client_queue_bytes",
}

// String is the limit's name as in the configuration file.
func (l Limit) String() string {
	if l < 0 || l >= numLimits {
		return "unknown"
	}
	return limitNames[l]
}

// maxAuthFailures is the number of wrong tokens after which a client is
// closed (the last one is still answered with the CLI's error).
const maxAuthFailures = 3

// limitLogEvery spaces the log lines of one limit: a flood of refusals
// logs one line per limit per period, with the running count.
const limitLogEvery = 10 * time.Second

// limitHits counts, per limit, the peers it turned away, and spaces the
// log lines saying so. Safe from any goroutine.
type limitHits struct {
	count  [numLimits]atomic.Uint64
	logged [numLimits]atomic.Int64 // unix nanoseconds of the last line
}

// hit counts one and reports the running count, and whether this hit gets
// a log line.
func (h *limitHits) hit(l Limit) (uint64, bool) {
	n := h.count[l].Add(1)
	now := time.Now().UnixNano()
	last := h.logged[l].Load()
	if last != 0 && now-last < int64(limitLogEvery) {
		return n, false
	}
	return n, h.logged[l].CompareAndSwap(last, now)
}

// LimitHits reports how many times l has turned a peer away since the
// server started.
func (s *Server) LimitHits(l Limit) uint64 {
	if l < 0 || l >= numLimits {
		return 0
	}
	return s.hits.count[l].Load()
}

// limitObserverNames are the names Observer.LimitHit gets for each limit
// (internal/metrics gives the ones it lists a series of their own).
var limitObserverNames = [numLimits]string{
	LimitConnections:      "max_connections",
	LimitConnectionsPerIP: "max_connections_per_ip",
	LimitSessions:         "max_sessions",
	LimitSessionParams:    "max_session_params_bytes",
	LimitPending:          limitMaxPending,
	LimitHandshake:        "handshake_timeout",
	LimitAuthFailures:     "auth_failures",
	LimitIdle:             "client_idle_timeout",
	LimitClientQueue:      "client_queue_bytes",
}

// refusedMaxConnections is the Observer.ClientRefused reason of a
// connection over MaxConnections or MaxConnectionsPerIP.
const refusedMaxConnections = "max_connections"

// limitReached counts a hit of l (LimitHits and the Observer) and logs it,
// at most once per limitLogEvery per limit; kv says which peer (never
// message contents).
func (s *Server) limitReached(l Limit, msg string, kv ...any) {
	n, log := s.hits.hit(l)
	s.limitHit(limitObserverNames[l])
	if log {
		s.log.Warn(msg, append([]any{"limit", l.String(), "hits", n}, kv...)...)
	}
}

// sourceIP is the key of Config.MaxConnectionsPerIP: the peer's IP address
// (an IPv4-mapped IPv6 address counts as the IPv4 one).
func sourceIP(conn net.Conn) string {
	if ta, ok := conn.RemoteAddr().(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap().String()
	}
	if ap, err := netip.ParseAddrPort(conn.RemoteAddr().String()); err == nil {
		return ap.Addr().Unmap().String()
	}
	return conn.RemoteAddr().String()
}

// admitConn checks the connection caps and counts conn in. Called with
// s.mu held; a conn it admits is counted out by releaseConn.
func (s *Server) admitConn(ip string) (Limit, bool) {
	if max := s.cfg.MaxConnections; max > 0 && len(s.clients) >= max {
		return LimitConnections, false
	}
	if max := s.cfg.MaxConnectionsPerIP; max > 0 {
		if s.perIP[ip] >= max {
			return LimitConnectionsPerIP, false
		}
		s.perIP[ip]++
	}
	return 0, true
}

// releaseConn counts out a connection admitConn counted in. s.mu held.
func (s *Server) releaseConn(ip string) {
	if s.cfg.MaxConnectionsPerIP <= 0 {
		return
	}
	if s.perIP[ip]--; s.perIP[ip] <= 0 {
		delete(s.perIP, ip)
	}
}

// clientLimits is the per-connection state of the limits: the handshake
// and idle timers, the wrong tokens seen, and the session accounting.
type clientLimits struct {
	// authed is set once the client has authenticated (or needs not):
	// the handshake timer then leaves it alone.
	authed    atomic.Bool
	authTimer *time.Timer
	// authFailures counts wrong tokens. Reader state.
	authFailures int

	// seenActivity is clientConn.activity (frames read, answers written)
	// at the idle timer's last check; the timer alone uses it.
	seenActivity uint64
	idleTimer    *time.Timer

	// Guarded by clientConn.mu: live counts the sessions not released
	// (deleted or detached); released lists released sessions still in
	// the map, oldest first, bounded by maxReleased.
	live     int
	released []string
	// paramsBytes is the size of every session's kept create/resume
	// params (session.resume) in the map, bounded by MaxClientParams.
	paramsBytes int
}

// startTimers arms the handshake and idle timers of a new client. Called
// before its serve goroutine starts; stopTimers undoes it.
func (c *clientConn) startTimers() {
	cfg := &c.srv.cfg
	if cfg.Token == "" {
		c.lim.authed.Store(true)
	} else {
		c.lim.authTimer = time.AfterFunc(cfg.HandshakeTimeout, c.handshakeExpired)
	}
	if d := cfg.ClientIdleTimeout; d > 0 {
		// Armed far away and then reset, so the callback always finds
		// idleTimer set.
		c.lim.idleTimer = time.AfterFunc(math.MaxInt64, c.idleCheck)
		c.lim.idleTimer.Reset(d)
	}
}

// stopTimers stops the client's timers once it is closed.
func (c *clientConn) stopTimers() {
	if t := c.lim.authTimer; t != nil {
		t.Stop()
	}
	if t := c.lim.idleTimer; t != nil {
		t.Stop()
	}
}

// handshakeExpired closes a client that has not authenticated within the
// handshake timeout, whatever it sent meanwhile.
func (c *clientConn) handshakeExpired() {
	if c.lim.authed.Load() || c.closing() {
		return
	}
	c.srv.limitReached(LimitHandshake, "closing client: not authenticated within the handshake timeout",
		"client", c.id, "remote", c.conn.RemoteAddr().String(), "timeout", c.srv.cfg.HandshakeTimeout)
	if c.obs != nil {
		c.obs.ClientRefused(refusedHandshakeTimeout)
	}
	c.shutdown()
}

// idleCheck runs every ClientIdleTimeout: it closes the client if nothing
// was read from it or answered to it for a whole period and it holds no
// session and no request in flight.
func (c *clientConn) idleCheck() {
	if c.closing() {
		return
	}
	seen := c.activity.Load()
	active := seen != c.lim.seenActivity
	c.lim.seenActivity = seen
	if active || c.pending.Load() > 0 || c.busy.Load() > 0 || c.liveSessions() > 0 {
		c.lim.idleTimer.Reset(c.srv.cfg.ClientIdleTimeout)
		return
	}
	c.srv.limitReached(LimitIdle, "closing idle client",
		"client", c.id, "remote", c.conn.RemoteAddr().String(), "timeout", c.srv.cfg.ClientIdleTimeout)
	c.shutdown()
}

func (c *clientConn) liveSessions() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lim.live
}

// authFailed counts a wrong token and reports whether the client must now
// be closed. The connection's first failure is logged; the rest are not,
// so a client guessing tokens costs one line.
func (c *clientConn) authFailed() bool {
	c.lim.authFailures++
	if c.lim.authFailures == 1 {
		c.log().Warn("client failed authentication", "closed_after", maxAuthFailures)
	}
	if c.lim.authFailures < maxAuthFailures {
		return false
	}
	n, _ := c.srv.hits.hit(LimitAuthFailures)
	c.srv.limitHit(limitObserverNames[LimitAuthFailures])
	c.log().Debug("closing client after wrong tokens", "failures", c.lim.authFailures, "hits", n)
	return true
}
