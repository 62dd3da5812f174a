package report

import (
	"fmt"
	"io"
	"strings"
)

// WriteMarkdown writes the report for people; chart is the SVG's file name
// relative to the Markdown file ("" for none).
func (r *Report) WriteMarkdown(w io.Writer, chart string) error {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }

	p("# rpcproxy load bench, %s\n\n", r.Timestamp)
	m := r.Machine
	p("Machine: %d × %s, Linux %s, %s, HAProxy %s, %d MiB memory, open files limit %d.\n\n",
		m.NProc, orNA(m.CPUModel), orNA(m.Kernel), orNA(m.GoVersion), orNA(m.HAProxyVersion), m.MemTotalMiB, m.NoFile)
	p("The load generator, %d fake CLI backends (`cmd/fakecli`, separate processes, %d events per turn, deltas of %s bytes) "+
		"and the proxy under test all share this machine's %d cores, so a mode that costs more CPU also takes it from the "+
		"backends and the generator. Every figure is the median over %d repetitions; modes alternate "+
		"(direct, rpcproxy, haproxy, direct, …). Latencies are measured by the generator: request = write of a request to "+
		"read of its answer; turn = write of `session.send` to read of `session.idle`.\n\n",
		r.Settings.Backends, r.Settings.EventsPerTurn, intsRange(r.Settings.EventSizes), m.NProc, r.Settings.Reps)
	if r.Settings.NoLifecycle {
		p("**Diagnosis run: the backends sent no `session.lifecycle` notifications** (`--no-lifecycle`; the CLI always " +
			"sends them), to measure what their broadcast to every connection costs.\n\n")
	}

	p("## Budget\n\n| what | target | measured | status |\n|---|---|---|---|\n")
	for _, c := range r.Budget {
		status := c.Status
		switch status {
		case "met":
			status = "**met**"
		case "missed":
			status = "**MISSED**"
		}
		p("| %s | %s | %s | %s |\n", c.What, c.Target, c.Measured, status)
	}
	p("\n")
	r.writeBackendTable(p)
	if chart != "" {
		p("![latency distributions](%s)\n\n", chart)
	}

	for i, s := range r.Scenarios {
		l := s.Load
		p("## Scenario %c: %s\n\n", 'a'+i, s.Title)
		think := "no think time"
		if l.ThinkMs > 0 {
			think = fmt.Sprintf("think time %s mean", Micros(l.ThinkMs*1000))
		}
		p("%d connection(s) × %d session(s), %s, %.0f s window after %.0f s warm-up; each turn followed by %d ping(s), "+
			"a `session.getMessages` every %d turns. %s\n\n",
			l.Conns, l.SessionsPerConn, think, l.WindowSec, l.WarmupSec, l.PingsPerTurn, l.GetMessagesEvery, s.Description)
		p("| mode | turns/s | frames/s | MB/s | req p50 | req p99 | req p99.9 | turn p50 | turn p99 | proxy CPU s / 10k frames | proxy syscalls / frame | proxy peak RSS | machine busy |\n")
		p("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
		for _, ms := range s.Modes {
			md := ms.Median
			cpu, sys, rss := "—", "—", "—"
			if ms.Mode != ModeDirect {
				cpu = fmt.Sprintf("%.3f", md.ProxyCPUPer10kFrames)
				if md.ProxySyscallsPerFrame > 0 {
					sys = fmt.Sprintf("%.2f", md.ProxySyscallsPerFrame)
				}
				rss = MiB(md.ProxyPeakRSS)
			}
			p("| %s | %.0f | %.0f | %.1f | %s | %s | %s | %s | %s | %s | %s | %s | %.0f%% |\n", ms.Mode,
				md.TurnsPerSec, md.FramesPerSec, md.MBPerSec, Micros(md.ReqP50), Micros(md.ReqP99), Micros(md.ReqP999),
				Micros(md.TurnP50), Micros(md.TurnP99), cpu, sys, rss, md.MachineBusy*100)
		}
		p("\n")
		d, rp, ha := s.Mode(ModeDirect), s.Mode(ModeRPCProxy), s.Mode(ModeHAProxy)
		if d != nil && rp != nil {
			p("- rpcproxy / direct: turns/s ×%.3f, frames/s ×%.3f; added latency: request p50 %+.0f µs, p99 %+.0f µs, "+
				"p99.9 %+.0f µs; turn p50 %+.0f µs, p99 %+.0f µs.\n",
				ratio(rp.Median.TurnsPerSec, d.Median.TurnsPerSec), ratio(rp.Median.FramesPerSec, d.Median.FramesPerSec),
				rp.Median.ReqP50-d.Median.ReqP50, rp.Median.ReqP99-d.Median.ReqP99, rp.Median.ReqP999-d.Median.ReqP999,
				rp.Median.TurnP50-d.Median.TurnP50, rp.Median.TurnP99-d.Median.TurnP99)
		}
		if ha != nil && rp != nil {
			p("- rpcproxy / haproxy: turns/s ×%.3f; proxy CPU per 10k frames ×%.2f; peak RSS ×%.1f; "+
				"added latency vs haproxy: request p99 %+.0f µs, turn p50 %+.0f µs.\n",
				ratio(rp.Median.TurnsPerSec, ha.Median.TurnsPerSec),
				ratio(rp.Median.ProxyCPUPer10kFrames, ha.Median.ProxyCPUPer10kFrames),
				ratio(float64(rp.Median.ProxyPeakRSS), float64(ha.Median.ProxyPeakRSS)),
				rp.Median.ReqP99-ha.Median.ReqP99, rp.Median.TurnP50-ha.Median.TurnP50)
		}
		for _, ms := range s.Modes {
			if ms.Median.Lifecycle > 0 && ms.Median.Turns > 0 {
				p("- %s: %.1f session.lifecycle notifications per turn reached the clients", ms.Mode,
					float64(ms.Median.Lifecycle)/float64(ms.Median.Turns))
				p(".\n")
			}
		}
		for _, ms := range s.Modes {
			if ms.Failed > 0 {
				p("- **%s: %d repetition(s) had failures** (bad turns %d, error answers %d): %s\n", ms.Mode, ms.Failed,
					ms.Median.BadTurns, ms.Median.ErrorAnswers, strings.Join(first(ms.Median.Failures, 3), "; "))
			}
		}
		p("\n<details><summary>every run</summary>\n\n")
		p("| # | mode | turns/s | frames/s | req p50 | req p99 | turn p50 | turn p99 | proxy CPU s | backends CPU s | generator CPU s | others' CPU s | machine busy |\n")
		p("|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
		for j, run := range s.Runs {
			p("| %d | %s | %.0f | %.0f | %s | %s | %s | %s | %.2f | %.2f | %.2f | %.2f | %.0f%% |\n", j+1, run.Mode,
				run.TurnsPerSec, run.FramesPerSec, Micros(run.ReqP50), Micros(run.ReqP99), Micros(run.TurnP50), Micros(run.TurnP99),
				run.ProxyCPUSec, run.BackendCPUSec, run.GeneratorCPUSec, run.OtherCPUSec, run.MachineBusy*100)
		}
		p("\n</details>\n\n")
	}

	if id := r.Idle; id != nil {
		p("## Idle client connections\n\n")
		upstreams := "so the proxy also holds one upstream connection per client"
		if r.Settings.ConnsPerBackend > 0 {
			upstreams = "the proxy multiplexes them over its shared upstreams"
		}
		p("%d SDK connections, each after `connect` and one `session.create` (%s), against %s. Proxy RSS %s before, "+
			"%s after (peak %s), %d still open: **%.1f KiB per idle connection** (setup %.1f s).",
			id.Conns, upstreams, id.Backend, MiB(id.RSSBefore), MiB(id.RSSAfter), MiB(id.PeakAfter), id.Alive, id.PerConnBytes/1024, id.SetupSec)
		if id.Note != "" {
			p(" %s", id.Note)
		}
		if co := id.ConnectOnly; co != nil {
			p(" The full %d connections after `connect` only (an SDK client before its first session: no upstream yet): "+
				"RSS %s before, %s after, %d still open, **%.1f KiB per connection**.",
				co.Conns, MiB(co.RSSBefore), MiB(co.RSSAfter), co.Alive, co.PerConnBytes/1024)
		}
		p("\n\n")
	}

	if h := r.Held; h != nil {
		p("## Sessions held\n\n")
		held := "the proxy holds one upstream connection per client per backend its sessions landed on"
		if r.Settings.ConnsPerBackend > 0 {
			held = "over the proxy's shared upstreams"
		}
		p("%d SDK connections with %d sessions each (%d sessions; "+held+"), against %s. Proxy RSS %s before, %s after (peak %s), %d connections still open: "+
			"**%.2f KiB per session**, connections included (setup %.1f s).\n\n",
			h.Conns, h.Sessions/max(1, h.Conns), h.Sessions, h.Backend, MiB(h.RSSBefore), MiB(h.RSSAfter), MiB(h.PeakAfter),
			h.Alive, h.PerSessionBytes/1024, h.SetupSec)
	}

	if sp := r.Spread; sp != nil {
		p("## SDK connections with sessions on every backend\n\n")
		p("%d SDK connections asked for, each after `connect` and one `session.create` on each of the %d backends "+
			"(session ids chosen on the proxy's ring), against %s. The proxy needs %d descriptor(s) per client "+
			"(open files limit %d), so %d were opened; %d still open, %d sessions, the backends hold %d connections, "+
			"the proxy %d descriptors. Proxy RSS %s before, %s after: **%.1f KiB per connection, %.2f KiB per session** "+
			"(setup %.1f s).\n\n",
			sp.Want, sp.Backends, sp.Backend, sp.FDsPerClient, sp.NoFile, sp.Conns, sp.Alive, sp.Sessions, sp.BackendConns,
			sp.ProxyFDs, MiB(sp.RSSBefore), MiB(sp.RSSAfter), sp.PerConnBytes/1024, sp.PerSessionBytes/1024, sp.SetupSec)
	}

	if len(r.Micro) > 0 {
		p("## Micro-benchmarks\n\n| benchmark | ns/op | MB/s | B/op | allocs/op |\n|---|--:|--:|--:|--:|\n")
		for _, mb := range r.Micro {
			mbs := ""
			if mb.MBPerSec > 0 {
				mbs = fmt.Sprintf("%.0f", mb.MBPerSec)
			}
			p("| %s | %.1f | %s | %.0f | %.0f |\n", mb.Name, mb.NsPerOp, mbs, mb.BytesPerOp, mb.AllocsPerOp)
		}
		p("\n")
	}
	if len(r.Notes) > 0 {
		p("## Notes\n\n")
		for _, n := range r.Notes {
			p("- %s\n", n)
		}
		p("\n")
	}
	p("Columns are explained in bench/README.md.\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func orNA(s string) string {
	if s == "" {
		return "n/a"
	}
	return s
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func first(v []string, n int) []string {
	if len(v) > n {
		return v[:n]
	}
	return v
}

// MiB formats a byte count in MiB.
func MiB(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func intsRange(v []int) string {
	if len(v) == 0 {
		return "n/a"
	}
	lo, hi := v[0], v[0]
	for _, x := range v {
		lo, hi = min(lo, x), max(hi, x)
	}
	return fmt.Sprintf("%d to %d", lo, hi)
}

// writeBackendTable writes what the backends see in every scenario and
// mode: the connections they hold and their CPU time per turn.
func (r *Report) writeBackendTable(p func(format string, args ...any)) {
	if len(r.Scenarios) == 0 {
		return
	}
	p("## What the backends see\n\n")
	p("Connections the %d backends hold at the end of the window (their sockets minus their listeners) and their CPU "+
		"time (utime+stime from `/proc/<pid>/stat`) per turn completed; `session.lifecycle` notifications per turn that "+
		"reached the clients. rpcproxy's setting: ", r.Settings.Backends)
	if r.Settings.ConnsPerBackend > 0 {
		p("`upstream.connections_per_backend = %d`.\n\n", r.Settings.ConnsPerBackend)
	} else {
		p("not given (its default).\n\n")
	}
	p("| scenario | mode | clients | backend connections | backends' CPU µs / turn | lifecycle / turn | turns/s |\n|---|---|--:|--:|--:|--:|--:|\n")
	for _, s := range r.Scenarios {
		for _, ms := range s.Modes {
			md := ms.Median
			lc := 0.0
			if md.Turns > 0 {
				lc = float64(md.Lifecycle) / float64(md.Turns)
			}
			p("| %s | %s | %d | %d | %.0f | %.1f | %.0f |\n", s.Name, ms.Mode, s.Load.Conns, md.BackendConns,
				md.BackendCPUPerTurnUs, lc, md.TurnsPerSec)
		}
	}
	p("\n")
}
