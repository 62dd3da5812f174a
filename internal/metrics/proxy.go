package metrics

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/rpcproxy/rpcproxy/internal/router"
)

// Proxy counts what the proxy does: client connections, requests, answers,
// frames and bytes, turns, session moves and limit hits. It implements the
// proxy's Observer hook. Every method the proxy calls per frame uses a
// child resolved when Proxy was made (or per backend, once per upstream):
// no label lookup and no allocation on the hot path.
type Proxy struct {
	accepted prometheus.Counter
	refused  *prometheus.CounterVec // by reason
	requests [numClasses]prometheus.Counter

	frames [numDirections]prometheus.Counter
	bytes  [numDirections]prometheus.Counter

	errorCodes map[int]prometheus.Counter
	errorOther prometheus.Counter

	turns     prometheus.Histogram
	failovers prometheus.Counter
	moves     prometheus.Counter

	limits     map[string]prometheus.Counter
	limitOther prometheus.Counter

	backendRequests *prometheus.CounterVec   // by backend and class
	backendLatency  *prometheus.HistogramVec // by backend

	mu       sync.Mutex
	backends map[string]*Backend
}

// numClasses bounds router.Class values (ClassRefused is the last).
const numClasses = int(router.ClassRefused) + 1

// Directions of frames and bytes.
const (
	fromClient = iota
	toClient
	fromBackend
	toBackend
	numDirections
)

var directionNames = [numDirections]string{"from_client", "to_client", "from_backend", "to_backend"}

// Refusal reasons of client connections: a connection accepted at TCP that
// the proxy closed without serving. Other names count as "other".
const (
	// RefusedClosing: the proxy was shutting down.
	RefusedClosing = "closing"
	// RefusedHandshakeTimeout: no first frame within the handshake timeout.
	RefusedHandshakeTimeout = "handshake_timeout"
	// RefusedAuth: connect with a wrong token (the connection stays open,
	// as with the CLI, but is not served until a good connect).
	RefusedAuth = "auth_failed"
	// RefusedMaxConnections: the max_connections limit was reached.
	RefusedMaxConnections = "max_connections"
	// RefusedBadInput: the client was closed for sending what is not
	// JSON-RPC (a malformed frame or body).
	RefusedBadInput = "bad_input"
)

// RefusalReasons lists the refusal reasons with their own series.
var RefusalReasons = []string{RefusedClosing, RefusedHandshakeTimeout, RefusedAuth, RefusedMaxConnections, RefusedBadInput, "other"}

// knownErrorCodes are the JSON-RPC error codes counted under their own
// label: the standard ones, the CLI's handshake codes and the proxy's own.
// Any other code a backend answers with counts as "other", so a backend
// cannot grow the label set.
var knownErrorCodes = []int{
	-32700, -32600, -32601, -32602, -32603, // JSON-RPC 2.0
	-32001, -32002, -32003, // the CLI's connect (authentication)
	-32030, -32031, -32032, // the proxy's own: backend unavailable, no backend, overloaded
}

// Latency buckets, in seconds. Forwarded requests span a ping (well under a
// millisecond on a LAN) to a session.create that loads a session (seconds);
// turns span a cached answer to a long agent run (minutes).
var (
	requestBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	turnBuckets    = []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1800}
)

func newProxy(reg prometheus.Registerer) *Proxy {
	p := &Proxy{
		accepted: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "client_connections_accepted_total",
			Help: "Client connections accepted."}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "client_connections_refused_total",
			Help: "Client connections refused or closed unserved, by reason."}, []string{"reason"}),
		errorCodes: make(map[int]prometheus.Counter, len(knownErrorCodes)),
		turns: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: "turn_duration_seconds",
			Help: "Time from a session.send forwarded to the backend to its session.idle event.", Buckets: turnBuckets}),
		failovers: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "failovers_total",
			Help: "Sessions resumed on another backend after theirs was lost."}),
		moves: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "turn_boundary_moves_total",
			Help: "Sessions moved between turns to a new ring owner (a backend joined, came back or drains)."}),
		backendRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "backend_requests_total",
			Help: "Requests sent to a backend (fan-out parts included), by backend and method class."}, []string{"backend", "class"}),
		backendLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: "backend_request_duration_seconds",
			Help: "Time from a request forwarded to a backend to its answer, by backend.", Buckets: requestBuckets}, []string{"backend"}),
		backends: make(map[string]*Backend),
	}
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "client_requests_total",
		Help: "Requests received from clients, by method class."}, []string{"class"})
	for c := range numClasses {
		p.requests[c] = requests.WithLabelValues(router.Class(c).String())
	}
	for _, r := range RefusalReasons {
		p.refused.WithLabelValues(r)
	}
	frames := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "frames_total",
		Help: "JSON-RPC frames through the proxy, by direction (from_client, to_client, from_backend, to_backend)."}, []string{"direction"})
	bytes := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "frame_bytes_total",
		Help: "Bytes of JSON-RPC frame bodies (headers not included), by direction."}, []string{"direction"})
	for d, name := range directionNames {
		p.frames[d] = frames.WithLabelValues(name)
		p.bytes[d] = bytes.WithLabelValues(name)
	}
	errs := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "error_answers_total",
		Help: `Error answers sent to clients (the proxy's own and backends'), by JSON-RPC code ("other" for codes not listed).`}, []string{"code"})
	for _, code := range knownErrorCodes {
		p.errorCodes[code] = errs.WithLabelValues(strconv.Itoa(code))
	}
	p.errorOther = errs.WithLabelValues("other")
	p.limits, p.limitOther = newLimits(reg)
	reg.MustRegister(p.accepted, p.refused, requests, frames, bytes, errs, p.turns, p.failovers, p.moves, p.backendRequests, p.backendLatency)
	return p
}

// ClientAccepted counts a client connection accepted.
func (p *Proxy) ClientAccepted() { p.accepted.Inc() }

// ClientRefused counts a client connection refused, by one of the Refused
// reasons (any other name counts as "other").
func (p *Proxy) ClientRefused(reason string) {
	if !known(RefusalReasons, reason) {
		reason = "other"
	}
	p.refused.WithLabelValues(reason).Inc()
}

func known(names []string, name string) bool {
	for _, n := range names {
		if n == name {
			return true
		}
	}
	return false
}

// ClientRequest counts a client request by its method class.
func (p *Proxy) ClientRequest(class router.Class) {
	if int(class) < numClasses {
		p.requests[class].Inc()
	}
}

// FromClient counts a frame read from a client, of n body bytes.
func (p *Proxy) FromClient(n int) { p.frame(fromClient, n) }

// ToClient counts a frame written to a client, of n body bytes.
func (p *Proxy) ToClient(n int) { p.frame(toClient, n) }

func (p *Proxy) frame(d, n int) {
	p.frames[d].Inc()
	p.bytes[d].Add(float64(n))
}

// ErrorAnswer counts an error answer sent to a client.
func (p *Proxy) ErrorAnswer(code int) {
	if c, ok := p.errorCodes[code]; ok {
		c.Inc()
		return
	}
	p.errorOther.Inc()
}

// TurnEnded records a turn's duration (session.send to session.idle).
func (p *Proxy) TurnEnded(took time.Duration) { p.turns.Observe(took.Seconds()) }

// Failover counts a session resumed on another backend after its own was lost.
func (p *Proxy) Failover() { p.failovers.Inc() }

// TurnBoundaryMove counts a session moved between turns to its new ring owner.
func (p *Proxy) TurnBoundaryMove() { p.moves.Inc() }

// BackendObserver is what the proxy counts per backend. It is an alias of
// an unnamed interface type, identical to the proxy's own declaration, so
// *Proxy satisfies proxy.Observer without either package importing the other.
type BackendObserver = interface {
	Request(class router.Class)
	Answered(took time.Duration)
	FromBackend(n int)
	ToBackend(n int)
}

// Backend returns the counters of one backend, made on first use. The
// proxy calls it once per upstream connection and keeps the result.
func (p *Proxy) Backend(name string) BackendObserver {
	p.mu.Lock()
	defer p.mu.Unlock()
	if b := p.backends[name]; b != nil {
		return b
	}
	b := &Backend{p: p, latency: p.backendLatency.WithLabelValues(name)}
	for c := range numClasses {
		switch router.Class(c) {
		case router.ClassLocal, router.ClassRefused:
			continue // never sent to a backend
		}
		b.requests[c] = p.backendRequests.WithLabelValues(name, router.Class(c).String())
	}
	p.backends[name] = b
	return b
}

// Backend is one backend's counters, resolved once.
type Backend struct {
	p        *Proxy
	requests [numClasses]prometheus.Counter
	latency  prometheus.Observer
}

// Request counts a request sent to the backend, by method class.
func (b *Backend) Request(class router.Class) {
	if int(class) < numClasses && b.requests[class] != nil {
		b.requests[class].Inc()
	}
}

// Answered records the time a request waited for the backend's answer.
func (b *Backend) Answered(took time.Duration) { b.latency.Observe(took.Seconds()) }

// FromBackend counts a frame read from the backend, of n body bytes.
func (b *Backend) FromBackend(n int) { b.p.frame(fromBackend, n) }

// ToBackend counts a frame written to the backend, of n body bytes.
func (b *Backend) ToBackend(n int) { b.p.frame(toBackend, n) }

// Totals returns the client requests and the error answers counted since
// start, for rates (the admin summary's requests/s and error rate). It
// reads the counters, so it is for a scrape-like pace, not per frame.
func (p *Proxy) Totals() (requests, errors uint64) {
	for _, c := range p.requests {
		requests += counterValue(c)
	}
	for _, c := range p.errorCodes {
		errors += counterValue(c)
	}
	errors += counterValue(p.errorOther)
	return requests, errors
}

func counterValue(c prometheus.Counter) uint64 {
	var m dto.Metric
	if c.Write(&m) != nil || m.Counter == nil {
		return 0
	}
	return uint64(m.Counter.GetValue())
}

// TurnQuantiles estimates the median and 99th percentile turn duration
// since start from the turn histogram, as Prometheus's histogram_quantile
// does (linear within a bucket); ok is false before the first turn. For a
// status page: a scrape-like pace, not per frame.
func (p *Proxy) TurnQuantiles() (p50, p99 time.Duration, ok bool) {
	var m dto.Metric
	if p.turns.Write(&m) != nil || m.Histogram == nil || m.Histogram.GetSampleCount() == 0 {
		return 0, 0, false
	}
	h := m.Histogram
	q := func(phi float64) time.Duration {
		rank := phi * float64(h.GetSampleCount())
		lower, below := 0.0, 0.0
		for _, b := range h.GetBucket() {
			upper, n := b.GetUpperBound(), float64(b.GetCumulativeCount())
			if n >= rank {
				if n == below {
					return time.Duration(upper * float64(time.Second))
				}
				return time.Duration((lower + (upper-lower)*(rank-below)/(n-below)) * float64(time.Second))
			}
			lower, below = upper, n
		}
		return time.Duration(lower * float64(time.Second)) // past the last bucket: its bound
	}
	return q(0.5), q(0.99), true
}
