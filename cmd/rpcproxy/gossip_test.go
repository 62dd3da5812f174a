package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/rpcproxy/rpcproxy/internal/config"
	"github.com/rpcproxy/rpcproxy/internal/fakecli"
	"github.com/rpcproxy/rpcproxy/internal/health"
	"github.com/rpcproxy/rpcproxy/internal/membership"
	"github.com/rpcproxy/rpcproxy/internal/router"
	"github.com/rpcproxy/rpcproxy/internal/testlog"
)

// gossipTestConfig is a config for in-process gossip on loopback with the
// fast profile and quick checks.
func gossipTestConfig(join []string, keys []string) *config.Config {
	cfg := config.Default()
	cfg.Gossip.Bind = "127.0.0.1:0"
	cfg.Gossip.Join = join
	cfg.Gossip.Encrypt = keys
	cfg.Gossip.Profile = config.ProfileFast
	// Quick checks, with a timeout a loaded machine (the race detector,
	// other tests) does not exceed: a probe that times out twice would show
	// a draining backend as down.
	cfg.Health.Interval = 100 * time.Millisecond
	cfg.Health.Timeout = 100 * time.Millisecond
	cfg.Health.Fall = 3
	// Long enough for every proxy to see the drain before the agent leaves.
	cfg.Agent.DrainTimeout = time.Second
	return cfg
}

func newRouting(cfg *config.Config) (*router.Table, *health.Checker) {
	table := router.NewTable(router.RingConfig{})
	return table, health.New(health.Config{Interval: cfg.Health.Interval, Timeout: cfg.Health.Timeout}, table)
}

func nullLogger() hclog.Logger { return hclog.NewNullLogger() }

// testProxy is the routing half of a proxy: its checker and ring, fed by gossip.
type testProxy struct {
	table   *router.Table
	checker *health.Checker
	node    *membership.Node
}

func startTestProxy(t *testing.T, join []string, keys []string) *testProxy {
	t.Helper()
	cfg := gossipTestConfig(join, keys)
	p := &testProxy{}
	p.table, p.checker = newRouting(cfg)
	node, err := joinAsProxy(context.Background(), cfg, p.checker, nullLogger())
	if err != nil {
		t.Fatal(err)
	}
	p.node = node
	t.Cleanup(func() { node.Shutdown(); p.checker.Close() })
	return p
}

// startTestAgent runs `rpcproxy agent` in-process beside a fake CLI; cancel
// is its SIGTERM.
func startTestAgent(t *testing.T, join []string, keys []string) (cli *fakecli.Server, cancel context.CancelFunc, done chan error) {
	t.Helper()
	cli, err := fakecli.Listen("127.0.0.1:0", fakecli.Config{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := gossipTestConfig(join, keys)
	cfg.Agent.CLI = cli.Addr()
	ctx, cancel := context.WithCancel(context.Background())
	done = make(chan error, 1)
	go func() {
		done <- runAgent(agentControl{stopping: ctx, now: context.Background()}, cfg, hclog.NewNullLogger())
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("agent did not stop")
		}
		cli.Close()
	})
	return cli, cancel, done
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func ringNames(r *router.Ring) string {
	s := ""
	for _, b := range r.Backends() {
		s += b.Name + " "
	}
	return s
}

// Agents join, and every proxy routes every session the same way; an agent
// that drains and leaves goes from draining to gone on every proxy.
func TestGossipProxiesAgreeAndAgentLeaves(t *testing.T) {
	p1 := startTestProxy(t, nil, nil)
	p2 := startTestProxy(t, []string{p1.node.Addr()}, nil)
	var clis []*fakecli.Server
	var cancels []context.CancelFunc
	for i := 0; i < 3; i++ {
		cli, cancel, _ := startTestAgent(t, []string{p1.node.Addr()}, nil)
		clis = append(clis, cli)
		cancels = append(cancels, cancel)
	}
	for _, p := range []*testProxy{p1, p2} {
		waitFor(t, "3 backends routable on every proxy", func() bool { return p.table.Ring().Len() == 3 })
	}
	r1, r2 := p1.table.Ring(), p2.table.Ring()
	for i := 0; i < 5000; i++ {
		key := []byte(fmt.Sprintf("user-%d", i))
		if a, b := r1.Lookup(key).Name, r2.Lookup(key).Name; a != b {
			t.Fatalf("%s: proxy 1 routes to %s, proxy 2 to %s", key, a, b)
		}
	}

	// SIGTERM path: draining reaches every proxy (off the ring, still
	// usable), then the agent leaves and the backend is gone.
	leaving := clis[0].Addr()
	cancels[0]()
	for _, p := range []*testProxy{p1, p2} {
		waitFor(t, "draining seen", func() bool {
			st, ok := p.checker.State(leaving)
			return ok && st == health.StateDraining
		})
		if p.table.Ring().Len() != 2 {
			t.Fatalf("draining backend still on the ring: %s", ringNames(p.table.Ring()))
		}
	}
	for _, p := range []*testProxy{p1, p2} {
		waitFor(t, "left backend removed", func() bool {
			_, ok := p.checker.State(leaving)
			return !ok
		})
	}
}

// An agent that dies without leaving is removed by failure detection; an
// agent reporting its CLI unhealthy takes it off every ring.
func TestGossipAgentDiesAndUnhealthyCLI(t *testing.T) {
	p := startTestProxy(t, nil, nil)
	cli, err := fakecli.Listen("127.0.0.1:0", fakecli.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	mc := membership.DefaultConfig()
	mc.NodeName = "crashing-agent"
	mc.BindAddr = "127.0.0.1:0"
	mc.Join = []string{p.node.Addr()}
	mc.Profile = membership.ProfileFast
	mc.Meta = membership.Meta{Role: membership.RoleBackend, Addr: cli.Addr(), Healthy: true}
	node, err := membership.Join(context.Background(), mc)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "backend routable", func() bool { return p.table.Ring().Len() == 1 })
	// The agent says its CLI is unhealthy: off the ring though the proxy's own probe passes.
	m := node.Meta()
	m.Healthy = false
	if err := node.UpdateMeta(m); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "unhealthy backend off the ring", func() bool { return p.table.Ring().Len() == 0 })
	m.Healthy = true
	node.UpdateMeta(m)
	waitFor(t, "healthy again", func() bool { return p.table.Ring().Len() == 1 })
	// Crash: no leave message.
	start := time.Now()
	node.Shutdown()
	waitFor(t, "dead agent removed", func() bool {
		_, ok := p.checker.State(cli.Addr())
		return !ok
	})
	t.Logf("dead agent removed after %v (fast profile)", time.Since(start))
}

// An agent without the cluster's key cannot join.
func TestGossipEncryptionMismatchRefused(t *testing.T) {
	key := func(b byte) string {
		k := make([]byte, 32)
		for i := range k {
			k[i] = b
		}
		return base64.StdEncoding.EncodeToString(k)
	}
	p := startTestProxy(t, nil, []string{key(1)})
	cli, err := fakecli.Listen("127.0.0.1:0", fakecli.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	cfg := gossipTestConfig([]string{p.node.Addr()}, []string{key(2)})
	cfg.Agent.CLI = cli.Addr()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := runAgent(agentControl{stopping: ctx, now: context.Background()}, cfg, hclog.NewNullLogger()); err == nil {
		t.Fatal("an agent with the wrong key joined")
	}
	if p.table.Ring().Len() != 0 {
		t.Fatal("the wrong-key agent's backend became routable")
	}
	// With the right key it joins.
	startTestAgentWithKeys := func() {
		_, _, _ = startTestAgent(t, []string{p.node.Addr()}, []string{key(1)})
	}
	startTestAgentWithKeys()
	waitFor(t, "right-key agent routable", func() bool { return p.table.Ring().Len() == 1 })
}

// A drain announced by an agent is logged by=agent, not as the operator's.
func TestGossipDrainLoggedByAgent(t *testing.T) {
	var out testlog.Buffer
	table := router.NewTable(router.RingConfig{})
	checker := health.New(health.Config{Interval: time.Hour, Logger: hclog.New(&hclog.LoggerOptions{Output: &out})}, table)
	t.Cleanup(checker.Close)
	pool := &gossipPool{checker: checker, log: nullLogger(), added: map[string]bool{}}
	b := membership.Backend{Name: "agent-a", Addr: "127.0.0.1:1", Weight: 1, Healthy: true}
	pool.BackendsChanged([]membership.Backend{b})
	b.Draining = true
	pool.BackendsChanged([]membership.Backend{b})
	if want := "backend=127.0.0.1:1 from=up to=draining by=agent"; !strings.Contains(out.String(), want) {
		t.Fatalf("log lacks %q:\n%s", want, out.String())
	}
}
