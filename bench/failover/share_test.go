package failover

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/rpcproxy/rpcproxy/internal/health"
	"github.com/rpcproxy/rpcproxy/internal/router"
	"github.com/rpcproxy/rpcproxy/internal/testcluster"
)

// shareResult counts sessions that changed backend when a 4th joined 3.
type shareResult struct {
	sessions int
	moved    int // changed backend
	toNew    int // of which to the new backend; the rest moved between old ones
	lost     []string
}

// share is the moved share; 1/4 is the least any placement can move.
func (s shareResult) share() float64 { return float64(s.moved) / float64(s.sessions) }

// betweenOld is the share that moved from one old backend to another: pure
// churn (bounded load re-spreading partitions), ideally 0.
func (s shareResult) betweenOld() float64 { return float64(s.moved-s.toNew) / float64(s.sessions) }

// ringShare places keys random session IDs on router rings of 3 and of 4
// backends (the proxy's default ring settings, backends named like
// loopback addresses) and counts the owners that change.
func ringShare(keys int) (shareResult, error) {
	names := map[string]bool{}
	var backends []*router.Backend
	for len(backends) < 4 {
		name := "127.0.0.1:" + strconv.Itoa(1024+rand.IntN(65535-1024))
		if !names[name] {
			names[name] = true
			backends = append(backends, &router.Backend{Name: name, Addr: name})
		}
	}
	three, err := router.NewRing(backends[:3], router.RingConfig{})
	if err != nil {
		return shareResult{}, err
	}
	four, err := router.NewRing(backends, router.RingConfig{})
	if err != nil {
		return shareResult{}, err
	}
	r := shareResult{sessions: keys}
	for range keys {
		sid := []byte(newSessionID())
		before, after := three.Lookup(sid), four.Lookup(sid)
		if before.Name != after.Name {
			r.moved++
			if after == backends[3] {
				r.toNew++
			}
		}
	}
	return r, nil
}

// proxyShare creates n sessions with a turn each through the proxy over 3
// fakes, adds a 4th, plays one more turn per session, and counts the
// sessions whose answer came from another backend than before.
func proxyShare(tb testing.TB, n int) shareResult {
	tb.Helper()
	// The proxy, its health checker and fake CLI servers in this process,
	// so a backend can be added while sessions live; all fakes share one
	// session store.
	p := testcluster.Start(tb, testcluster.Options{Backends: 3, SharedStore: true,
		Health: health.Config{Interval: 50 * time.Millisecond, Timeout: 50 * time.Millisecond}})
	cl := dialClient(tb, p.Addr)
	holder := make(map[string]string, n)
	sids := make([]string, 0, n)
	for range n {
		sid := newSessionID()
		server, err := createSession(cl, sid)
		if err != nil {
			tb.Fatal(err)
		}
		if _, _, err := turnRetrying(cl, sid, "first turn"); err != nil {
			tb.Fatal(err)
		}
		holder[sid] = server
		sids = append(sids, sid)
	}
	p.AddBackend("fake-3")
	if got := p.Table.Ring().Len(); got != 4 {
		tb.Fatalf("ring has %d backends after adding a 4th, want 4", got)
	}
	r := shareResult{sessions: n}
	for _, sid := range sids {
		a, _, err := turnRetrying(cl, sid, "after scale-out")
		switch {
		case err != nil:
			r.lost = append(r.lost, fmt.Sprintf("%s: %v", sid, err))
			continue
		case a.turn != 2:
			r.lost = append(r.lost, fmt.Sprintf("%s: answered by %s as turn %d, want 2", sid, a.server, a.turn))
		}
		if a.server != holder[sid] {
			r.moved++
			if a.server == "fake-3" {
				r.toNew++
			}
		}
	}
	return r
}
