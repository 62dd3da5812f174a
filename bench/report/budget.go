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

// Budget targets (issue 5).
const (
	MinThroughputRatio = 0.95       // rpcproxy turns/s over direct
	MaxLoneAddedP50us  = 30.0       // rpcproxy turn p50 minus direct, lone session
	MaxAddedP99us      = 100.0      // rpcproxy p99 minus direct, 1,000 sessions
	MaxIdleBytes       = 20 << 10   // proxy RSS per idle client connection
	HeldSessions       = 100_000    // sessions the proxy must hold at once
	HeldConns          = 10_000     // SDK connections the proxy must hold at once
	MaxRouteNs         = 1000.0     // route key + ring lookup per frame
	RouteBenchPrefix   = "RouteKey" // micro-benchmarks held to MaxRouteNs and 0 allocs
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
	if d, p, _ := r.modes(ScenarioLone); d != nil && p != nil {
		added := p.Median.TurnP50 - d.Median.TurnP50
		add("added turn latency, lone session (p50, scenario b)", fmt.Sprintf("<= %.0f µs", MaxLoneAddedP50us),
			fmt.Sprintf("%+.1f µs (%s vs %s)", added, Micros(p.Median.TurnP50), Micros(d.Median.TurnP50)), added <= MaxLoneAddedP50us, true)
	} else {
		add("added turn latency, lone session (p50, scenario b)", "<= 30 µs", "not run", false, false)
	}
	if d, p, _ := r.modes(ScenarioConcurrent); d != nil && p != nil {
		added := p.Median.ReqP99 - d.Median.ReqP99
		add("added request latency, 1,000 sessions (p99, scenario c)", fmt.Sprintf("<= %.0f µs", MaxAddedP99us),
			fmt.Sprintf("%+.1f µs (%s vs %s)", added, Micros(p.Median.ReqP99), Micros(d.Median.ReqP99)), added <= MaxAddedP99us, true)
		added = p.Median.TurnP99 - d.Median.TurnP99
		add("added turn latency, 1,000 sessions (p99, scenario c)", fmt.Sprintf("<= %.0f µs", MaxAddedP99us),
			fmt.Sprintf("%+.1f µs (%s vs %s)", added, Micros(p.Median.TurnP99), Micros(d.Median.TurnP99)), added <= MaxAddedP99us, true)
	} else {
		add("added latency, 1,000 sessions (p99, scenario c)", "<= 100 µs", "not run", false, false)
	}
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
