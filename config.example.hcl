# rpcproxy configuration: every setting, at its default.
#
# Every setting is optional; one left out keeps the default shown here.
# Durations are strings with a unit: "250ms", "30s", "1m30s".
# Sizes are in bytes. Command-line flags (--listen, --admin, --backend, --log-level,
# --spawn) override this file. Load it with `rpcproxy serve --config <file>`.
# SIGHUP re-reads the file and applies its backend blocks (added ones join,
# removed or `drain = true` ones are drained); other settings need a restart.

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

# Limits: what one client connection may cost the proxy.
limits {
  # Largest Content-Length accepted from a peer, in bytes; a larger frame
  # closes the connection. Must be > 0. Default 67108864 (64 MiB).
  max_frame_bytes = 67108864

  # Longest frame header line accepted, in bytes, line terminator included.
  # Between 64 and 32768. Default 8192.
  max_header_line_bytes = 8192

  # Time a frame may take from its first byte to its last; a client that
  # stalls in the middle of a frame is disconnected. "0s" disables the
  # check. Default "30s".
  frame_timeout = "30s"

  # Bounds the upstream `connect` handshake and the wait for a new client's
  # first frame. Must be > 0. Default "10s".
  handshake_timeout = "10s"

  # Requests one client connection may have in flight (sent, not yet
  # answered). Must be > 0. Default 4096.
  max_pending_requests = 4096
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
  # only when set. Default "".
  token = ""

  # Relative capacity: the backend owns about `weight` shares of the ring.
  # 1 to 100. Default 1.
  weight = 1

  # Draining: no new sessions; its sessions move at their next turn
  # boundary. Edit and send SIGHUP to rpcproxy to apply without a restart
  # (a backend block removed from the file is drained the same way).
  # Default false.
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
  # another created. "" makes one private directory under the OS temporary
  # directory for the life of the process. Default "".
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
  # [] means no encryption. When empty here, the environment variable
  # RPCPROXY_GOSSIP_KEYS (comma-separated) is used. Default [].
  encrypt = []

  # memberlist timings: "lan" (memberlist's DefaultLANConfig) or "fast"
  # (tuned for quicker failure detection). Default "lan".
  profile = "lan"

  # COPILOT_CONNECTION_TOKEN of the CLI servers found by gossip, sent in the
  # proxy's upstream connect when set. When empty here, the environment
  # variable RPCPROXY_BACKEND_TOKEN is used. Default "".
  backend_token = ""
}

# Agent: `rpcproxy agent`, run beside one headless CLI server, announces it to
# the gossip cluster with its health; `rpcproxy serve` ignores this block.
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
  # Default "".
  token = ""

  # After SIGTERM the agent announces itself draining (no new sessions; its
  # sessions move at their next turn boundary) for up to this long, then
  # leaves the cluster. Default "10s".
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
