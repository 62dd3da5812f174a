package main

import (
	"context"
	"fmt"
	"time"

	"github.com/rpcproxy/rpcproxy/bench/loadgen"
	"github.com/rpcproxy/rpcproxy/bench/procstat"
	"github.com/rpcproxy/rpcproxy/bench/report"
)

// runIdle measures the proxy's resident memory per idle client connection:
// n SDK connections that did connect and one session.create, held open.
func (b *bench) runIdle(ctx context.Context, n int) (*report.Idle, error) {
	h, err := b.hold(ctx, "idle", n, 1)
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
	h, err := b.hold(ctx, "connect-only", n, 0)
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
	h, err := b.hold(ctx, "held", conns, sessionsPerConn)
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
}

// hold starts stub backends and rpcproxy, opens n idle connections with
// sessionsPerConn sessions each (0: connect only), and reads the proxy's
// memory before and after them.
func (b *bench) hold(ctx context.Context, tag string, n, sessionsPerConn int) (*held, error) {
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

	// A few connections first, so what the proxy allocates once (pools,
	// health checks, the first upstreams) is in the baseline.
	warm, err := loadgen.OpenIdle(ctx, loadgen.Config{Targets: t.addrs, Conns: 8, SessionsPerConn: sessionsPerConn, ConnectOnly: connectOnly, RunID: tag + "-warm"})
	if err != nil {
		return nil, err
	}
	defer warm.Close()
	h := &held{}
	if h.before, err = settledMemory(ctx, pid); err != nil {
		return nil, err
	}
	start := time.Now()
	set, err := loadgen.OpenIdle(ctx, loadgen.Config{Targets: t.addrs, Conns: n, SessionsPerConn: sessionsPerConn, ConnectOnly: connectOnly, RunID: tag, SetupParallel: 32})
	if err != nil {
		return nil, fmt.Errorf("opening %d idle connections with %d sessions each: %w", n, sessionsPerConn, err)
	}
	defer set.Close()
	h.setup = time.Since(start)
	if h.after, err = settledMemory(ctx, pid); err != nil {
		return nil, err
	}
	h.alive, h.sessions = set.Alive(), set.Sessions()
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
