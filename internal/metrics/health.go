package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Health counts the health checker's probes: results and latency per backend.
type Health struct {
	checks  *prometheus.CounterVec   // by backend and result
	latency *prometheus.HistogramVec // by backend
}

// checkBuckets span a loopback ping to the default 1s check timeout and beyond.
var checkBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}

func newHealth(reg prometheus.Registerer) *Health {
	h := &Health{
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "health_checks_total",
			Help: "Active health checks of backends, by backend and result (ok, failed)."}, []string{"backend", "result"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: "health_check_duration_seconds",
			Help: "Time an active health check took (connect when needed, then ping), by backend.", Buckets: checkBuckets}, []string{"backend"}),
	}
	reg.MustRegister(h.checks, h.latency)
	return h
}

// Check records one probe of a backend; it is the health checker's OnCheck
// hook (called from check goroutines, once per check interval).
func (h *Health) Check(backend string, took time.Duration, err error) {
	result := "ok"
	if err != nil {
		result = "failed"
	}
	h.checks.WithLabelValues(backend, result).Inc()
	h.latency.WithLabelValues(backend).Observe(took.Seconds())
}
