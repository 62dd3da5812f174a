package report

import (
	"bytes"
	"encoding/xml"
	"io"
	"strings"
	"testing"
)

func sampleReport() *Report {
	cdf := []Point{{100, 0.1}, {200, 0.5}, {400, 0.99}, {900, 1}}
	s := &Scenario{Name: ScenarioThroughput, Title: "throughput <C=16>", Load: Load{Conns: 16, SessionsPerConn: 8, WindowSec: 15}}
	for rep, v := range []float64{1000, 1200, 1100} {
		s.Runs = append(s.Runs,
			Run{Mode: ModeDirect, Rep: rep, TurnsPerSec: v, TurnP50: 100, TurnP99: 300, ReqP99: 50, TurnCDF: cdf, ReqCDF: cdf},
			Run{Mode: ModeRPCProxy, Rep: rep, TurnsPerSec: v * 0.9, TurnP50: 140, TurnP99: 350, ReqP99: 80, ProxyCPUPer10kFrames: 0.1, ProxyPeakRSS: 20 << 20, TurnCDF: cdf},
			Run{Mode: ModeHAProxy, Rep: rep, TurnsPerSec: v * 0.85, TurnP50: 120, TurnP99: 320, ReqP99: 60, ProxyCPUPer10kFrames: 0.05})
	}
	s.Runs[1].BadTurns = 2
	s.Summarize()
	lone := &Scenario{Name: ScenarioLone, Title: "lone", Runs: []Run{
		{Mode: ModeDirect, TurnP50: 500}, {Mode: ModeRPCProxy, TurnP50: 520},
	}}
	lone.Summarize()
	r := &Report{
		Timestamp: "20250101T000000Z",
		Scenarios: []*Scenario{s, lone},
		Idle:      &Idle{Conns: 1000, PerConnBytes: 30 << 10, ConnectOnly: &ConnectOnly{Conns: 10000, Alive: 10000, PerConnBytes: 9 << 10}},
		Held:      &Held{Conns: 2000, Sessions: 100000, Alive: 1999, PerSessionBytes: 1100},
		Micro:     []Micro{{Name: "bench.BenchmarkRouteKeySmall", NsPerOp: 200}, {Name: "bench.BenchmarkRouteKey40KiB", NsPerOp: 5000}},
	}
	r.Evaluate()
	return r
}

func TestSummarizeTakesMedians(t *testing.T) {
	r := sampleReport()
	s := r.Scenarios[0]
	d, p := s.Mode(ModeDirect), s.Mode(ModeRPCProxy)
	if d.Reps != 3 || d.Median.TurnsPerSec != 1100 || p.Median.TurnsPerSec != 990 {
		t.Fatalf("medians: direct %+v rpcproxy %+v", d.Median.TurnsPerSec, p.Median.TurnsPerSec)
	}
	if p.Failed != 1 || d.Failed != 0 {
		t.Errorf("failed reps: rpcproxy %d direct %d", p.Failed, d.Failed)
	}
	if median([]float64{4, 1, 3, 2}) != 2.5 || median(nil) != 0 {
		t.Error("median of an even count or nothing")
	}
}

func TestEvaluate(t *testing.T) {
	r := sampleReport()
	want := map[string]string{
		"throughput through rpcproxy vs direct":                 "missed", // 90%
		"throughput through rpcproxy vs HAProxy":                "met",    // 106%
		"added turn latency, lone session":                      "met",    // +20 µs
		"added latency, 1,000 sessions":                         "n/a",
		"proxy RSS per idle client connection":                  "missed",
		"sessions held":                                         "missed", // a connection was lost
		"SDK connections held at once":                          "met",
		"route key + ring lookup: bench.BenchmarkRouteKeySmall": "met",
		"route key + ring lookup: bench.BenchmarkRouteKey40KiB": "missed",
	}
	for prefix, status := range want {
		found := false
		for _, c := range r.Budget {
			if strings.HasPrefix(c.What, prefix) {
				found = true
				if c.Status != status {
					t.Errorf("%s: %s (%s), want %s", c.What, c.Status, c.Measured, status)
				}
			}
		}
		if !found {
			t.Errorf("no budget line %q", prefix)
		}
	}
}

func TestWriteMarkdown(t *testing.T) {
	var b bytes.Buffer
	if err := sampleReport().WriteMarkdown(&b, "x.svg"); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"## Budget", "**MISSED**", "## Scenario a: throughput", "| rpcproxy | 990 |",
		"rpcproxy / direct: turns/s ×0.900", "![latency distributions](x.svg)", "## Idle client connections", "## Sessions held", "## Micro-benchmarks",
		"1 repetition(s) had failures"} {
		if !strings.Contains(out, want) {
			t.Errorf("Markdown lacks %q:\n%s", want, out)
		}
	}
}

func TestWriteSVGIsWellFormed(t *testing.T) {
	var b bytes.Buffer
	if err := sampleReport().WriteSVG(&b); err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(&b)
	polylines := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "polyline" {
			polylines++
		}
	}
	// Scenario a: direct and rpcproxy turn curves, the direct request curve; lone: none.
	if polylines != 3 {
		t.Errorf("%d curves drawn, want 3", polylines)
	}
}

func TestParseMicro(t *testing.T) {
	out := `goos: linux
pkg: github.com/rpcproxy/rpcproxy/bench
BenchmarkRouteKey/small-2         	 6916800	        29.36 ns/op	7117.81 MB/s	       0 B/op	       0 allocs/op
BenchmarkNoMem-2   1000   1500 ns/op
--- FAIL: something
pkg: github.com/rpcproxy/rpcproxy/internal/frame
BenchmarkScan40KiB-2                 	   12666	     18944 ns/op	2153.90 MB/s	       16 B/op	       1 allocs/op
PASS
`
	got, err := ParseMicro(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("parsed %d lines: %+v", len(got), got)
	}
	if got[0].Name != "bench.BenchmarkRouteKey/small" || got[0].NsPerOp != 29.36 || got[0].MBPerSec != 7117.81 {
		t.Errorf("first: %+v", got[0])
	}
	if got[2].Name != "frame.BenchmarkScan40KiB" || got[2].BytesPerOp != 16 || got[2].AllocsPerOp != 1 {
		t.Errorf("third: %+v", got[2])
	}
}

func TestMicros(t *testing.T) {
	for us, want := range map[float64]string{0: "0", 5.3: "5.3 µs", 850: "850 µs", 1234: "1.23 ms", 45600: "45.6 ms", 2.5e6: "2.50 s"} {
		if got := Micros(us); got != want {
			t.Errorf("Micros(%v) = %q, want %q", us, got, want)
		}
	}
}
