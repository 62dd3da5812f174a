package failover

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/rpcproxy/rpcproxy/internal/fakecli"
	"github.com/rpcproxy/rpcproxy/internal/health"
	"github.com/rpcproxy/rpcproxy/internal/proxy"
	"github.com/rpcproxy/rpcproxy/internal/router"
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

// inProcessPool is the proxy, its health checker and fake CLI servers in
// this process (as internal/proxy's tests run them), so a backend can be
// added while sessions live; all fakes share one session store.
type inProcessPool struct {
	table   *router.Table
	checker *health.Checker
	srv     *proxy.Server
	store   *fakecli.Store
	fakes   []*fakecli.Server
	addr    string
	served  chan struct{}
	once    sync.Once
}

func startInProcessPool(tb testing.TB, backends int) *inProcessPool {
	tb.Helper()
	p := &inProcessPool{table: router.NewTable(router.RingConfig{}), store: fakecli.NewStore(), served: make(chan struct{})}
	p.checker = health.New(health.Config{
		Interval: 50 * time.Millisecond,
		Timeout:  50 * time.Millisecond,
		OnInfo:   func(info json.RawMessage) { p.srv.SetInfo(info) },
	}, p.table)
	p.srv = proxy.New(proxy.Config{HandshakeTimeout: 2 * time.Second}, p.table, p.checker)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p.addr = ln.Addr().String()
	go func() {
		defer close(p.served)
		_ = p.srv.Serve(ln)
	}()
	tb.Cleanup(p.Close)
	for i := range backends {
		p.add(tb, fmt.Sprintf("fake-%d", i))
	}
	return p
}

// add starts one more fake and adds it to the pool.
func (p *inProcessPool) add(tb testing.TB, name string) {
	tb.Helper()
	f, err := fakecli.Listen("127.0.0.1:0", fakecli.Config{Name: name, Store: p.store})
	if err != nil {
		tb.Fatal(err)
	}
	p.fakes = append(p.fakes, f)
	if err := p.checker.Add(&router.Backend{Name: f.Addr(), Addr: f.Addr()}); err != nil {
		tb.Fatal(err)
	}
}

// Close stops the proxy, the checker and the fakes. Idempotent.
func (p *inProcessPool) Close() {
	p.once.Do(func() {
		_ = p.srv.Close()
		<-p.served
		p.checker.Close()
		for _, f := range p.fakes {
			_ = f.Close()
		}
	})
}

// proxyShare creates n sessions with a turn each through the proxy over 3
// fakes, adds a 4th, plays one more turn per session, and counts the
// sessions whose answer came from another backend than before.
func proxyShare(tb testing.TB, n int) shareResult {
	tb.Helper()
	p := startInProcessPool(tb, 3)
	defer p.Close()
	cl := dialClient(tb, p.addr)
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
	p.add(tb, "fake-3")
	if got := p.table.Ring().Len(); got != 4 {
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
