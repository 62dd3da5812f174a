package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/rpcproxy/rpcproxy/bench/loadgen"
	"github.com/rpcproxy/rpcproxy/bench/procstat"
	"github.com/rpcproxy/rpcproxy/bench/report"
)

// scenario is one load, played in every mode.
type scenario struct {
	name, title, desc string
	conns, sessions   int
	think             time.Duration
	window, warmup    time.Duration
	pings, getMsgs    int
}

func (s scenario) load() report.Load {
	return report.Load{
		Conns: s.conns, SessionsPerConn: s.sessions, ThinkMs: float64(s.think) / float64(time.Millisecond),
		WindowSec: s.window.Seconds(), WarmupSec: s.warmup.Seconds(), PingsPerTurn: s.pings, GetMessagesEvery: s.getMsgs,
	}
}

// runScenario plays s in every mode, alternating, b.reps times, against a
// fresh pool of fake CLI processes.
func (b *bench) runScenario(ctx context.Context, s scenario) (*report.Scenario, error) {
	out := &report.Scenario{Name: s.name, Title: s.title, Description: s.desc, Load: s.load()}
	p, err := b.startFakePool(ctx, s.name)
	if err != nil {
		return nil, err
	}
	defer p.stop()
	for rep := range b.reps {
		for _, mode := range b.modes {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			run, err := b.runOnce(ctx, s, mode, rep, p)
			if err != nil {
				return nil, fmt.Errorf("%s, %s, repetition %d: %w", s.name, mode, rep+1, err)
			}
			b.logf("  %-12s %-8s rep %d: %7.0f turns/s  %8.0f frames/s  req p50 %-8s p99 %-8s turn p50 %-8s p99 %-8s proxy CPU %.2fs  backends %d conns %.0f µs/turn  busy %.0f%%",
				s.name, mode, rep+1, run.TurnsPerSec, run.FramesPerSec, report.Micros(run.ReqP50), report.Micros(run.ReqP99),
				report.Micros(run.TurnP50), report.Micros(run.TurnP99), run.ProxyCPUSec, run.BackendConns, run.BackendCPUPerTurnUs, run.MachineBusy*100)
			for _, f := range run.Failures {
				b.logf("    failure: %s", f)
			}
			out.Runs = append(out.Runs, run)
		}
	}
	out.Summarize()
	return out, nil
}

// runOnce plays one measured window in one mode, with a fresh proxy process.
func (b *bench) runOnce(ctx context.Context, s scenario, mode string, rep int, p *pool) (report.Run, error) {
	tag := fmt.Sprintf("%s-%s-%d", s.name, mode, rep+1)
	t, err := b.openMode(ctx, mode, tag, p)
	if err != nil {
		return report.Run{}, err
	}
	defer t.close()

	type sample struct {
		proxy, backends, self time.Duration
		proxyIO               procstat.IO
		machine               procstat.MachineCPU
		backendConns          int
	}
	take := func() sample {
		var sm sample
		if t.proxy != nil {
			sm.proxy = cpuOf(t.proxy.pid())
			sm.proxyIO, _ = procstat.ReadIO(t.proxy.pid())
		}
		sm.backends = p.cpu()
		sm.backendConns = p.conns()
		sm.self = cpuOf(os.Getpid())
		sm.machine, _ = procstat.ReadMachineCPU()
		return sm
	}
	var before, after sample
	cfg := loadgen.Config{
		Targets:          t.addrs,
		Conns:            s.conns,
		SessionsPerConn:  s.sessions,
		Duration:         s.window,
		Warmup:           s.warmup,
		Think:            s.think,
		PingsPerTurn:     s.pings,
		GetMessagesEvery: s.getMsgs,
		ExpectEvents:     b.events,
		RunID:            tag,
		DeleteSessions:   true,
		SetupParallel:    32,
		OnWindow: func(start bool) {
			if start {
				before = take()
			} else {
				after = take()
			}
		},
	}
	res, err := loadgen.Run(ctx, cfg)
	if err != nil {
		return report.Run{}, err
	}
	run := report.Run{
		Mode: mode, Rep: rep,
		WindowSec: res.Window.Seconds(), Turns: res.Turns, Frames: res.Frames(),
		TurnsPerSec: res.Rate(res.Turns), FramesPerSec: res.Rate(res.Frames()), MBPerSec: res.Rate(res.Bytes()) / 1e6,
		ReqP50: us(res.RequestLatency.Percentile(50)), ReqP99: us(res.RequestLatency.Percentile(99)),
		ReqP999: us(res.RequestLatency.Percentile(99.9)),
		TurnP50: us(res.TurnLatency.Percentile(50)), TurnP99: us(res.TurnLatency.Percentile(99)),
		BackendCPUSec:   (after.backends - before.backends).Seconds(),
		GeneratorCPUSec: (after.self - before.self).Seconds(),
		MachineBusy:     procstat.Utilization(before.machine, after.machine),
		BackendConns:    after.backendConns,
		Lifecycle:       res.Traffic.Lifecycle,
		BadTurns:        res.BadTurns,
		ErrorAnswers:    res.Traffic.ErrorResponses,
		Failures:        res.Failures,
		TurnCDF:         cdf(res.TurnLatency),
		ReqCDF:          cdf(res.RequestLatency),
	}
	if res.Turns > 0 {
		run.BackendCPUPerTurnUs = run.BackendCPUSec * 1e6 / float64(res.Turns)
	}
	ours := (after.proxy - before.proxy) + (after.backends - before.backends) + (after.self - before.self)
	run.OtherCPUSec = max(0, (after.machine.Busy - before.machine.Busy - ours).Seconds())
	if t.proxy != nil {
		run.ProxyCPUSec = (after.proxy - before.proxy).Seconds()
		if f := res.Frames(); f > 0 {
			run.ProxyCPUPer10kFrames = run.ProxyCPUSec / (float64(f) / 1e4)
			// HAProxy's recv/send are not counted in /proc/<pid>/io: 0 then.
			calls := after.proxyIO.ReadCalls + after.proxyIO.WriteCalls - before.proxyIO.ReadCalls - before.proxyIO.WriteCalls
			run.ProxySyscallsPerFrame = float64(calls) / float64(f)
		}
		if mem, err := procstat.ReadMemory(t.proxy.pid()); err == nil {
			run.ProxyPeakRSS = mem.Peak
		}
		if !t.proxy.alive() {
			run.Failures = append(run.Failures, fmt.Sprintf("%s exited during the run (%v); see %s", t.proxy.name, t.proxy.err, t.proxy.log))
		}
	}
	return run, nil
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// cdf converts a histogram's distribution for the report.
func cdf(h *loadgen.Histogram) []report.Point {
	pts := h.CDF()
	out := make([]report.Point, len(pts))
	for i, p := range pts {
		out[i] = report.Point{Micros: us(p.Value), Fraction: p.Fraction}
	}
	return out
}
