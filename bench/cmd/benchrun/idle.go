package main

import (
	"context"
	"fmt"
	"time"

	"github.com/rpcproxy/rpcproxy/bench/loadgen"
	"github.com/rpcproxy/rpcproxy/bench/procstat"
	"github.com/rpcproxy/rpcproxy/bench/report"
	"github.com/rpcproxy/rpcproxy/internal/router"
)

// runIdle measures the proxy's resident memory per idle client connection:
// n SDK connections that did connect and one session.create, held open.
func (b *bench) runIdle(ctx context.Context, n int) (*report.Idle, error) {
	h, err := b.hold(ctx, "idle", n, 1, false)
	if err != nil {
		return nil, err
	}
	idle := &report.Idle{
		Conns:        n,
		Backend:      b.stubDescription(),
		SetupSec:     h.setup.Seconds(),
		RSSBefore:    h.before.RSS,
		RSSAfter:     h.after.RSS,
		PeakAfter:    h.after.Peak,
		PerConnBytes: float64(h.after.RSS-h.before.RSS) / float64(n),
		Alive:        h.alive,
	}
	return idle, nil
}

// runConnectOnly measures n SDK connections that did connect only: a
// client holds no upstream before its first session, so more of them fit
// the open files limit than of runIdle's.
func (b *bench) runConnectOnly(ctx context.Context, n int) (*report.ConnectOnly, error) {
	h, err := b.hold(ctx, "connect-only", n, 0, false)
	if err != nil {
		return nil, err
	}
	return &report.ConnectOnly{
		Conns:        n,
		RSSBefore:    h.before.RSS,
		RSSAfter:     h.after.RSS,
		PerConnBytes: float64(h.after.RSS-h.before.RSS) / float64(n),
		Alive:        h.alive,
	}, nil
}

// runHeld measures holding many sessions: conns connections with
// sessionsPerConn sessions each, idle after their session.create.
func (b *bench) runHeld(ctx context.Context, conns, sessionsPerConn int) (*report.Held, error) {
	h, err := b.hold(ctx, "held", conns, sessionsPerConn, false)
	if err != nil {
		return nil, err
	}
	return &report.Held{
		Conns:           conns,
		Sessions:        h.sessions,
		Backend:         b.stubDescription(),
		SetupSec:        h.setup.Seconds(),
		RSSBefore:       h.before.RSS,
		RSSAfter:        h.after.RSS,
		PeakAfter:       h.after.Peak,
		PerSessionBytes: float64(h.after.RSS-h.before.RSS) / float64(max(1, h.sessions)),
		Alive:           h.alive,
	}, nil
}

func (b *bench) stubDescription() string {
	return fmt.Sprintf("%d stub backends (answer connect/ping/session.create, push nothing)", b.backends)
}

// held is what hold measured.
type held struct {
	before, after procstat.Memory
	setup         time.Duration
	alive         int
	sessions      int
	backendConns  int // connections the backends hold with the clients open
	proxyFDs      int // the proxy's socket descriptors then
}

// hold starts stub backends and rpcproxy, opens n idle connections with
// sessionsPerConn sessions each (0: connect only), and reads the proxy's
// memory before and after them. With spread, session i of every
// connection is named so that the proxy's ring places it on backend i.
func (b *bench) hold(ctx context.Context, tag string, n, sessionsPerConn int, spread bool) (*held, error) {
	connectOnly := sessionsPerConn == 0
	sessionsPerConn = max(sessionsPerConn, 1)
	p, err := b.startStubPool(ctx, tag)
	if err != nil {
		return nil, err
	}
	defer p.stop()
	t, err := b.openMode(ctx, report.ModeRPCProxy, tag, p)
	if err != nil {
		return nil, err
	}
	defer t.close()
	pid := t.proxy.pid()
	var ids func(conn, i int) string
	if spread {
		if ids, err = spreadIDs(p.addrs, tag); err != nil {
			return nil, err
		}
	}

	// A few connections first, so what the proxy allocates once (pools,
	// health checks, the first upstreams) is in the baseline.
	warm, err := loadgen.OpenIdle(ctx, loadgen.Config{Targets: t.addrs, Conns: 8, SessionsPerConn: sessionsPerConn, ConnectOnly: connectOnly, RunID: tag + "-warm", SessionID: warmIDs(ids)})
	if err != nil {
		return nil, err
	}
	defer warm.Close()
	h := &held{}
	if h.before, err = settledMemory(ctx, pid); err != nil {
		return nil, err
	}
	start := time.Now()
	set, err := loadgen.OpenIdle(ctx, loadgen.Config{Targets: t.addrs, Conns: n, SessionsPerConn: sessionsPerConn, ConnectOnly: connectOnly, RunID: tag, SetupParallel: 32, SessionID: ids})
	if err != nil {
		return nil, fmt.Errorf("opening %d idle connections with %d sessions each: %w", n, sessionsPerConn, err)
	}
	defer set.Close()
	h.setup = time.Since(start)
	if h.after, err = settledMemory(ctx, pid); err != nil {
		return nil, err
	}
	h.alive, h.sessions = set.Alive(), set.Sessions()
	h.backendConns = p.conns()
	h.proxyFDs, _ = procstat.Sockets(pid)
	// The proxy stops while the connections are still open (a profiling
	// build writes its heap profile then).
	t.close()
	return h, nil
}

// settledMemory waits until the process's RSS changes by less than 1% over
// a second (at most 15 s) and returns the last reading.
func settledMemory(ctx context.Context, pid int) (procstat.Memory, error) {
	last, err := procstat.ReadMemory(pid)
	if err != nil {
		return last, err
	}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-time.After(time.Second):
		}
		m, err := procstat.ReadMemory(pid)
		if err != nil {
			return last, err
		}
		d := m.RSS - last.RSS
		last = m
		if d < 0 {
			d = -d
		}
		if float64(d) < 0.01*float64(m.RSS) {
			break
		}
	}
	return last, nil
}

// runSpread holds want SDK connections (fewer when they do not fit the open
// files limit), each with one session on every backend: the SDK's shape
// with one session per model or per workspace. Each such client costs the
// proxy 1+B descriptors when it holds one upstream per client per backend,
// 1 when upstreams are shared (the proxy's default, or
// --connections-per-backend N above 0).
func (b *bench) runSpread(ctx context.Context, want int, nofile uint64) (*report.Spread, error) {
	fds := 1 + b.backends
	reserve := 512
	if b.connsPerBackend > 0 {
		fds = 1
		reserve += b.connsPerBackend * b.backends
	}
	n := want
	if nofile > 0 {
		n = max(0, min(want, (int(min(nofile, 1<<30))-reserve)/fds))
	}
	b.logf("spread: %d of %d connections × a session on each of %d backends (%d descriptors per client in the proxy)", n, want, b.backends, fds)
	h, err := b.hold(ctx, "spread", n, b.backends, true)
	if err != nil {
		return nil, err
	}
	sp := &report.Spread{
		Want: want, Conns: n, Backends: b.backends, FDsPerClient: fds, NoFile: nofile,
		Alive: h.alive, Sessions: h.sessions, BackendConns: h.backendConns, ProxyFDs: h.proxyFDs,
		SetupSec: h.setup.Seconds(), RSSBefore: h.before.RSS, RSSAfter: h.after.RSS,
		PerConnBytes:    float64(h.after.RSS-h.before.RSS) / float64(max(1, n)),
		PerSessionBytes: float64(h.after.RSS-h.before.RSS) / float64(max(1, h.sessions)),
		Backend:         b.stubDescription(),
	}
	b.logf("  spread: %d open, %d sessions, backends hold %d connections, proxy %d sockets, %.1f KiB per connection",
		sp.Alive, sp.Sessions, sp.BackendConns, sp.ProxyFDs, sp.PerConnBytes/1024)
	return sp, nil
}

// spreadIDs names session i of every connection so that rpcproxy's ring
// (static backends named by their address, default ring settings, as
// `rpcproxy serve --backend ADDR` builds it) places it on backend i.
func spreadIDs(addrs []string, runID string) (func(conn, i int) string, error) {
	bs := make([]*router.Backend, len(addrs))
	for i, a := range addrs {
		bs[i] = &router.Backend{Name: a, Addr: a}
	}
	ring, err := router.NewRing(bs, router.RingConfig{})
	if err != nil {
		return nil, err
	}
	return func(conn, i int) string {
		want := addrs[i%len(addrs)]
		for j := 0; ; j++ {
			id := fmt.Sprintf("%s-c%d-b%d-%d", runID, conn, i, j)
			if j >= 1000 || ring.Lookup([]byte(id)).Name == want {
				return id
			}
		}
	}, nil
}

// warmIDs gives the warm-up connections ids of their own.
func warmIDs(ids func(conn, i int) string) func(conn, i int) string {
	if ids == nil {
		return nil
	}
	return func(conn, i int) string { return ids(1<<30+conn, i) }
}
