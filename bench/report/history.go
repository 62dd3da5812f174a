package report

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// HistoryHeader opens bench/results/history.md: one row per bench run with
// its headline figures (the full results of the newest run are latest.*).
const HistoryHeader = `# rpcproxy bench history

One row per ` + "`make bench`" + ` run (written by bench/cmd/benchrun; the newest run's full
report is latest.md). Ratios and added latencies are medians over the run's
repetitions; "—" where the run did not measure it. Columns:
a = turns/s through rpcproxy over HAProxy and over direct (scenario a);
b = turn p50 rpcproxy adds over direct, and HAProxy's (lone session);
c = request p99 rpcproxy adds over direct, and HAProxy's (1,000 sessions);
backend conns = connections the backends hold in scenario a, rpcproxy / direct;
backend CPU = the backends' CPU µs per turn in scenario a, rpcproxy / direct;
spread = SDK connections held with a session on every backend (of those asked);
RSS = proxy RSS per idle connection and per held session.

| date (UTC) | commit | a: rp/HAProxy | a: rp/direct | b: added p50 rp / HAProxy | c: added req p99 rp / HAProxy | backend conns (a) | backend CPU µs/turn (a) | spread | RSS / idle conn | RSS / session | notes |
|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|
`

// HistoryRow is r's row of history.md.
func (r *Report) HistoryRow() string {
	na := "—"
	aHA, aD, bAdd, cAdd, conns, cpu, spread, idle, sess := na, na, na, na, na, na, na, na, na
	if d, p, h := r.modes(ScenarioThroughput); p != nil {
		if h != nil {
			aHA = fmt.Sprintf("%.3f", ratio(p.Median.TurnsPerSec, h.Median.TurnsPerSec))
		}
		if d != nil {
			aD = fmt.Sprintf("%.3f", ratio(p.Median.TurnsPerSec, d.Median.TurnsPerSec))
			if p.Median.BackendConns > 0 {
				conns = fmt.Sprintf("%d / %d", p.Median.BackendConns, d.Median.BackendConns)
			}
			if pc, dc := cpuPerTurn(&p.Median), cpuPerTurn(&d.Median); pc > 0 && dc > 0 {
				cpu = fmt.Sprintf("%.0f / %.0f", pc, dc)
			}
		}
	}
	added := func(name string, get func(*Run) float64) string {
		d, p, h := r.modes(name)
		if d == nil || p == nil {
			return na
		}
		s := SignedMicros(get(&p.Median) - get(&d.Median))
		if h != nil {
			s += " / " + SignedMicros(get(&h.Median)-get(&d.Median))
		}
		return s
	}
	bAdd = added(ScenarioLone, func(r *Run) float64 { return r.TurnP50 })
	cAdd = added(ScenarioConcurrent, func(r *Run) float64 { return r.ReqP99 })
	if sp := r.Spread; sp != nil {
		spread = fmt.Sprintf("%d of %d", sp.Alive, sp.Want)
	}
	if r.Idle != nil && r.Idle.Conns > 0 {
		idle = fmt.Sprintf("%.1f KiB", r.Idle.PerConnBytes/1024)
	}
	if r.Held != nil && r.Held.Sessions > 0 {
		sess = fmt.Sprintf("%.2f KiB", r.Held.PerSessionBytes/1024)
	}
	var notes []string
	if r.Settings.NoLifecycle {
		notes = append(notes, "no lifecycle (diagnosis)")
	}
	if r.Settings.ConnsPerBackend > 0 {
		notes = append(notes, fmt.Sprintf("connections_per_backend %d", r.Settings.ConnsPerBackend))
	}
	if r.Settings.Scale > 0 && r.Settings.Scale != 1 {
		notes = append(notes, fmt.Sprintf("scale %g", r.Settings.Scale))
	}
	if r.Settings.Reps > 0 {
		notes = append(notes, fmt.Sprintf("%d reps", r.Settings.Reps))
	}
	commit := r.Settings.Commit
	if commit == "" {
		commit = na
	}
	return fmt.Sprintf("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
		r.Timestamp, commit, aHA, aD, bAdd, cAdd, conns, cpu, spread, idle, sess, strings.Join(notes, ", "))
}

// AppendHistory appends r's row to the history file at path, creating it
// with its header when missing.
func AppendHistory(path string, r *Report) error {
	head := ""
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		head = HistoryHeader
	} else if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	if _, err := f.WriteString(head + r.HistoryRow()); err != nil {
		f.Close()
		return fmt.Errorf("history: %w", err)
	}
	return f.Close()
}

// cpuPerTurn is the backends' CPU µs per turn of a median run; for results
// written before BackendCPUPerTurnUs existed, from the medians of CPU time
// and turns.
func cpuPerTurn(m *Run) float64 {
	if m.BackendCPUPerTurnUs > 0 {
		return m.BackendCPUPerTurnUs
	}
	if m.Turns == 0 {
		return 0
	}
	return m.BackendCPUSec * 1e6 / float64(m.Turns)
}
