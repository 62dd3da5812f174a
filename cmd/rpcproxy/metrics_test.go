package main

import (
	"net/http/httptest"
	"testing"

	"github.com/rpcproxy/rpcproxy/internal/metrics"
	"github.com/rpcproxy/rpcproxy/internal/metrics/promtest"
	"github.com/rpcproxy/rpcproxy/internal/proxy"
)

// TestMetricsHandlerReadsGossipAndRing: the handler the admin listener
// mounts reads the running proxy's sources: gossip members by role, a
// backend found by gossip with its state and ring share.
func TestMetricsHandlerReadsGossipAndRing(t *testing.T) {
	p := startTestProxy(t, nil, nil)
	cli, _, _ := startTestAgent(t, []string{p.node.Addr()}, nil)
	srv := proxy.New(proxy.Config{}, p.table, p.checker)
	t.Cleanup(func() { srv.Close() })
	hs := httptest.NewServer(metricsHandler(metrics.New(), srv, p.checker, p.table, &gossipMember{node: p.node}))
	t.Cleanup(hs.Close)
	var s promtest.Scrape
	waitFor(t, "the agent's backend on the ring, seen in the metrics", func() bool {
		s, _ = promtest.Get(t, hs.URL)
		v, _ := s.Value("rpcproxy_backend_ring_share_ratio", "backend", cli.Addr())
		return v == 1
	})
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"rpcproxy_gossip_members", []string{"role", "proxy"}, 1},
		{"rpcproxy_gossip_members", []string{"role", "backend"}, 1},
		{"rpcproxy_backend_up", []string{"backend", cli.Addr()}, 1},
		{"rpcproxy_ring_backends", nil, 1},
		{"rpcproxy_client_connections", nil, 0},
	} {
		if got := s.Must(t, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}
