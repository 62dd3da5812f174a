package membership

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestInitialSetDeliveredAlone(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	p := startNode(t, testConfig("proxy", ProfileFast, proxyMeta), rec)
	got, _ := rec.wait(t, 5*time.Second, "initial empty set", func(bs []Backend) bool { return len(bs) == 0 })
	if got == nil {
		t.Fatalf("listener got a nil slice, want an empty one")
	}
	if ms := p.Members(); len(ms) != 1 || ms[0].Name != "proxy" || ms[0].Meta.Role != RoleProxy {
		t.Fatalf("Members() = %+v, want just this proxy", ms)
	}
	if !strings.HasPrefix(p.Addr(), "127.0.0.1:") || strings.HasSuffix(p.Addr(), ":0") {
		t.Fatalf("Addr() = %q, want the bound loopback port", p.Addr())
	}
}

func TestAgentJoinVisibleToProxy(t *testing.T) {
	t.Parallel()
	prec, arec := newRecorder(), newRecorder()
	p := startNode(t, testConfig("proxy", ProfileFast, proxyMeta), prec)
	start := time.Now()
	a := startNode(t, testConfig("agent-1", ProfileFast, backendMeta(1), p.Addr()), arec)

	got, at := prec.wait(t, 5*time.Second, "agent-1 at the proxy", hasBackend("agent-1"))
	t.Logf("join to visible at the proxy: %v", at.Sub(start))
	want := []Backend{{Name: "agent-1", Addr: "127.0.0.1:40001", Weight: 1, Healthy: true, ProtocolVersion: 3, Version: "test"}}
	if !slices.Equal(got, want) {
		t.Fatalf("proxy sees %+v, want %+v", got, want)
	}
	// The agent counts itself as a backend: the set is the same everywhere.
	if got, _ := arec.wait(t, 5*time.Second, "agent-1 at itself", hasBackend("agent-1")); !slices.Equal(got, want) {
		t.Fatalf("agent sees %+v, want %+v", got, want)
	}
	names := func(ms []Member) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.Name)
		}
		return out
	}
	if got := names(a.Members()); !slices.Equal(got, []string{"agent-1", "proxy"}) {
		t.Fatalf("agent Members() = %v", got)
	}
}

func TestAgentCrashRemoved(t *testing.T) {
	t.Parallel()
	prec := newRecorder()
	p := startNode(t, testConfig("proxy", ProfileFast, proxyMeta), prec)
	a := startNode(t, testConfig("agent-1", ProfileFast, backendMeta(1), p.Addr()), nil)
	prec.wait(t, 5*time.Second, "agent-1 joined", hasBackend("agent-1"))

	start := time.Now()
	if err := a.Shutdown(); err != nil { // no Leave: looks like a crash
		t.Fatal(err)
	}
	_, at := prec.wait(t, 10*time.Second, "agent-1 removed after crash", lacksBackend("agent-1"))
	t.Logf("crash to removed (fast profile, 2 nodes): %v", at.Sub(start))
	if slices.ContainsFunc(p.Members(), func(m Member) bool { return m.Name == "agent-1" }) {
		t.Fatalf("agent-1 still in proxy Members()")
	}
}

func TestAgentLeaveRemovedPromptly(t *testing.T) {
	t.Parallel()
	// The lan profile needs 5s or more to detect a crash, so removal well
	// before that can only come from the leave message.
	prec := newRecorder()
	p := startNode(t, testConfig("proxy", ProfileLAN, proxyMeta), prec)
	a := startNode(t, testConfig("agent-1", ProfileLAN, backendMeta(1), p.Addr()), nil)
	prec.wait(t, 5*time.Second, "agent-1 joined", hasBackend("agent-1"))

	start := time.Now()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	_, at := prec.wait(t, 5*time.Second, "agent-1 removed after leave", lacksBackend("agent-1"))
	took := at.Sub(start)
	t.Logf("leave to removed (lan profile): %v", took)
	if took > 2*time.Second {
		t.Fatalf("leave took %v to be seen, want well under the lan failure detection time", took)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestMetaChangePropagates(t *testing.T) {
	t.Parallel()
	prec := newRecorder()
	p := startNode(t, testConfig("proxy", ProfileFast, proxyMeta), prec)
	a := startNode(t, testConfig("agent-1", ProfileFast, backendMeta(1), p.Addr()), nil)
	prec.wait(t, 5*time.Second, "agent-1 joined", func(bs []Backend) bool {
		b := findBackend(bs, "agent-1")
		return b != nil && !b.Draining && b.Healthy
	})

	m := backendMeta(1)
	m.Draining, m.Healthy, m.Weight = true, false, 7
	start := time.Now()
	if err := a.UpdateMeta(m); err != nil {
		t.Fatal(err)
	}
	_, at := prec.wait(t, 5*time.Second, "agent-1 draining", func(bs []Backend) bool {
		b := findBackend(bs, "agent-1")
		return b != nil && b.Draining && !b.Healthy && b.Weight == 7
	})
	t.Logf("metadata change to visible: %v", at.Sub(start))
	if got := a.Meta(); got != m {
		t.Fatalf("agent Meta() = %+v, want %+v", got, m)
	}
	if err := a.UpdateMeta(Meta{Role: RoleBackend}); !errors.Is(err, ErrInvalidMeta) {
		t.Fatalf("UpdateMeta(backend without addr) = %v, want ErrInvalidMeta", err)
	}
}

func TestTwoProxiesIdenticalSnapshots(t *testing.T) {
	t.Parallel()
	r1, r2 := newRecorder(), newRecorder()
	p1 := startNode(t, testConfig("proxy-1", ProfileFast, proxyMeta), r1)
	p2 := startNode(t, testConfig("proxy-2", ProfileFast, proxyMeta, p1.Addr()), r2)
	// Agents join through different seeds, so the proxies learn of some by
	// gossip only.
	a1 := startNode(t, testConfig("agent-1", ProfileFast, backendMeta(1), p1.Addr()), nil)
	a2 := startNode(t, testConfig("agent-2", ProfileFast, backendMeta(2), p2.Addr()), nil)
	a3 := startNode(t, testConfig("agent-3", ProfileFast, backendMeta(3), a1.Addr()), nil)

	converged := func(what string, ok func([]Backend) bool) []Backend {
		t.Helper()
		s1, _ := r1.wait(t, 10*time.Second, what+" at proxy-1", ok)
		s2, _ := r2.wait(t, 10*time.Second, what+" at proxy-2", ok)
		if !slices.Equal(s1, s2) {
			t.Fatalf("%s: proxies differ:\n%+v\n%+v", what, s1, s2)
		}
		if b1, b2 := p1.Backends(), p2.Backends(); !slices.Equal(b1, b2) {
			t.Fatalf("%s: Backends() differ:\n%+v\n%+v", what, b1, b2)
		}
		return s1
	}
	all := converged("three agents", func(bs []Backend) bool { return len(bs) == 3 })
	if got := backendNames(all); !slices.Equal(got, []string{"agent-1", "agent-2", "agent-3"}) {
		t.Fatalf("backends %v, want sorted agent-1..3", got)
	}

	m := backendMeta(2)
	m.Draining = true
	if err := a2.UpdateMeta(m); err != nil {
		t.Fatal(err)
	}
	converged("agent-2 draining", func(bs []Backend) bool {
		b := findBackend(bs, "agent-2")
		return len(bs) == 3 && b != nil && b.Draining
	})

	if err := a3.Close(); err != nil {
		t.Fatal(err)
	}
	converged("agent-3 gone", func(bs []Backend) bool { return len(bs) == 2 && findBackend(bs, "agent-3") == nil })
}
