// Package metrics defines rpcproxy's Prometheus metrics and serves them in
// the exposition format. It owns one registry per process: the proxy's
// event counters (Proxy, fed by the proxy's Observer hook), the health
// checks' results (HealthCheck), state read at scrape time from the owners
// of that state (Watch: sessions, backend states, ring shares, gossip
// members), and the standard Go and process collectors.
//
// Every label has a bounded set of values: backend address, method class,
// error code (known codes, else "other"), reason and limit names,
// direction. No session id or client address is ever a label.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// namespace prefixes every rpcproxy metric.
const namespace = "rpcproxy"

// Metrics is the process's registry with every rpcproxy metric in it.
// Create one with New; it is safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry
	// Proxy receives the proxy's events (pass it as proxy.Config.Observer).
	Proxy *Proxy
	// Health receives the health checker's results (pass its Check method
	// as health.Config.OnCheck).
	Health *Health
}

// New returns a registry with the proxy's and the health checks' metrics
// and the Go and process collectors. State read at scrape time is added
// with Watch once its owners exist.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return &Metrics{reg: reg, Proxy: newProxy(reg), Health: newHealth(reg)}
}

// Watch registers the state read at scrape time from src. Call it once.
func (m *Metrics) Watch(src Sources) {
	m.reg.MustRegister(&stateCollector{src: src})
}

// Registry is the registry behind Handler, for tests and for callers that
// add collectors of their own.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus exposition format (GET
// /metrics). A scrape that fails to gather a metric is answered 500, so
// the failure shows as a failed scrape (up == 0) rather than as missing
// series.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorHandling: promhttp.HTTPErrorOnError,
		Registry:      m.reg, // counts its own errors: promhttp_metric_handler_errors_total
	})
}
