package e2e

import (
	"context"
	"fmt"
	"slices"
	"testing"

	copilot "github.com/github/copilot-sdk/go"

	"github.com/rpcproxy/rpcproxy/e2e/harness"
)

// fastGossip is the configuration of every rpcproxy process (proxies and
// agents) in the gossip test: quick convergence, quick drain on SIGTERM.
const fastGossip = `
gossip { profile = "fast" }
agent { drain_timeout = "1s" }
`

// TestGoSDKGossipTwoProxies: three real CLI servers (a store each), an
// `rpcproxy agent` beside each, and two `rpcproxy serve` with no --backend
// that learn the servers by gossip. Sessions created through proxy 1 are
// listed alike through either proxy; after the first client stops, a second
// client resumes every one of them through proxy 2, which places each on
// the server that holds it (the same one proxy 1 chose), and the next turn
// carries the history.
func TestGoSDKGossipTwoProxies(t *testing.T) {
	if harness.Direct() {
		t.Skip("gossip needs the proxy (E2E_DIRECT is set)")
	}
	c := harness.StartT(t, harness.Options{Gossip: true, Proxies: 2, Config: fastGossip})
	p1, p2 := c.Proxies[0], c.Proxies[1]
	for _, p := range c.Proxies {
		if len(p.Backends) != 0 {
			t.Fatalf("%s has static backends %v; the test wants gossip only", p.Proc.Name, p.Backends)
		}
		t.Logf("%s (%s, gossip %s) joined: %v", p.Proc.Name, p.Addr, p.GossipAddr, p.JoinedBackends())
	}

	first := copilot.NewClient(&copilot.ClientOptions{Connection: copilot.URIConnection{URL: p1.Addr}})
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := first.Start(ctx); err != nil {
		t.Fatalf("client start against %s: %v", p1.Addr, err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			stopClient(first)
		}
	})
	const n = 6
	sessions := createSessions(t, c, first, "go-gossip-%d", n)
	expectTurns(t, sessions, 1)
	ids := sessionIDs(sessions)
	home := map[string]*harness.CLIServer{}
	perBackend := map[string][]string{}
	for _, id := range ids {
		b := checkPlacementBy(t, c, p1, id)
		home[id] = b
		perBackend[b.Name] = append(perBackend[b.Name], id)
	}
	// Not asserted: the ring puts all six on one server about once in 250
	// runs, and the checks below hold either way.
	t.Logf("placement through %s: %v", p1.Proc.Name, perBackend)

	// Both proxies list the same sessions: every backend's, merged.
	listed1 := listIDs(t, newClient(t, p1.Addr))
	listed2 := listIDs(t, newClient(t, p2.Addr))
	slices.Sort(listed1)
	slices.Sort(listed2)
	if !slices.Equal(listed1, listed2) {
		t.Errorf("session.list through %s = %v, through %s = %v", p1.Proc.Name, listed1, p2.Proc.Name, listed2)
	}
	if !containsAll(listed2, ids...) {
		t.Errorf("session.list through %s = %v, lacks some of %v", p2.Proc.Name, listed2, ids)
	}

	stopped = true
	if err := stopClient(first); err != nil {
		t.Fatalf("first client stop: %v", err)
	}

	// A second client resumes every session through proxy 2. Each store
	// holds only its own sessions, so a resume sent to another server would
	// fail: proxy 2 must pick the one proxy 1 did.
	second := newClient(t, p2.Addr)
	resumed := make([]*copilot.Session, n)
	for _, err := range parallel(n, func(i int) error {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		s, err := second.ResumeSession(ctx, ids[i], &copilot.ResumeSessionConfig{
			Provider:            provider(c),
			OnPermissionRequest: copilot.PermissionHandler.ApproveAll,
		})
		if err != nil {
			return fmt.Errorf("session.resume %s through %s: %w", ids[i], p2.Proc.Name, err)
		}
		resumed[i] = s
		return nil
	}) {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	for _, id := range ids {
		placed1, placed2 := p1.PlacedBackends(id), p2.PlacedBackends(id)
		if !slices.Equal(placed1, placed2) {
			t.Errorf("session %s: %s placed it on %v, %s on %v", id, p1.Proc.Name, placed1, p2.Proc.Name, placed2)
		}
		if b := checkPlacementBy(t, c, p2, id); b != home[id] {
			t.Errorf("session %s moved from %s to %s when resumed through %s", id, home[id].Name, b.Name, p2.Proc.Name)
		}
	}
	expectTurns(t, resumed, 2)
	checkHistories(t, resumed, 2)
	for _, id := range ids {
		if b, err := c.BackendOf(id); err != nil {
			t.Error(err)
		} else if b != home[id] {
			t.Errorf("session %s is now in %s's store, was in %s's", id, b.Name, home[id].Name)
		}
	}
}
