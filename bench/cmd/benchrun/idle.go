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
	p, err := b.startStubPool(ctx, "idle")
	if err != nil {
		return nil, err
	}
	defer p.stop()
	t, err := b.openMode(ctx, report.ModeRPCProxy, "idle", p)
	if err != nil {
		return nil, err
	}
	defer t.close()
	pid := t.proxy.pid()

	// A few connections first, so what the proxy allocates once (pools,
	// health checks, the first upstream) is in the baseline.
	warm, err := loadgen.OpenIdle(ctx, loadgen.Config{Targets: t.addrs, Conns: 8, RunID: "idle-warm"})
	if err != nil {
		return nil, err
	}
	defer warm.Close()
	before, err := settledMemory(ctx, pid)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	set, err := loadgen.OpenIdle(ctx, loadgen.Config{Targets: t.addrs, Conns: n, RunID: "idle", SetupParallel: 32})
	if err != nil {
		return nil, fmt.Errorf("opening %d idle connections: %w", n, err)
	}
	defer set.Close()
	setup := time.Since(start)
	after, err := settledMemory(ctx, pid)
	if err != nil {
		return nil, err
	}
	alive := set.Alive()
	// The proxy stops while the connections are still open (a profiling
	// build writes its heap profile then).
	t.close()
	return &report.Idle{
		Conns:        n,
		Backend:      fmt.Sprintf("%d stub backends (answer connect/ping/session.create, push nothing)", b.backends),
		SetupSec:     setup.Seconds(),
		RSSBefore:    before.RSS,
		RSSAfter:     after.RSS,
		PeakAfter:    after.Peak,
		PerConnBytes: float64(after.RSS-before.RSS) / float64(n),
		Alive:        alive,
	}, nil
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
