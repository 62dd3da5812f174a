package report

import (
	"fmt"
	"strings"
)

// Scenario names the budget refers to.
const (
	ScenarioThroughput = "throughput"
	ScenarioLone       = "lone-session"
	ScenarioConcurrent = "1k-sessions"
)

// Budget targets (issues 5 and 12: latency and throughput relative to HAProxy,
// backend connections and backend CPU per turn).
const (
	MinThroughputRatio = 0.95  // rpcproxy turns/s over direct
	MaxLoneAddedP50us  = 30.0  // rpcproxy turn p50 minus direct, lone session, when HAProxy is not run
	MaxAddedP99us      = 100.0 // rpcproxy p99 minus direct, 1,000 sessions, when HAProxy is not run
	// AssumedConnsPerBackend is the upstream.connections_per_backend the
	// backend-connections line's target uses when rpcproxy ran with
	// per-client upstreams (0), or in results that did not record it.
	AssumedConnsPerBackend = 4
	MaxIdleBytes           = 20 << 10   // proxy RSS per idle client connection
	HeldSessions           = 100_000    // sessions the proxy must hold at once
	HeldConns              = 10_000     // SDK connections the proxy must hold at once
	MaxRouteNs             = 1000.0     // route key + ring lookup per frame
	RouteBenchPrefix       = "RouteKey" // micro-benchmarks held to MaxRouteNs and 0 allocs
)

// Evaluate fills r.Budget from the scenarios, idle and micro results.
func (r *Report) Evaluate() {
	r.Budget = nil
	add := func(what, target, measured string, ok, known bool) {
		status := "n/a"
		if known {
			status = "missed"
			if ok {
				status = "met"
			}
		}
		r.Budget = append(r.Budget, Check{What: what, Target: target, Measured: measured, Status: status})
	}
	if d, p, h := r.modes(ScenarioThroughput); d != nil && p != nil {
		ratio := p.Median.TurnsPerSec / d.Median.TurnsPerSec
		add("throughput through rpcproxy vs direct (turns/s, scenario a)", fmt.Sprintf(">= %.0f%%", MinThroughputRatio*100),
			fmt.Sprintf("%.1f%% (%.0f vs %.0f turns/s)", ratio*100, p.Median.TurnsPerSec, d.Median.TurnsPerSec), ratio >= MinThroughputRatio, true)
		if h != nil {
			ratio := p.Median.TurnsPerSec / h.Median.TurnsPerSec
			add("throughput through rpcproxy vs HAProxy (turns/s, scenario a)", ">= 100%",
				fmt.Sprintf("%.1f%% (%.0f vs %.0f turns/s)", ratio*100, p.Median.TurnsPerSec, h.Median.TurnsPerSec), ratio >= 1, true)
		} else {
			add("throughput through rpcproxy vs HAProxy (turns/s, scenario a)", ">= 100%", "HAProxy not run", false, false)
		}
	} else {
		add("throughput through rpcproxy vs direct (turns/s, scenario a)", ">= 95%", "not run", false, false)
	}
	if d, p, h := r.modes(ScenarioLone); d != nil && p != nil {
		added := p.Median.TurnP50 - d.Median.TurnP50
		what := "added turn latency, lone session (p50, scenario b)"
		if h != nil {
			hAdded := h.Median.TurnP50 - d.Median.TurnP50
			add(what, "<= HAProxy's added",
				fmt.Sprintf("%s vs HAProxy %s (%s, %s, direct %s)", SignedMicros(added), SignedMicros(hAdded),
					Micros(p.Median.TurnP50), Micros(h.Median.TurnP50), Micros(d.Median.TurnP50)), added <= hAdded, true)
		} else {
			add(what, fmt.Sprintf("<= %.0f µs (HAProxy not run)", MaxLoneAddedP50us),
				fmt.Sprintf("%+.1f µs (%s vs %s)", added, Micros(p.Median.TurnP50), Micros(d.Median.TurnP50)), added <= MaxLoneAddedP50us, true)
		}
	} else {
		add("added turn latency, lone session (p50, scenario b)", "<= HAProxy's added", "not run", false, false)
	}
	if d, p, h := r.modes(ScenarioConcurrent); d != nil && p != nil {
		for _, l := range []struct {
			what string
			get  func(*Run) float64
		}{
			{"added request latency, 1,000 sessions (p99, scenario c)", func(r *Run) float64 { return r.ReqP99 }},
			{"added turn latency, 1,000 sessions (p99, scenario c)", func(r *Run) float64 { return r.TurnP99 }},
		} {
			added := l.get(&p.Median) - l.get(&d.Median)
			if h != nil {
				hAdded := l.get(&h.Median) - l.get(&d.Median)
				add(l.what, "<= HAProxy's added",
					fmt.Sprintf("%s vs HAProxy %s (%s, %s, direct %s)", SignedMicros(added), SignedMicros(hAdded),
						Micros(l.get(&p.Median)), Micros(l.get(&h.Median)), Micros(l.get(&d.Median))), added <= hAdded, true)
			} else {
				add(l.what, fmt.Sprintf("<= %.0f µs (HAProxy not run)", MaxAddedP99us),
					fmt.Sprintf("%+.1f µs (%s vs %s)", added, Micros(l.get(&p.Median)), Micros(l.get(&d.Median))), added <= MaxAddedP99us, true)
			}
		}
	} else {
		add("added latency, 1,000 sessions (p99, scenario c)", "<= HAProxy's added", "not run", false, false)
	}
	r.evaluateBackends(add)
	if r.Idle != nil && r.Idle.Conns > 0 {
		add(fmt.Sprintf("proxy RSS per idle client connection (%d connections)", r.Idle.Conns), "<= 20 KiB",
			fmt.Sprintf("%.1f KiB", r.Idle.PerConnBytes/1024), r.Idle.PerConnBytes <= MaxIdleBytes, true)
	} else {
		add("proxy RSS per idle client connection", "<= 20 KiB", "not run", false, false)
	}
	if r.Idle != nil && r.Idle.ConnectOnly != nil {
		co := r.Idle.ConnectOnly
		add("SDK connections held at once (after connect, no session yet)", fmt.Sprintf(">= %d", HeldConns),
			fmt.Sprintf("%d of %d still open, %.1f KiB RSS each", co.Alive, co.Conns, co.PerConnBytes/1024),
			co.Conns >= HeldConns && co.Alive == co.Conns, true)
	}
	if h := r.Held; h != nil && h.Conns > 0 {
		add(fmt.Sprintf("sessions held (%d connections × %d)", h.Conns, h.Sessions/max(1, h.Conns)), fmt.Sprintf(">= %d", HeldSessions),
			fmt.Sprintf("%d, %d connections still open, %.2f KiB RSS per session", h.Sessions, h.Alive, h.PerSessionBytes/1024),
			h.Sessions >= HeldSessions && h.Alive == h.Conns, true)
	}
	if sp := r.Spread; sp != nil {
		add(fmt.Sprintf("SDK connections with a session on each of the %d backends, within the open files limit (%d)", sp.Backends, sp.NoFile),
			fmt.Sprintf(">= %d", HeldConns),
			fmt.Sprintf("%d of %d opened (%d descriptors per client in the proxy), %d still open, %d sessions, %d backend connections; "+
				"%.1f KiB RSS per connection, %.2f KiB per session", sp.Conns, sp.Want, sp.FDsPerClient, sp.Alive, sp.Sessions,
				sp.BackendConns, sp.PerConnBytes/1024, sp.PerSessionBytes/1024),
			sp.Conns >= HeldConns && sp.Alive == sp.Conns && sp.Sessions >= sp.Conns*sp.Backends, true)
	}
	for _, m := range r.Micro {
		if !strings.Contains(m.Name, RouteBenchPrefix) {
			continue
		}
		add("route key + ring lookup: "+m.Name, "<= 1 µs/frame, 0 allocs",
			fmt.Sprintf("%.0f ns, %.0f allocs", m.NsPerOp, m.AllocsPerOp), m.NsPerOp <= MaxRouteNs && m.AllocsPerOp == 0, true)
	}
}

// modes returns the direct, rpcproxy and haproxy summaries of a scenario.
func (r *Report) modes(name string) (direct, rpcproxy, haproxy *ModeSummary) {
	for _, s := range r.Scenarios {
		if s.Name == name {
			return s.Mode(ModeDirect), s.Mode(ModeRPCProxy), s.Mode(ModeHAProxy)
		}
	}
	return nil, nil, nil
}

// SignedMicros is Micros with a sign: "+84 µs", "-1.20 ms".
func SignedMicros(us float64) string {
	if us < 0 {
		return "-" + Micros(-us)
	}
	return "+" + Micros(us)
}

// Micros formats microseconds for people: "850 µs", "12.3 ms", "1.20 s".
func Micros(us float64) string {
	switch {
	case us <= 0:
		return "0"
	case us < 10:
		return fmt.Sprintf("%.1f µs", us)
	case us < 1000:
		return fmt.Sprintf("%.0f µs", us)
	case us < 10000:
		return fmt.Sprintf("%.2f ms", us/1000)
	case us < 1e6:
		return fmt.Sprintf("%.1f ms", us/1000)
	}
	return fmt.Sprintf("%.2f s", us/1e6)
}

// evaluateBackends adds the issue 12 lines: the connections a proxy holds
// to the backends (the backends count them) and what a turn costs the
// backends through rpcproxy compared with direct clients.
func (r *Report) evaluateBackends(add func(what, target, measured string, ok, known bool)) {
	n := r.Settings.ConnsPerBackend
	assumed := ""
	if n <= 0 {
		n, assumed = AssumedConnsPerBackend, fmt.Sprintf(" (rpcproxy ran with per-client upstreams; target with %d)", AssumedConnsPerBackend)
	}
	// Plus the health checker's probe: one connection per backend.
	limit := n*r.Settings.Backends + r.Settings.Backends
	for _, name := range []string{ScenarioThroughput, ScenarioConcurrent} {
		d, p, h := r.modes(name)
		if p == nil {
			continue
		}
		measured := fmt.Sprintf("%d", p.Median.BackendConns)
		if d != nil {
			measured += fmt.Sprintf(" (direct %d", d.Median.BackendConns)
			if h != nil {
				measured += fmt.Sprintf(", HAProxy %d", h.Median.BackendConns)
			}
			measured += ")"
		}
		add(fmt.Sprintf("backend connections of rpcproxy (%s, %d clients)", name, r.scenarioConns(name)),
			fmt.Sprintf("<= connections_per_backend%s × %d + %d health probes = %d", assumed, r.Settings.Backends, r.Settings.Backends, limit),
			measured, p.Median.BackendConns <= limit, true)
		if d != nil && d.Median.BackendCPUPerTurnUs > 0 {
			measured := fmt.Sprintf("%.0f µs vs direct %.0f µs", p.Median.BackendCPUPerTurnUs, d.Median.BackendCPUPerTurnUs)
			if h != nil {
				measured += fmt.Sprintf(", HAProxy %.0f µs", h.Median.BackendCPUPerTurnUs)
			}
			add(fmt.Sprintf("backends' CPU per turn through rpcproxy (%s)", name), "<= direct", measured,
				p.Median.BackendCPUPerTurnUs <= d.Median.BackendCPUPerTurnUs, true)
		}
	}
}

// scenarioConns is the client connections of a scenario's load.
func (r *Report) scenarioConns(name string) int {
	for _, s := range r.Scenarios {
		if s.Name == name {
			return s.Load.Conns
		}
	}
	return 0
}
