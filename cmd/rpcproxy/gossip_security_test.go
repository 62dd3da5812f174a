package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/rpcproxy/rpcproxy/internal/fakecli"
	"github.com/rpcproxy/rpcproxy/internal/health"
	"github.com/rpcproxy/rpcproxy/internal/membership"
	"github.com/rpcproxy/rpcproxy/internal/router"
	"github.com/rpcproxy/rpcproxy/internal/testlog"
)

// startRogueMember joins the proxy's cluster as a bare membership node (no
// agent, no checks) bound to bind, advertising meta.
func startRogueMember(t *testing.T, name, bind, seed string, meta membership.Meta) *membership.Node {
	t.Helper()
	mc := membership.DefaultConfig()
	mc.NodeName = name
	mc.BindAddr = bind
	mc.Join = []string{seed}
	mc.Profile = membership.ProfileFast
	mc.Meta = meta
	node, err := membership.Join(context.Background(), mc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { node.Shutdown() })
	return node
}

// waitMember waits until the proxy's node knows member name.
func (p *testProxy) waitMember(t *testing.T, name string) {
	t.Helper()
	waitFor(t, "proxy knows "+name, func() bool {
		for _, m := range p.node.Members() {
			if m.Name == name {
				return true
			}
		}
		return false
	})
}

func ringHas(r *router.Ring, addr string) bool {
	for _, b := range r.Backends() {
		if b.Name == addr {
			return true
		}
	}
	return false
}

// In an unkeyed cluster, a member that gossips from one address (127.0.0.2)
// and advertises a CLI server on another (127.0.0.1) never reaches the
// proxy's backend set: no health check (so no backend token), no ring slot,
// no session.
func TestGossipOffHostBackendGetsNothing(t *testing.T) {
	p := startTestProxy(t, nil, nil)
	cli, err := fakecli.Listen("127.0.0.1:0", fakecli.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	startRogueMember(t, "rogue", "127.0.0.2:0", p.node.Addr(),
		membership.Meta{Role: membership.RoleBackend, Addr: cli.Addr(), Weight: membership.MaxWeight, Healthy: true})
	p.waitMember(t, "rogue")

	// A genuine agent joins after the rogue member: once its CLI is on the
	// ring, the proxy has applied a backend set that saw the rogue member.
	good, _, _ := startTestAgent(t, []string{p.node.Addr()}, nil)
	waitFor(t, "genuine agent routable", func() bool { return ringHas(p.table.Ring(), good.Addr()) })

	if st, ok := p.checker.State(cli.Addr()); ok {
		t.Fatalf("rogue member's CLI is a backend (state %v)", st)
	}
	if ring := p.table.Ring(); ring.Len() != 1 || ringHas(ring, cli.Addr()) {
		t.Fatalf("ring = %s, want only the genuine agent", ringNames(ring))
	}
	if n := cli.Stats().Accepted; n != 0 {
		t.Fatalf("the proxy connected to the rogue member's CLI %d times", n)
	}
}

// A second member claiming an existing member's CLI address as unhealthy or
// draining (names sorting after the owner, so their flags would be applied
// last) does not change that backend's state on the proxy.
func TestGossipSecondClaimCannotChangeBackend(t *testing.T) {
	p := startTestProxy(t, nil, nil)
	victim, _, _ := startTestAgent(t, []string{p.node.Addr()}, nil)
	waitFor(t, "victim routable", func() bool { return ringHas(p.table.Ring(), victim.Addr()) })

	for name, meta := range map[string]membership.Meta{
		"zz-unhealthy": {Role: membership.RoleBackend, Addr: victim.Addr(), Healthy: false},
		"zz-draining":  {Role: membership.RoleBackend, Addr: victim.Addr(), Healthy: true, Draining: true},
	} {
		startRogueMember(t, name, "127.0.0.1:0", p.node.Addr(), meta)
		p.waitMember(t, name)
	}
	other, _, _ := startTestAgent(t, []string{p.node.Addr()}, nil)
	waitFor(t, "later agent routable", func() bool { return ringHas(p.table.Ring(), other.Addr()) })

	if st, ok := p.checker.State(victim.Addr()); !ok || st != health.StateUp {
		t.Fatalf("victim state = %v (known %v), want up", st, ok)
	}
	if !ringHas(p.table.Ring(), victim.Addr()) {
		t.Fatalf("victim off the ring: %s", ringNames(p.table.Ring()))
	}
}

// Gossip on a non-loopback address without keys refuses to start, for the
// proxy and the agent, at config validation (the CLI) and in gossipConfig
// (in-process callers). 192.0.2.1 (TEST-NET-1) is on no interface: were the
// check missing, the bind would fail with another error, so nothing
// non-loopback is ever bound here.
func TestGossipNonLoopbackWithoutKeysRefused(t *testing.T) {
	cli, err := fakecli.Listen("127.0.0.1:0", fakecli.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	for _, args := range [][]string{
		{"serve", "--listen", "127.0.0.1:0", "--gossip-bind", "192.0.2.1:0"},
		{"agent", "--cli", cli.Addr(), "--bind", "192.0.2.1:0"},
	} {
		t.Setenv("RPCPROXY_GOSSIP_KEYS", "")
		t.Setenv("RPCPROXY_GOSSIP_INSECURE", "")
		var stderr bytes.Buffer
		if code := run(args, &stderr, &stderr); code == 0 || !strings.Contains(stderr.String(), "gossip { insecure = true }") {
			t.Fatalf("%v: exit %d, output %q; want a refusal naming gossip.insecure", args[:1], code, stderr.String())
		}
	}

	cfg := gossipTestConfig(nil, nil)
	cfg.Gossip.Bind = "192.0.2.1:0"
	table, checker := newRouting(cfg)
	defer checker.Close()
	_ = table
	if node, err := joinAsProxy(context.Background(), cfg, checker, nullLogger()); !errors.Is(err, membership.ErrUnauthenticated) {
		if node != nil {
			node.Shutdown()
		}
		t.Fatalf("joinAsProxy = %v, want ErrUnauthenticated", err)
	}
	cfg.Agent.CLI = cli.Addr()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := runAgent(agentControl{stopping: ctx, now: context.Background()}, cfg, nullLogger()); !errors.Is(err, membership.ErrUnauthenticated) {
		t.Fatalf("runAgent = %v, want ErrUnauthenticated", err)
	}
}

// With insecure = true an unkeyed proxy starts and warns that gossip is
// unauthenticated; an agent does too, with RPCPROXY_GOSSIP_INSECURE=1 (the
// real command, as a child process).
func TestGossipInsecureStartsAndWarns(t *testing.T) {
	var logs testlog.Buffer
	cfg := gossipTestConfig(nil, nil)
	cfg.Gossip.Insecure = true
	_, checker := newRouting(cfg)
	defer checker.Close()
	node, err := joinAsProxy(context.Background(), cfg, checker, hclog.New(&hclog.LoggerOptions{Output: &logs}))
	if err != nil {
		t.Fatal(err)
	}
	defer node.Shutdown()
	if !strings.Contains(logs.String(), "INSECURE: gossip is not encrypted or authenticated") {
		t.Fatalf("no insecure warning in:\n%s", logs.String())
	}

	cli, err := fakecli.Listen("127.0.0.1:0", fakecli.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	t.Setenv("RPCPROXY_GOSSIP_KEYS", "")
	t.Setenv("RPCPROXY_GOSSIP_INSECURE", "1")
	agent := startProcess(t, "agent", "--cli", cli.Addr(), "--bind", "127.0.0.1:0", "--drain-timeout", "0s")
	agent.waitLog(t, "INSECURE: gossip is not encrypted or authenticated", 1)
	agent.waitLog(t, "agent joined gossip cluster", 1)
}

func TestAdvertisedCLI(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.0.5:4321":          "10.0.0.5:4321",
		"[::ffff:10.0.0.5]:4321": "10.0.0.5:4321",
		"[::1]:4321":             "[::1]:4321",
		"localhost:4321":         "127.0.0.1:4321", // IPv4 first
	} {
		got, err := advertisedCLI(context.Background(), in)
		if err != nil || got != want {
			t.Errorf("advertisedCLI(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := advertisedCLI(context.Background(), "no-port"); err == nil {
		t.Error("advertisedCLI accepted an address without a port")
	}
}

// An agent advertising its CLI by host name (as in deploy/docker-compose.yml)
// advertises the resolved IP, which proxies admit.
func TestGossipAgentAdvertisingHostNameIsAdmitted(t *testing.T) {
	p := startTestProxy(t, nil, nil)
	cli, err := fakecli.Listen("127.0.0.1:0", fakecli.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	_, port, _ := strings.Cut(cli.Addr(), ":")
	cfg := gossipTestConfig([]string{p.node.Addr()}, nil)
	cfg.Agent.CLI = cli.Addr()
	cfg.Agent.Advertise = "localhost:" + port
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runAgent(agentControl{stopping: ctx, now: context.Background()}, cfg, nullLogger()) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, "agent advertising localhost routable", func() bool { return ringHas(p.table.Ring(), cli.Addr()) })
}
