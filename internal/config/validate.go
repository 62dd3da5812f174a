package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/rpcproxy/rpcproxy/internal/frame"
)

// MaxConnectionsPerBackend bounds upstream.connections_per_backend.
const MaxConnectionsPerBackend = 64

// Bounds that Validate enforces beyond "positive".
const (
	// maxHeaderLineBytes is the frame reader's buffer size; a longer header
	// line can never be read.
	maxHeaderLineBytes = 32 << 10
	// minHeaderLineBytes leaves room for "Content-Length: <max>\r\n".
	minHeaderLineBytes = 64
	// minUnauthFrameBytes leaves room for a connect request with its token.
	minUnauthFrameBytes = 1 << 10
	// maxSpawn bounds the managed pool.
	maxSpawn = 256
)

// FieldError reports one invalid setting. Field is the setting as written in
// the file, such as "limits.max_frame_bytes" or `backend "10.0.0.1:4322".weight`.
// When the value came from a file, File, Line and Column (1-based) point at
// the attribute that set it; File is empty for a default, the environment
// or a flag.
type FieldError struct {
	Field   string
	Problem string
	File    string
	Line    int
	Column  int
}

func (e *FieldError) Error() string {
	if e.File != "" {
		return fmt.Sprintf("%s:%d:%d: %s: %s", e.File, e.Line, e.Column, e.Field, e.Problem)
	}
	return e.Field + ": " + e.Problem
}

// Validate checks every setting `rpcproxy serve` uses and returns all
// problems found, one *FieldError each, joined; nil means the configuration
// is usable. It does not require any backend: a proxy may start with none
// configured. The agent block, which serve ignores, is checked by
// ValidateAgent.
func (c *Config) Validate() error {
	v := &validator{src: c.src}

	v.address("listen", c.Listen, addrRules{allowPortZero: true})
	switch c.LogLevel {
	case LogTrace, LogDebug, LogInfo, LogWarn, LogError:
	default:
		v.fail("log_level", "%q is not a level; want trace, debug, info, warn or error", c.LogLevel)
	}

	if c.ShutdownTimeout <= 0 {
		v.fail("shutdown_timeout", "must be > 0, got %v", c.ShutdownTimeout)
	}

	l := c.Limits
	if l.MaxFrameBytes < 1 || l.MaxFrameBytes > frame.MaxBodyCap {
		v.fail("limits.max_frame_bytes", "must be between 1 and %d (1 GiB), got %d", frame.MaxBodyCap, l.MaxFrameBytes)
	}
	if l.MaxUnauthenticatedFrameBytes < minUnauthFrameBytes || l.MaxUnauthenticatedFrameBytes > frame.MaxBodyCap {
		v.fail("limits.max_unauthenticated_frame_bytes", "must be between %d and %d, got %d",
			minUnauthFrameBytes, frame.MaxBodyCap, l.MaxUnauthenticatedFrameBytes)
	}
	if l.MaxBufferedBytes < 2*l.MaxFrameBytes || l.MaxBufferedBytes <= 0 {
		v.fail("limits.max_buffered_bytes", "must be at least twice limits.max_frame_bytes (%d; a frame's buffer doubles as it arrives), got %d",
			2*l.MaxFrameBytes, l.MaxBufferedBytes)
	}
	if l.MaxHeaderLineBytes < minHeaderLineBytes || l.MaxHeaderLineBytes > maxHeaderLineBytes {
		v.fail("limits.max_header_line_bytes", "must be between %d and %d, got %d",
			minHeaderLineBytes, maxHeaderLineBytes, l.MaxHeaderLineBytes)
	}
	if l.FrameTimeout < 0 {
		v.fail("limits.frame_timeout", "must be >= 0 (0 disables), got %v", l.FrameTimeout)
	}
	if l.HandshakeTimeout <= 0 {
		v.fail("limits.handshake_timeout", "must be > 0, got %v", l.HandshakeTimeout)
	}
	v.positive("limits.max_pending_requests", l.MaxPendingRequests)
	if l.MaxConnections < 0 {
		v.fail("limits.max_connections", "must be >= 0 (0 means no cap), got %d", l.MaxConnections)
	}
	if l.MaxConnectionsPerIP < 0 {
		v.fail("limits.max_connections_per_ip", "must be >= 0 (0 means no cap), got %d", l.MaxConnectionsPerIP)
	} else if l.MaxConnections > 0 && l.MaxConnectionsPerIP > l.MaxConnections {
		v.fail("limits.max_connections_per_ip", "must not exceed limits.max_connections (%d), got %d", l.MaxConnections, l.MaxConnectionsPerIP)
	}
	v.positive("limits.max_sessions_per_client", l.MaxSessionsPerClient)
	v.positive("limits.max_session_params_bytes", l.MaxSessionParamsBytes)
	if l.MaxClientParamsBytes < l.MaxSessionParamsBytes {
		v.fail("limits.max_client_params_bytes", "must be at least limits.max_session_params_bytes (%d), got %d", l.MaxSessionParamsBytes, l.MaxClientParamsBytes)
	}
	v.positive("limits.client_queue_bytes", l.ClientQueueBytes)
	if l.ClientIdleTimeout < 0 {
		v.fail("limits.client_idle_timeout", "must be >= 0 (0 disables), got %v", l.ClientIdleTimeout)
	}

	if c.Upstream.DialTimeout <= 0 {
		v.fail("upstream.dial_timeout", "must be > 0, got %v", c.Upstream.DialTimeout)
	}
	if c.Upstream.RequestTimeout < 0 {
		v.fail("upstream.request_timeout", "must be >= 0 (0 means none), got %v", c.Upstream.RequestTimeout)
	}
	if n := c.Upstream.ConnectionsPerBackend; n < 0 || n > MaxConnectionsPerBackend {
		v.fail("upstream.connections_per_backend", "must be between 0 (one per client) and %d, got %d", MaxConnectionsPerBackend, n)
	}
	switch c.Upstream.Lifecycle {
	case LifecycleSessions:
	case LifecyclePool:
		if c.Upstream.ConnectionsPerBackend == 0 {
			v.fail("upstream.lifecycle", "%q needs upstream.connections_per_backend above 0", LifecyclePool)
		}
	default:
		v.fail("upstream.lifecycle", "must be %q or %q, got %q", LifecycleSessions, LifecyclePool, c.Upstream.Lifecycle)
	}

	v.positive("ring.partitions", c.Ring.Partitions)
	v.positive("ring.replication", c.Ring.Replication)
	// NaN fails this comparison too.
	if !(c.Ring.Load >= 1) {
		v.fail("ring.load", "must be >= 1, got %v", c.Ring.Load)
	}

	seen := make(map[string]string, len(c.Backends))
	for _, b := range c.Backends {
		field := fmt.Sprintf("backend %q", b.Address)
		if !v.address(field, b.Address, addrRules{requireHost: true}) {
			continue
		}
		if b.Weight < 1 || b.Weight > 100 {
			v.fail(field+".weight", "must be 1 to 100, got %d", b.Weight)
		}
		key := addressKey(b.Address)
		if first, dup := seen[key]; dup {
			v.fail(field, "duplicate backend address (same as %q)", first)
			continue
		}
		seen[key] = b.Address
	}

	if c.Pool.Spawn < 0 || c.Pool.Spawn > maxSpawn {
		v.fail("pool.spawn", "must be between 0 and %d, got %d", maxSpawn, c.Pool.Spawn)
	}

	h := c.Health
	if h.Interval <= 0 {
		v.fail("health.interval", "must be > 0, got %v", h.Interval)
	}
	if h.Timeout <= 0 {
		v.fail("health.timeout", "must be > 0, got %v", h.Timeout)
	} else if h.Interval > 0 && h.Timeout > h.Interval {
		v.fail("health.timeout", "must not exceed health.interval (%v), got %v", h.Interval, h.Timeout)
	}
	v.positive("health.rise", h.Rise)
	v.positive("health.fall", h.Fall)

	v.gossip(c.Gossip)
	if c.Admin.Listen != "" {
		v.address("admin.listen", c.Admin.Listen, addrRules{allowPortZero: true})
		if c.Admin.Listen == c.Listen {
			v.fail("admin.listen", "same address as listen (%q)", c.Listen)
		}
	}

	return errors.Join(v.errs...)
}

// ValidateAgent checks the agent block, which only `rpcproxy agent` uses,
// the way Validate checks the rest.
func (c *Config) ValidateAgent() error {
	v := &validator{src: c.src}
	v.agent(c.Agent)
	return errors.Join(v.errs...)
}

func (v *validator) gossip(g Gossip) {
	switch g.Profile {
	case ProfileLAN, ProfileFast:
	default:
		v.fail("gossip.profile", "%q is not a profile; want %q or %q", g.Profile, ProfileLAN, ProfileFast)
	}
	if !g.Enabled() {
		// Keys may come from a shared environment, so they are ignored
		// rather than rejected when gossip is off.
		if g.Advertise != "" {
			v.fail("gossip.advertise", "set while gossip is disabled (gossip.bind is empty)")
		}
		if len(g.Join) > 0 {
			v.fail("gossip.join", "set while gossip is disabled (gossip.bind is empty)")
		}
		return
	}
	if v.address("gossip.bind", g.Bind, addrRules{requireIP: true, allowEmptyHost: true, allowPortZero: true}) &&
		!loopbackBind(g.Bind) && len(g.Encrypt) == 0 && !g.Insecure {
		v.fail("gossip.bind", "%q is reachable from other hosts but gossip has no keys, so anyone who reaches it "+
			"could join and be sent sessions; set gossip.encrypt (or %s), bind a loopback address, "+
			"or accept unauthenticated gossip with gossip { insecure = true } (or %s=1)",
			g.Bind, EnvGossipKeys, EnvGossipInsecure)
	}
	for i, cidr := range g.AllowedBackends {
		if _, err := netip.ParsePrefix(cidr); err != nil {
			v.fail(fmt.Sprintf("gossip.allowed_backends[%d]", i), "%q is not a CIDR network such as \"10.0.8.0/24\" (one host: \"10.0.8.5/32\")", cidr)
		}
	}
	if g.Advertise != "" {
		v.address("gossip.advertise", g.Advertise, addrRules{requireHost: true, requireIP: true})
	}
	for i, addr := range g.Join {
		v.address(fmt.Sprintf("gossip.join[%d]", i), addr, addrRules{requireHost: true})
	}
	keys := make(map[string]int, len(g.Encrypt))
	for i, key := range g.Encrypt {
		// The message never includes the key: it is a secret.
		field := fmt.Sprintf("gossip.encrypt[%d]", i)
		raw, err := base64.StdEncoding.DecodeString(key)
		if err != nil {
			v.fail(field, "not valid base64 (keys come from the file or %s)", EnvGossipKeys)
			continue
		}
		if n := len(raw); n != 16 && n != 24 && n != 32 {
			v.fail(field, "key is %d bytes; want 16, 24 or 32 (AES-128, -192, -256)", n)
			continue
		}
		if j, dup := keys[string(raw)]; dup {
			v.fail(field, "same key as gossip.encrypt[%d]", j)
			continue
		}
		keys[string(raw)] = i
	}
}

// loopbackBind reports whether a well-formed bind address is on loopback
// (127.0.0.0/8, ::1, or an IPv4-mapped loopback); an empty host is all
// interfaces.
func loopbackBind(bind string) bool {
	host, _, _ := net.SplitHostPort(bind)
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// validator collects field errors, each placed where the file set it.
type validator struct {
	src  sources
	errs []error
}

func (v *validator) fail(field, format string, args ...any) {
	fe := &FieldError{Field: field, Problem: fmt.Sprintf(format, args...)}
	if r, ok := v.src.lookup(field); ok {
		fe.File, fe.Line, fe.Column = r.Filename, r.Start.Line, r.Start.Column
	}
	v.errs = append(v.errs, fe)
}

func (v *validator) positive(field string, n int) {
	if n <= 0 {
		v.fail(field, "must be > 0, got %d", n)
	}
}

// addrRules say what a host:port setting may hold.
type addrRules struct {
	requireHost    bool // host may not be empty
	requireIP      bool // a non-empty host must be an IP literal
	allowEmptyHost bool // documents that "" means all interfaces (default unless requireHost)
	allowPortZero  bool // port 0 means "any free port"
}

// address checks a host:port setting and reports whether it is well formed.
func (v *validator) address(field, addr string, r addrRules) bool {
	if addr == "" {
		v.fail(field, "must be host:port, got an empty string")
		return false
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		v.fail(field, "must be host:port, got %q: %s", addr, addrProblem(err))
		return false
	}
	ok := true
	if host == "" && r.requireHost {
		v.fail(field, "%q has no host", addr)
		ok = false
	}
	if host != "" && r.requireIP && net.ParseIP(host) == nil {
		v.fail(field, "host %q must be an IP address", host)
		ok = false
	}
	lo := 1
	if r.allowPortZero {
		lo = 0
	}
	if n, err := strconv.Atoi(port); err != nil || n < lo || n > 65535 {
		v.fail(field, "port %q must be a number from %d to 65535", port, lo)
		ok = false
	}
	return ok
}

// addrProblem is the reason in a net.SplitHostPort error, without the
// address the caller already quotes.
func addrProblem(err error) string {
	var ae *net.AddrError
	if errors.As(err, &ae) {
		return ae.Err
	}
	return err.Error()
}

// addressKey is the identity of a backend address: host case-folded, port as
// a number, so "LOCALHOST:04322" and "localhost:4322" are the same backend.
// An address that does not parse is its own key.
func addressKey(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if n, err := strconv.Atoi(port); err == nil {
		port = strconv.Itoa(n)
	}
	if ip := net.ParseIP(host); ip != nil {
		host = ip.String()
	}
	return net.JoinHostPort(strings.ToLower(host), port)
}

func (v *validator) agent(a Agent) {
	v.address("agent.cli", a.CLI, addrRules{requireHost: true})
	if a.Advertise != "" {
		v.address("agent.advertise", a.Advertise, addrRules{requireHost: true})
	}
	if a.Weight < 1 || a.Weight > 100 {
		v.fail("agent.weight", "must be 1 to 100, got %d", a.Weight)
	}
	if a.DrainTimeout < 0 {
		v.fail("agent.drain_timeout", "must be >= 0, got %s", a.DrainTimeout)
	}
}
