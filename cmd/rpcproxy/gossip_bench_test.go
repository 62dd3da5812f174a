package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rpcproxy/rpcproxy/internal/fakecli"
	"github.com/rpcproxy/rpcproxy/internal/membership"
)

// BenchmarkGossipConvergence measures, per memberlist profile, the time from
// an agent's join to its backend being on a proxy's ring (routable), and
// from the agent's crash (no leave) to the backend being off the ring.
//
//	go test -run '^$' -bench GossipConvergence -benchtime 5x ./cmd/rpcproxy
func BenchmarkGossipConvergence(b *testing.B) {
	for _, profile := range []membership.Profile{membership.ProfileFast, membership.ProfileLAN} {
		b.Run(string(profile), func(b *testing.B) {
			p := startBenchProxy(b, profile)
			cli, err := fakecli.Listen("127.0.0.1:0", fakecli.Config{})
			if err != nil {
				b.Fatal(err)
			}
			defer cli.Close()
			var joinTotal, deathTotal time.Duration
			for i := 0; i < b.N; i++ {
				mc := membership.DefaultConfig()
				mc.NodeName = fmt.Sprintf("agent-%d", i)
				mc.BindAddr = "127.0.0.1:0"
				mc.Join = []string{p.node.Addr()}
				mc.Profile = profile
				mc.Meta = membership.Meta{Role: membership.RoleBackend, Addr: cli.Addr(), Healthy: true}
				start := time.Now()
				node, err := membership.Join(context.Background(), mc)
				if err != nil {
					b.Fatal(err)
				}
				waitRing(b, p, 1)
				joinTotal += time.Since(start)
				start = time.Now()
				node.Shutdown() // a crash: no leave message
				waitRing(b, p, 0)
				deathTotal += time.Since(start)
			}
			b.ReportMetric(float64(joinTotal.Milliseconds())/float64(b.N), "ms-join-to-routable")
			b.ReportMetric(float64(deathTotal.Milliseconds())/float64(b.N), "ms-death-to-unroutable")
		})
	}
}

func startBenchProxy(b *testing.B, profile membership.Profile) *testProxy {
	b.Helper()
	cfg := gossipTestConfig(nil, nil)
	cfg.Gossip.Profile = string(profile)
	p := &testProxy{}
	p.table, p.checker = newRouting(cfg)
	node, err := joinAsProxy(context.Background(), cfg, p.checker, nullLogger())
	if err != nil {
		b.Fatal(err)
	}
	p.node = node
	b.Cleanup(func() { node.Shutdown(); p.checker.Close() })
	return p
}

func waitRing(b *testing.B, p *testProxy, n int) {
	deadline := time.Now().Add(60 * time.Second)
	for p.table.Ring().Len() != n {
		if time.Now().After(deadline) {
			b.Fatalf("ring never reached %d backends", n)
		}
		time.Sleep(time.Millisecond)
	}
}
