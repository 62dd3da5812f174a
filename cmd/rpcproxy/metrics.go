package main

import (
	"net/http"

	"github.com/rpcproxy/rpcproxy/internal/health"
	"github.com/rpcproxy/rpcproxy/internal/metrics"
	"github.com/rpcproxy/rpcproxy/internal/proxy"
	"github.com/rpcproxy/rpcproxy/internal/router"
)

// metricsHandler completes reg with the state read at scrape time from the
// running proxy, checker, ring and gossip node (nil without gossip), and
// returns the handler for GET /metrics (Prometheus exposition). reg's
// event counters must already be wired: reg.Proxy as the proxy's Observer
// and reg.Health.Check as the checker's OnCheck (runProxy does both).
//
// The admin listener (internal/admin, branch i11-api) mounts what this
// returns at GET /metrics; call it once per process (it registers
// collectors on reg).
func metricsHandler(reg *metrics.Metrics, srv *proxy.Server, checker *health.Checker, table *router.Table, member *gossipMember) http.Handler {
	src := metrics.Sources{
		Clients:  srv.Clients,
		Sessions: srv.Sessions,
		Panics:   srv.Panics,
		Status:   checker.Status,
		Ring:     table.Ring,
	}
	if member != nil {
		src.Members = member.Members
	}
	reg.Watch(src)
	return reg.Handler()
}
