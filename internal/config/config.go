// Package config is the configuration of rpcproxy: plain structs with a
// documented default for every field, an HCL file loader that overlays a file
// on those defaults, the environment and command-line overrides, and a
// Validate step that names the offending setting.
//
// The usual sequence in a main package is:
//
//	cfg, err := config.Load(path) // defaults, then the file (if path != ""), then the environment
//	cfg.Apply(overrides)          // command-line flags win over both
//	err = cfg.Validate()
//
// config.example.hcl at the repository root lists every setting with its
// default.
package config

import "time"

// Log levels accepted by Config.LogLevel, lowest first.
const (
	LogTrace = "trace"
	LogDebug = "debug"
	LogInfo  = "info"
	LogWarn  = "warn"
	LogError = "error"
)

// Gossip profiles accepted by Gossip.Profile.
const (
	// ProfileLAN is memberlist's DefaultLANConfig timings.
	ProfileLAN = "lan"
	// ProfileFast is a tuned profile with shorter probe and gossip
	// intervals, for small clusters on one host or one fast network.
	ProfileFast = "fast"
)

// Environment variables read by ApplyEnv (and so by Load).
const (
	// EnvConnectionToken supplies Config.ConnectionToken when the file and
	// the defaults leave it empty.
	EnvConnectionToken = "RPCPROXY_CONNECTION_TOKEN"
	// EnvGossipKeys supplies Gossip.Encrypt, comma-separated, when the file
	// leaves it empty.
	EnvGossipKeys = "RPCPROXY_GOSSIP_KEYS"
	// EnvBackendToken supplies Gossip.BackendToken when the file leaves it empty.
	EnvBackendToken = "RPCPROXY_BACKEND_TOKEN"
	// EnvAgentToken supplies Agent.Token when the file leaves it empty: the
	// variable the CLI server itself reads its connection token from, so an
	// agent started in the same environment as its CLI uses the same token.
	EnvAgentToken = "COPILOT_CONNECTION_TOKEN"
	// EnvGossipInsecure, set to "1" or "true" (any value strconv.ParseBool
	// reads as true), sets Gossip.Insecure when the file does not.
	EnvGossipInsecure = "RPCPROXY_GOSSIP_INSECURE"
	// EnvAdminToken supplies Admin.Token when the file leaves it empty; the
	// `rpcproxy status` command reads it too.
	EnvAdminToken = "RPCPROXY_ADMIN_TOKEN"
)

// Config is the whole configuration of one rpcproxy process. The zero value
// is not useful; start from Default or Load.
type Config struct {
	// Listen is the TCP address (host:port) SDK clients connect to. An empty
	// host listens on all interfaces; port 0 picks a free port (tests).
	// Default ":4321".
	Listen string

	// LogLevel is the least severe level logged: trace, debug, info, warn or
	// error. Default "info".
	LogLevel string

	// LogJSON writes log lines as JSON objects instead of hclog's text
	// format. Default false.
	LogJSON bool

	// ConnectionToken is the token SDK clients must present in their
	// `connect` request. Empty means any client is accepted (the proxy warns
	// once at start-up). When the file leaves it empty, Load takes it from
	// the RPCPROXY_CONNECTION_TOKEN environment variable, which keeps the
	// secret out of files and process listings. Never log it. Default "".
	ConnectionToken string

	// ShutdownTimeout bounds a graceful stop of `rpcproxy serve`: after
	// SIGTERM or SIGINT (or, in the old process, after a SIGUSR2 upgrade
	// whose new process is ready) the proxy stops accepting and keeps
	// serving its clients until their turns and requests in flight finish,
	// for at most this long; then it closes the clients left and exits. A
	// second signal exits at once. Must be > 0. Default 30s.
	ShutdownTimeout time.Duration

	// Limits bound what clients may cost the proxy.
	Limits Limits

	// Upstream configures the proxy's connections to backends.
	Upstream Upstream

	// Ring configures the consistent-hash ring that places sessions on
	// backends.
	Ring Ring

	// Backends are the static backends, headless Copilot CLI servers the
	// proxy does not start itself. Addresses are unique. Default none.
	Backends []Backend

	// Pool configures the CLI servers the proxy starts and supervises itself,
	// in addition to Backends.
	Pool Pool

	// Health configures active health checks of backends.
	Health Health

	// Gossip configures cluster membership between rpcproxy instances.
	Gossip Gossip

	// Agent configures `rpcproxy agent`, which runs beside one CLI server
	// and announces it to the cluster. `rpcproxy serve` ignores it: Validate
	// does not check it, ValidateAgent does.
	Agent Agent

	// src is where the file set each setting (nil without a file), so that
	// Validate names the file and line of a bad value.
	src sources

	// Admin configures the admin HTTP listener (health, readiness, the JSON
	// API and metrics) of `rpcproxy serve`.
	Admin Admin
}

// Admin configures the admin HTTP listener.
type Admin struct {
	// Listen is the host:port of the admin listener. Empty switches it off.
	// It answers operators, not SDK clients: bind it to loopback or a
	// private network. The --admin flag overrides it. Default "" (off).
	Listen string

	// Token, when set, is required as `Authorization: Bearer <token>` by
	// every admin endpoint but /healthz, /readyz and the status page's own
	// files (they hold no data). When the file leaves it
	// empty, Load takes it from RPCPROXY_ADMIN_TOKEN. Never log it.
	// Default "" (no authentication).
	Token string
}

// Limits bound the resources clients can make the proxy hold: per connection,
// and connections in total. Every field must be positive unless its
// documentation says what zero means.
type Limits struct {
	// MaxFrameBytes is the largest Content-Length accepted from a peer, in
	// bytes; a larger frame closes the connection. At most 1073741824
	// (1 GiB). Default 67108864 (64 MiB).
	MaxFrameBytes int

	// MaxUnauthenticatedFrameBytes is the largest Content-Length accepted
	// from a client before its `connect` succeeds, when ConnectionToken is
	// set (without a token it does not apply): a peer that has not
	// authenticated can make the proxy hold little. Between 1024 and
	// 1073741824; above MaxFrameBytes, MaxFrameBytes applies. Default 65536
	// (64 KiB).
	MaxUnauthenticatedFrameBytes int

	// MaxBufferedBytes bounds the memory held in frames not yet whole,
	// across all connections (clients and backends): a frame's buffer
	// grows as its bytes arrive, and a connection whose frame cannot grow
	// within this budget is closed; the others go on. At least twice
	// MaxFrameBytes (a buffer doubles as it grows). Default 268435456
	// (256 MiB).
	MaxBufferedBytes int

	// MaxHeaderLineBytes is the longest frame header line accepted, in bytes,
	// terminator included. At most 32768 (the frame reader's buffer).
	// Default 8192.
	MaxHeaderLineBytes int

	// FrameTimeout is how long a frame may take from its first byte to its
	// last; a client that stalls mid-frame is disconnected. Zero disables the
	// check. Default 30s.
	FrameTimeout time.Duration

	// HandshakeTimeout bounds the upstream `connect` handshake and the wait
	// for a new client's first frame. When a connection token is set, a
	// client that has not authenticated this long after it connected is
	// closed, whatever it sent meanwhile. Default 10s.
	HandshakeTimeout time.Duration

	// MaxPendingRequests is the number of requests one client connection may
	// have in flight (sent, not yet answered); a fan-out (session.list, a
	// registration, a global write) counts as one until it is answered.
	// Past it a request is answered with error -32032 (retryable).
	// Default 4096.
	MaxPendingRequests int

	// MaxConnections caps the SDK connections open at once over all
	// clients. One past it is accepted, its first request (the SDK's
	// connect) is answered with error -32036, and it is closed: the SDK's
	// start fails with "too many connections". Each connection also holds one
	// upstream connection per backend it uses, so the process needs about
	// MaxConnections × (1 + backends used) file descriptors. Zero means no
	// cap. Default 16384.
	MaxConnections int

	// MaxConnectionsPerIP caps the SDK connections open at once from one
	// source IP address; one past it is refused like one past
	// MaxConnections. Zero means no cap, the right choice when clients
	// reach the proxy through a NAT or a load balancer. Default 0.
	MaxConnectionsPerIP int

	// MaxSessionsPerClient caps the sessions one client connection holds
	// (created or resumed, not yet deleted or detached). A request for one
	// more is answered with error -32034 and nothing is sent to a backend.
	// Default 10000.
	MaxSessionsPerClient int

	// MaxSessionParamsBytes caps the params of one session.create or
	// session.resume, which the proxy keeps for as long as the session
	// lives to resume it on another backend (failover, drain). A larger
	// create or resume is answered with error -32035 and not forwarded.
	// What one client can make the proxy hold in all is capped by
	// MaxClientParamsBytes. Default 1048576 (1 MiB).
	MaxSessionParamsBytes int

	// MaxClientParamsBytes caps the create/resume params one client
	// connection makes the proxy keep over all its sessions. A create or
	// resume that would pass it is answered with error -32035 and not
	// forwarded; deleting or detaching a session gives its share back. At
	// least MaxSessionParamsBytes. Default 67108864 (64 MiB).
	MaxClientParamsBytes int

	// ClientQueueBytes bounds what waits to be written to one client when
	// upstream.connections_per_backend is above zero: a client that lets
	// more wait (does not read) is closed, its sessions detached, and
	// nobody else slows down. Default 8388608 (8 MiB).
	ClientQueueBytes int

	// ClientIdleTimeout closes a client connection that holds no session,
	// has no request in flight and has sent nothing for this long (it is
	// closed between one and two times this after its last frame). Zero
	// disables the check. Default 0.
	ClientIdleTimeout time.Duration
}

// Upstream configures connections from the proxy to backends.
type Upstream struct {
	// DialTimeout bounds establishing a TCP connection to a backend.
	// Default 5s.
	DialTimeout time.Duration

	// RequestTimeout bounds the wait for the answer to one request relayed
	// to a backend. Zero means no per-request timeout, the right choice for
	// long-running agent turns. Default 0.
	RequestTimeout time.Duration

	// ConnectionsPerBackend, when above zero, makes clients share the
	// proxy's connections to a backend: at most this many per backend, each
	// multiplexing the sessions of many clients, so a backend sees a few
	// connections instead of one per client (and broadcasts its
	// session.lifecycle notifications that many times). A client that
	// registers a process-wide provider (sessionFs, llmInference, extension
	// launch, builtin plugins) keeps connections of its own. Zero gives
	// every client its own connection to each backend it uses. At most 64.
	// Default 4.
	ConnectionsPerBackend int

	// Lifecycle says which session.lifecycle notifications (session
	// created, updated, deleted, …) a client gets. "sessions": those of the
	// sessions it holds, once each, from the backend holding each. "pool":
	// those of every session on every backend, once each (the proxy listens
	// on one shared connection per backend and copies each to every
	// client), as a direct connection gets those of every session on its
	// server; every session change then costs one write per client
	// connection. "pool" needs connections_per_backend above zero. Default
	// "sessions".
	Lifecycle string
}

// Values of Upstream.Lifecycle.
const (
	LifecycleSessions = "sessions"
	LifecyclePool     = "pool"
)

// Ring configures the bounded-load consistent-hash ring
// (github.com/buraksezer/consistent) that maps session ids to backends.
type Ring struct {
	// Partitions is the number of hash partitions; sessions hash to a
	// partition and partitions are assigned to backends. A prime spreads
	// keys best. Default 271.
	Partitions int

	// Replication is the number of virtual nodes per backend on the ring.
	// Default 20.
	Replication int

	// Load is the bounded-load factor: no backend owns more than
	// Load × (average partitions per backend). Must be at least 1, or the
	// partitions cannot all be placed. Default 1.25.
	Load float64
}

// Backend is one static backend: a headless Copilot CLI server listening on
// TCP.
type Backend struct {
	// Address is the backend's host:port; in the file it is the block label.
	Address string

	// Token is the backend's COPILOT_CONNECTION_TOKEN, sent in the upstream
	// `connect` only when non-empty; a change applies at SIGHUP to checks
	// and new connections. Never log it. Default "".
	Token string

	// Weight is the backend's relative capacity: it owns about Weight
	// shares of the ring (a backend of weight 2 gets about twice the
	// sessions of one of weight 1); a change applies at SIGHUP. 1 to 100.
	// Default 1.
	Weight int

	// Drain marks the backend draining: it takes no new sessions and its
	// sessions move at their next turn boundary. Change it and send SIGHUP
	// to drain a server without a restart (a block removed from the file is
	// drained too, then forgotten once it holds no session). Default false.
	Drain bool
}

// Pool configures the managed local pool: headless Copilot CLI servers the
// proxy starts as children, supervises, and adds to the ring.
type Pool struct {
	// Spawn is the number of children to start, at most 256. Zero starts
	// none. Default 0.
	Spawn int

	// CopilotPath is the CLI executable. Empty means `copilot` looked up on
	// PATH. Default "".
	CopilotPath string

	// Home is the COPILOT_HOME directory shared by all children, so that any
	// of them can resume a session another one created. Empty means the pool
	// creates one private directory (rpcproxy-pool-*) under the OS temporary
	// directory (os.TempDir) and removes it, sessions included, when the
	// process exits; a directory set here is never removed. Default "".
	Home string

	// Args are extra command-line arguments given to every child, after the
	// ones the pool itself needs. Default none.
	Args []string
}

// Executable returns the CLI to run: CopilotPath, or "copilot" (looked up on
// PATH) when it is empty.
func (p Pool) Executable() string {
	if p.CopilotPath == "" {
		return "copilot"
	}
	return p.CopilotPath
}

// Health configures active health checks of backends.
type Health struct {
	// Interval is the time between two checks of one backend. Default 1s.
	Interval time.Duration

	// Timeout bounds one check; it may not exceed Interval. Default 1s.
	Timeout time.Duration

	// Rise is the number of consecutive passing checks that mark a down
	// backend up. Default 2.
	Rise int

	// Fall is the number of consecutive failing checks that mark an up
	// backend down. Default 2.
	Fall int
}

// Gossip configures memberlist-based membership between rpcproxy instances.
type Gossip struct {
	// Bind is the host:port memberlist listens on (TCP and UDP). The host
	// must be an IP literal or empty (all interfaces). Empty Bind disables
	// gossip; Advertise and Join must then be empty too. The --join and
	// --gossip-bind flags enable it (--join alone binds DefaultGossipBind,
	// loopback). `rpcproxy agent` always gossips, on DefaultGossipBind when
	// this is empty. Default "" (off).
	Bind string

	// Advertise is the IP:port other members use to reach this one. Empty
	// means memberlist derives it from Bind. Default "".
	Advertise string

	// Join lists host:port addresses of existing members to join at
	// start-up. Empty means this instance starts a new cluster.
	// Default none.
	Join []string

	// Encrypt lists base64-encoded AES keys of 16, 24 or 32 bytes. The first
	// encrypts and decrypts; the rest only decrypt, which allows rotating
	// keys without downtime. Empty means gossip is not encrypted, and then
	// anyone who reaches the gossip port can join: Validate refuses a
	// non-loopback Bind without keys unless Insecure is set. When the file
	// leaves it empty, Load takes the list from RPCPROXY_GOSSIP_KEYS
	// (comma-separated). Never log the keys. Default none.
	Encrypt []string

	// Insecure allows a non-loopback Bind (an interface address, or an empty
	// host or 0.0.0.0 for all of them) with no Encrypt keys. Without keys
	// any host that reaches the port can join, advertise a CLI server on
	// its own address and be sent sessions (with their session.create
	// parameters and BackendToken). The process then warns at start and
	// every hour. Loopback binds (127.0.0.0/8, ::1) need no keys and warn
	// once. No effect when keys are set. When the file leaves it false,
	// RPCPROXY_GOSSIP_INSECURE=1 sets it. Default false.
	Insecure bool

	// AllowedBackends lists networks (CIDR, e.g. "10.0.8.0/24"; one host is
	// "10.0.8.5/32") in which any agent may advertise a CLI server. Without
	// an entry, a proxy routes to an agent's advertised CLI address only if
	// it is an IP literal equal to the agent's own gossip IP; other agents
	// are ignored and logged. Needed when a CLI server listens on another
	// address than its agent gossips on. Default none.
	AllowedBackends []string

	// Profile selects memberlist timings: "lan" (memberlist's
	// DefaultLANConfig) or "fast" (tuned for quicker failure detection).
	// Default "lan".
	Profile string

	// BackendToken is the COPILOT_CONNECTION_TOKEN of the CLI servers found
	// by gossip, sent in the proxy's upstream connect when not empty. When
	// the file leaves it empty, Load takes it from RPCPROXY_BACKEND_TOKEN.
	// Never log it. Default "".
	BackendToken string
}

// DefaultGossipBind is the gossip address used when gossip is switched on
// without one: loopback only.
const DefaultGossipBind = "127.0.0.1:7946"

// Agent configures `rpcproxy agent`.
type Agent struct {
	// CLI is the address of the local headless CLI server the agent checks.
	// Default "127.0.0.1:4321".
	CLI string

	// Advertise is the address proxies should dial for this CLI server.
	// Empty means CLI. Default "".
	Advertise string

	// Name is this agent's node name in the cluster, unique among members.
	// Empty means "agent-" plus the advertised address. Default "".
	Name string

	// Weight is the CLI server's relative capacity, announced to proxies,
	// which give it about Weight shares of the ring. 1 to 100. Default 1.
	Weight int

	// Token is the CLI server's COPILOT_CONNECTION_TOKEN, used by the
	// agent's own checks. When the file leaves it empty, Load takes it from
	// the COPILOT_CONNECTION_TOKEN environment variable, as the CLI beside
	// the agent does. Never log it. Default "".
	Token string

	// DrainTimeout bounds how long the agent stays in the cluster as
	// draining after SIGTERM before it leaves. Default "10s".
	DrainTimeout time.Duration
}

// Enabled reports whether gossip is configured to run.
func (g Gossip) Enabled() bool { return g.Bind != "" }

// Default returns the configuration used when no file, environment or flag
// says otherwise. Every call returns a new value.
func Default() *Config {
	return &Config{
		Listen:          ":4321",
		LogLevel:        LogInfo,
		ShutdownTimeout: 30 * time.Second,
		Limits: Limits{
			MaxFrameBytes:                64 << 20,
			MaxUnauthenticatedFrameBytes: 64 << 10,
			MaxBufferedBytes:             256 << 20,
			MaxHeaderLineBytes:           8 << 10,
			FrameTimeout:                 30 * time.Second,
			HandshakeTimeout:             10 * time.Second,
			MaxPendingRequests:           4096,
			MaxConnections:               16384,
			MaxSessionsPerClient:         10000,
			MaxSessionParamsBytes:        1 << 20,
			MaxClientParamsBytes:         64 << 20,
			ClientQueueBytes:             8 << 20,
		},
		Upstream: Upstream{
			DialTimeout:           5 * time.Second,
			ConnectionsPerBackend: 4,
			Lifecycle:             LifecycleSessions,
		},
		Ring: Ring{
			Partitions:  271,
			Replication: 20,
			Load:        1.25,
		},
		Health: Health{
			Interval: time.Second,
			Timeout:  time.Second,
			Rise:     2,
			Fall:     2,
		},
		Gossip: Gossip{
			Profile: ProfileLAN,
		},
		Agent: Agent{
			CLI:          "127.0.0.1:4321",
			Weight:       1,
			DrainTimeout: 10 * time.Second,
		},
	}
}

// defaultBackendWeight is the weight of a backend that does not set one.
const defaultBackendWeight = 1
