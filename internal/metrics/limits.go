package metrics

import "github.com/prometheus/client_golang/prometheus"

// Names of the limits counted by LimitHit. A limit not listed here counts
// under "other": to give a new limit its own series, add its name below
// (and to the README's metrics table).
const (
	// LimitMaxConnections: a client connection over max_connections.
	LimitMaxConnections = "max_connections"
	// LimitMaxSessions: a session over a per-client or pool-wide session limit.
	LimitMaxSessions = "max_sessions"
	// LimitMaxPendingRequests: a request over limits.max_pending_requests
	// (answered -32032, retryable).
	LimitMaxPendingRequests = "max_pending_requests"
	// LimitOpeningQueue: a frame over the bounded queue of an upstream
	// connection still opening.
	LimitOpeningQueue = "opening_queue"
	// LimitMoveQueue: a request over the bounded queue of a session being moved.
	LimitMoveQueue = "move_queue"
	// LimitFrameSize: a frame over limits.max_frame_bytes or a header line
	// over limits.max_header_line_bytes (the peer is closed).
	LimitFrameSize = "frame_size"
	// LimitMaxConnectionsPerIP: a client connection over
	// limits.max_connections_per_ip.
	LimitMaxConnectionsPerIP = "max_connections_per_ip"
	// LimitMaxSessionParams: a create/resume over
	// limits.max_session_params_bytes.
	LimitMaxSessionParams = "max_session_params_bytes"
	// LimitHandshakeTimeout: a client closed for not authenticating within
	// limits.handshake_timeout.
	LimitHandshakeTimeout = "handshake_timeout"
	// LimitAuthFailures: a client closed after three wrong tokens.
	LimitAuthFailures = "auth_failures"
	// LimitClientIdle: a client closed by limits.client_idle_timeout.
	LimitClientIdle = "client_idle_timeout"
	// LimitBufferedBytes: a connection closed because its unfinished frame
	// could not grow within limits.max_buffered_bytes.
	LimitBufferedBytes = "max_buffered_bytes"
	// LimitOther counts every name not listed.
	LimitOther = "other"
)

// Limits lists the limit names with their own series.
var Limits = []string{LimitMaxConnections, LimitMaxConnectionsPerIP, LimitMaxSessions, LimitMaxSessionParams,
	LimitMaxPendingRequests, LimitHandshakeTimeout, LimitAuthFailures, LimitClientIdle, LimitOpeningQueue,
	LimitMoveQueue, LimitFrameSize, LimitBufferedBytes, LimitOther}

func newLimits(reg prometheus.Registerer) (map[string]prometheus.Counter, prometheus.Counter) {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "limit_hits_total",
		Help: "Times a configured or built-in limit refused something, by limit."}, []string{"limit"})
	reg.MustRegister(vec)
	m := make(map[string]prometheus.Counter, len(Limits))
	for _, name := range Limits {
		m[name] = vec.WithLabelValues(name)
	}
	return m, m[LimitOther]
}

// LimitHit counts one refusal by the named limit (one of the Limit
// constants; any other name counts as "other"). It allocates nothing and
// never blocks: call it where the limit refuses, on any goroutine. The
// proxy calls it through its Observer hook (see internal/proxy/observer.go
// for how to add a limit there).
func (p *Proxy) LimitHit(name string) {
	if c, ok := p.limits[name]; ok {
		c.Inc()
		return
	}
	p.limitOther.Inc()
}
