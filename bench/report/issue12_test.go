package report

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// issue12Report has every mode in scenarios a, b and c, backend figures and
// a spread measurement.
func issue12Report() *Report {
	a := &Scenario{Name: ScenarioThroughput, Load: Load{Conns: 16}, Runs: []Run{
		{Mode: ModeDirect, TurnsPerSec: 1000, BackendConns: 16, BackendCPUPerTurnUs: 130},
		{Mode: ModeRPCProxy, TurnsPerSec: 960, BackendConns: 15, BackendCPUPerTurnUs: 120},
		{Mode: ModeHAProxy, TurnsPerSec: 950, BackendConns: 16, BackendCPUPerTurnUs: 131},
	}}
	b := &Scenario{Name: ScenarioLone, Runs: []Run{
		{Mode: ModeDirect, TurnP50: 100}, {Mode: ModeRPCProxy, TurnP50: 190}, {Mode: ModeHAProxy, TurnP50: 180},
	}}
	c := &Scenario{Name: ScenarioConcurrent, Load: Load{Conns: 100}, Runs: []Run{
		{Mode: ModeDirect, ReqP99: 1000, TurnP99: 2000, BackendConns: 100, BackendCPUPerTurnUs: 700},
		{Mode: ModeRPCProxy, ReqP99: 1500, TurnP99: 2400, BackendConns: 300, BackendCPUPerTurnUs: 900},
		{Mode: ModeHAProxy, ReqP99: 1600, TurnP99: 2300, BackendConns: 100, BackendCPUPerTurnUs: 690},
	}}
	for _, s := range []*Scenario{a, b, c} {
		s.Summarize()
	}
	r := &Report{
		Timestamp: "20261130T000000Z",
		Settings:  Settings{Backends: 3, Reps: 1, Commit: "abc1234", Scale: 0.3},
		Scenarios: []*Scenario{a, b, c},
		Spread:    &Spread{Want: 10000, Conns: 4872, Backends: 3, FDsPerClient: 4, NoFile: 20000, Alive: 4872, Sessions: 14616},
	}
	r.Evaluate()
	return r
}

func budgetStatus(t *testing.T, r *Report, prefix string) string {
	t.Helper()
	for _, c := range r.Budget {
		if strings.HasPrefix(c.What, prefix) {
			return c.Status
		}
	}
	t.Fatalf("no budget line %q in %+v", prefix, r.Budget)
	return ""
}

// TestBudgetIssue12 checks the lines against HAProxy and the backends' side.
func TestBudgetIssue12(t *testing.T) {
	r := issue12Report()
	for prefix, want := range map[string]string{
		"throughput through rpcproxy vs HAProxy":                   "met",    // 960 vs 950
		"throughput through rpcproxy vs direct":                    "met",    // 96%
		"added turn latency, lone session":                         "missed", // +90 µs vs HAProxy's +80
		"added request latency, 1,000 sessions":                    "met",    // +500 vs +600
		"added turn latency, 1,000 sessions":                       "missed", // +400 vs +300
		"backend connections of rpcproxy (throughput":              "met",    // 15 <= 4×3+3
		"backend connections of rpcproxy (1k-sessions":             "missed", // 300
		"backends' CPU per turn through rpcproxy (throughput)":     "met",    // 120 <= 130
		"backends' CPU per turn through rpcproxy (1k-sessions)":    "missed", // 900 > 700
		"SDK connections with a session on each of the 3 backends": "missed", // 4872 of 10000
	} {
		if got := budgetStatus(t, r, prefix); got != want {
			t.Errorf("%s: %s, want %s", prefix, got, want)
		}
	}
	r.Spread = &Spread{Want: 10000, Conns: 10000, Backends: 3, FDsPerClient: 1, Alive: 10000, Sessions: 30000}
	r.Settings.ConnsPerBackend = 1 // 1×3 + 3 health probes = 6 < 15
	r.Evaluate()
	if got := budgetStatus(t, r, "SDK connections with a session on each"); got != "met" {
		t.Errorf("spread of 10,000 with all sessions: %s", got)
	}
	if got := budgetStatus(t, r, "backend connections of rpcproxy (throughput"); got != "missed" {
		t.Errorf("15 connections with connections_per_backend 1: %s", got)
	}
}

// TestHistory checks that history.md gets its header once and a row per run.
func TestHistory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.md")
	r := issue12Report()
	for range 2 {
		if err := AppendHistory(path, r); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := string(b)
	if strings.Count(out, "# rpcproxy bench history") != 1 {
		t.Errorf("header not written exactly once:\n%s", out)
	}
	row := "| 20261130T000000Z | abc1234 | 1.011 | 0.960 | +90 µs / +80 µs | +500 µs / +600 µs | 15 / 16 | 120 / 130 | 4872 of 10000 |"
	if strings.Count(out, row) != 2 || strings.Count(out, "scale 0.3, 1 reps |") != 2 {
		t.Errorf("want two rows starting %q:\n%s", row, out)
	}
}

func TestBackendTable(t *testing.T) {
	var b strings.Builder
	if err := issue12Report().WriteMarkdown(&b, ""); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"## What the backends see", "| 1k-sessions | rpcproxy | 100 | 300 | 900 |",
		"## SDK connections with sessions on every backend", "so 4872 were opened"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("Markdown lacks %q", want)
		}
	}
}
