# rpcproxy configuration: every setting, at its default.
#
# Every setting is optional; one left out keeps the default shown here.
# Durations are strings with a unit: "250ms", "30s", "1m30s".
# Sizes are in bytes. Command-line flags (--listen, --admin, --backend,
# --log-level, --spawn, --join, --gossip-bind) override this file. Load it with
# `rpcproxy serve --config <file>`. A bad value is reported at its file:line.
# SIGHUP re-reads the file: backend blocks are applied (added ones join, a
# changed token or weight is updated in place, removed or `drain = true` ones
# are drained, and removed ones forgotten once they hold no session) and so
# is log_level; every other changed setting is logged as needing a restart.
# With --backend flags, the flags still pick the backends: a reload applies
# only the token, weight and drain of the blocks for the addresses they name.

# TCP address SDK clients connect to, host:port. An empty host listens on all
# interfaces. Default ":4321".
listen = ":4321"

# Least severe level logged: "trace", "debug", "info", "warn" or "error".
# Default "info".
log_level = "info"

# Write log lines as JSON objects instead of text. Default false.
log_json = false

# Token SDK clients must present in their `connect` request
# (RuntimeConnection.forUri(url, {connectionToken})). "" accepts any client
# and the proxy warns once at start-up. When empty here, the environment
# variable RPCPROXY_CONNECTION_TOKEN is used, which keeps the secret out of
# this file. Default "".
connection_token = ""

# Graceful stop of `rpcproxy serve`: on SIGTERM or SIGINT the proxy stops
# accepting (new connections are refused), keeps serving its clients and
# closes each one as soon as it is idle (no turn running, no request in
# flight); after this long it closes the clients left and exits. A second
# signal exits at once. The old process of a SIGUSR2 upgrade drains the same
# way once the new one is ready. Must be > 0. Default "30s".
shutdown_timeout = "30s"

# Limits: what clients may cost the proxy, per connection and in total.
limits {
  # Largest Content-Length accepted from a peer, in bytes; a larger frame
  # closes the connection. From 1 to 1073741824 (1 GiB). Default 67108864
  # (64 MiB).
  max_frame_bytes = 67108864

  # Largest Content-Length accepted from a client before its `connect`
  # succeeds, when connection_token is set (without a token it does not
  # apply): a peer that has not authenticated can make the proxy hold
  # little. From 1024 to 1073741824; above max_frame_bytes, max_frame_bytes
  # applies. Default 65536 (64 KiB).
  max_unauthenticated_frame_bytes = 65536

  # Memory held in frames not yet whole, across all connections (clients
  # and backends), in bytes. A frame's buffer grows as its bytes arrive; a
  # connection whose frame cannot grow within this budget is closed, the
  # others go on. At least twice max_frame_bytes. Default 268435456
  # (256 MiB).
  max_buffered_bytes = 268435456

  # Longest frame header line accepted, in bytes, line terminator included.
  # Between 64 and 32768. Default 8192.
  max_header_line_bytes = 8192

  # Time a frame may take from its first byte to its last; a client that
  # stalls in the middle of a frame is disconnected. "0s" disables the
  # check. Default "30s".
  frame_timeout = "30s"

  # Bounds the upstream `connect` handshake and the wait for a new client's
  # first frame. When connection_token is set, a client that has not
  # authenticated this long after connecting is closed, whatever it sent;
  # a client that sends 3 wrong tokens gets the third error -32002 and is
  # closed at once. Must be > 0. Default "10s".
  handshake_timeout = "10s"

  # Requests one client connection may have in flight (sent, not yet
  # answered); a fan-out (session.list, a registration, a global write)
  # counts as one until answered. Past it the client gets error -32032
  # ("too many requests in flight", retryable). Must be > 0. Default 4096.
  max_pending_requests = 4096

  # SDK connections open at once, over all clients. One past it is accepted,
  # its first request (the SDK's connect) is answered with error -32036
  # ("too many connections", data.retryable true) and it is closed: the
  # SDK's start fails with that error. Each connection also holds one
  # upstream connection per backend it uses. 0 means no cap. Default 16384.
  max_connections = 16384

  # SDK connections open at once from one source IP address, refused like
  # max_connections. 0 means no cap (the right choice behind a NAT or a load
  # balancer). At most max_connections. Default 0.
  max_connections_per_ip = 0

  # Sessions one client connection may hold (created or resumed, not yet
  # deleted or detached). One more gets error -32034 ("too many sessions on
  # this connection"); nothing reaches a backend. Must be > 0. Default 10000.
  max_sessions_per_client = 10000

  # Largest params of a session.create or session.resume, in bytes. The
  # proxy keeps them while the session lives, to resume it on another
  # backend after a failure or a drain. A larger create/resume gets error
  # -32035 ("session parameters too large") and is not forwarded. Must be
  # > 0. Default 1048576 (1 MiB).
  max_session_params_bytes = 1048576

  # Create/resume params one client connection makes the proxy keep over
  # all its sessions, in bytes. A create or resume that would pass it gets
  # error -32035 and is not forwarded; deleting or detaching a session gives
  # its share back. At least max_session_params_bytes. Default 67108864
  # (64 MiB).
  max_client_params_bytes = 67108864

  # With upstream.connections_per_backend above 0: the bytes that may wait
  # to be written to one client. A client that lets more wait (it does not
  # read) is closed with a log line and the client_queue_bytes limit
  # counter, and its sessions are detached; no other client slows down.
  # Must be > 0. Default 8388608 (8 MiB).
  client_queue_bytes = 8388608

  # Closes a client connection that holds no session, has no request in
  # flight and sent nothing for this long (closed between one and two times
  # this after its last frame). "0s" disables it. Default "0s".
  client_idle_timeout = "0s"
}

# Upstream: the proxy's connections to backends.
upstream {
  # Time allowed to establish a TCP connection to a backend. Must be > 0.
  # Default "5s".
  dial_timeout = "5s"

  # Time allowed for the answer to one relayed request. "0s" means no
  # per-request timeout, the right choice for long-running agent turns.
  # Default "0s".
  request_timeout = "0s"

  # Shared connections per backend. Above 0, the proxy opens at most this
  # many connections to each backend and multiplexes every client's
  # sessions over them (a backend then sees a few connections, not one per
  # client, and broadcasts session.lifecycle that many times). A client
  # that registers a process-wide provider (sessionFs, llmInference,
  # extension launch, builtin plugins) keeps connections of its own.
  # 0 gives each client its own connection to every backend it uses.
  # Between 0 and 64. Default 4.
  connections_per_backend = 4

  # Which session.lifecycle notifications (session created, updated,
  # deleted, ...) a client gets. "sessions": those of the sessions it holds,
  # once each. "pool": those of every session on every backend, once each,
  # as a direct connection gets those of every session on its server (the
  # proxy listens on one shared connection per backend and copies each to
  # every client: every session change costs one write per client
  # connection). "pool" needs connections_per_backend above 0.
  # Default "sessions".
  lifecycle = "sessions"
}

# Ring: the bounded-load consistent-hash ring that places sessions on backends.
ring {
  # Number of hash partitions; a prime spreads sessions best. Must be > 0.
  # Default 271.
  partitions = 271

  # Virtual nodes per backend on the ring. Must be > 0. Default 20.
  replication = 20

  # Bounded-load factor: no backend owns more than load x the average number
  # of partitions per backend. Must be >= 1. Default 1.25.
  load = 1.25
}

# Static backends: headless Copilot CLI servers (`copilot --headless --port N`)
# that the proxy connects to but does not start. One block per backend; the
# label is its host:port and must be unique. Default: none. A --backend flag
# replaces this whole list (a listed address keeps the token set here).
backend "127.0.0.1:4322" {
  # This backend's COPILOT_CONNECTION_TOKEN, sent in the upstream `connect`
  # only when set. A change applies at SIGHUP to the health checks and to
  # the connections opened after it (open ones stay). Default "".
  token = ""

  # Relative capacity: the backend owns about `weight` shares of the ring.
  # A change applies at SIGHUP (sessions whose key moves follow at their
  # next turn boundary). 1 to 100. Default 1.
  weight = 1

  # Draining: no new sessions; its sessions move at their next turn
  # boundary. Edit and send SIGHUP to rpcproxy to apply without a restart
  # (a backend block removed from the file is drained the same way, then
  # forgotten once it holds no session). Default false.
  drain = false
}

# Pool: headless CLI servers the proxy starts and supervises itself, in
# addition to the static backends.
pool {
  # Number of children to start, 0 to 256. 0 starts none. Default 0.
  spawn = 0

  # CLI executable. "" runs `copilot` found on PATH. Default "".
  copilot_path = ""

  # COPILOT_HOME shared by all children, so any child can resume a session
  # another created. "" makes one private directory (rpcproxy-pool-*) under
  # the OS temporary directory, removed with its sessions when rpcproxy exits
  # (a directory given here is never removed). Default "".
  home = ""

  # Extra command-line arguments given to every child. Default [].
  args = []
}

# Health: active health checks of backends.
health {
  # Time between two checks of one backend. Must be > 0. Default "1s".
  interval = "1s"

  # Time allowed for one check; must be > 0 and at most interval.
  # Default "1s".
  timeout = "1s"

  # Consecutive passing checks that mark a down backend up. Must be > 0.
  # Default 2.
  rise = 2

  # Consecutive failing checks that mark an up backend down. Must be > 0.
  # Default 2.
  fall = 2
}

# Gossip: memberlist membership between rpcproxy instances.
gossip {
  # host:port memberlist listens on (TCP and UDP); the host must be an IP
  # address, or empty for all interfaces. "" disables gossip (advertise and
  # join must then be empty). The --gossip-bind and --join flags switch it
  # on (--join alone binds "127.0.0.1:7946", loopback only); `rpcproxy agent`
  # always gossips. Default "".
  bind = ""

  # IP:port other members use to reach this one. "" derives it from bind.
  # Default "".
  advertise = ""

  # host:port of existing members to join at start-up. [] starts a new
  # cluster. Default [].
  join = []

  # Base64 AES keys of 16, 24 or 32 bytes. The first encrypts everything
  # this node sends; every key is tried to decrypt. A node understands peers
  # whose primary key it holds, so rotate in three rolling steps:
  # [old, new], then [new, old], then [new].
  # [] means no encryption and no authentication: anyone who reaches the
  # gossip port can join, advertise a CLI server and be sent sessions. So a
  # non-loopback bind without keys refuses to start unless insecure = true.
  # When empty here, the environment variable RPCPROXY_GOSSIP_KEYS
  # (comma-separated) is used. Default [].
  encrypt = []

  # Accept a non-loopback bind (an interface address, 0.0.0.0 or an empty
  # host) with no keys. The process then warns at start and every hour.
  # Loopback binds (127.0.0.0/8, ::1) need no keys and warn once at start.
  # No effect when keys are set. When false here, RPCPROXY_GOSSIP_INSECURE=1
  # sets it. Default false.
  insecure = false

  # Networks (CIDR; one host is "10.0.8.5/32") in which any agent may
  # advertise a CLI server. By default a proxy routes to an agent's CLI
  # address only if it is an IP address equal to the agent's own gossip IP
  # (an agent gossiping on 10.0.0.5 may advertise 10.0.0.5:4321; on one host,
  # 127.0.0.1 may advertise 127.0.0.1:4321); other agents, and agents that
  # advertise a host name, are ignored and logged. Default [].
  allowed_backends = []

  # memberlist timings: "lan" (memberlist's DefaultLANConfig) or "fast"
  # (tuned for quicker failure detection). Default "lan".
  profile = "lan"

  # COPILOT_CONNECTION_TOKEN of the CLI servers found by gossip, sent in the
  # proxy's upstream connect when set. When empty here, the environment
  # variable RPCPROXY_BACKEND_TOKEN is used. Default "".
  backend_token = ""
}

# Agent: `rpcproxy agent`, run beside one headless CLI server, announces it to
# the gossip cluster with its health; `rpcproxy serve` ignores this block (and
# does not check it). The agent applies nothing at SIGHUP: it logs each
# changed setting as needing a restart. Flags --cli, --advertise, --name and
# --drain-timeout override it.
agent {
  # Address of the local CLI server the agent checks. Default "127.0.0.1:4321".
  cli = "127.0.0.1:4321"

  # Address proxies dial for this CLI server. "" means cli. Default "".
  advertise = ""

  # Node name in the cluster, unique among members. "" means "agent-" plus
  # the advertised address. Default "".
  name = ""

  # Relative capacity announced to proxies, which give this server about
  # `weight` shares of the ring. 1 to 100. Default 1.
  weight = 1

  # The CLI server's COPILOT_CONNECTION_TOKEN, for the agent's own checks.
  # When empty here, the agent's environment variable COPILOT_CONNECTION_TOKEN
  # is used: start the agent with the same environment as its CLI. Default "".
  token = ""

  # After SIGTERM the agent announces itself draining (no new sessions; its
  # sessions move at their next turn boundary) for up to this long, then
  # leaves the cluster; a second SIGTERM leaves at once. Must be >= 0.
  # Default "10s".
  drain_timeout = "10s"
}

# Admin: an HTTP listener for operators (`rpcproxy serve` only): the status
# page at /, /healthz, /readyz, the JSON API under /v1/ and /metrics. See
# "Operating" in the README.
admin {
  # host:port of the admin listener; "" switches it off. It is for operators,
  # not SDK clients: bind it to loopback or a private network, e.g.
  # "127.0.0.1:9090". The --admin flag overrides it. Default "" (off).
  listen = ""

  # When set, every admin endpoint but /healthz, /readyz and the status
  # page's own files requires `Authorization: Bearer <token>` (the page asks
  # for it, or takes /?token=…). When empty here, the environment
  # variable RPCPROXY_ADMIN_TOKEN is used. Default "" (no authentication).
  token = ""
}
