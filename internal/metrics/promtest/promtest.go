// Package promtest helps tests check rpcproxy's metrics: scrape a handler
// and read values from the exposition, and run the real promtool and
// Prometheus server (Debian package prometheus, installed by
// scripts/install-prometheus.sh). Tests that need those binaries skip when
// they are missing, unless E2E_REQUIRED=1.
package promtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Binary returns the path of a Prometheus binary (promtool, prometheus),
// skipping the test when it is not installed (failing it with E2E_REQUIRED=1).
func Binary(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		msg := fmt.Sprintf("%s not installed (run scripts/install-prometheus.sh, or apt-get install prometheus)", name)
		if os.Getenv("E2E_REQUIRED") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return path
}

// Scrape is one exposition, parsed.
type Scrape map[string]*dto.MetricFamily

// Get scrapes url (a /metrics endpoint) and parses what it serves.
func Get(t testing.TB, url string) (Scrape, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %s %v\n%s", url, resp.Status, err, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse the exposition: %v\n%s", err, body)
	}
	return Scrape(fams), body
}

// Value returns the value of the series of family name with the given
// labels (pairs: name, value; other labels must be absent): a counter's or
// gauge's value, a histogram's sample count. ok is false when there is no
// such series.
func (s Scrape) Value(name string, labels ...string) (v float64, ok bool) {
	f := s[name]
	if f == nil {
		return 0, false
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	for _, m := range f.GetMetric() {
		if len(m.GetLabel()) != len(want) {
			continue
		}
		match := true
		for _, l := range m.GetLabel() {
			if want[l.GetName()] != l.GetValue() {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// Must is Value failing the test when the series is absent.
func (s Scrape) Must(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	v, ok := s.Value(name, labels...)
	if !ok {
		t.Fatalf("no series %s%v in the exposition", name, labels)
	}
	return v
}

// Names returns the families' names, sorted.
func (s Scrape) Names() []string {
	out := make([]string, 0, len(s))
	for n := range s {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// CheckMetrics runs `promtool check metrics` on an exposition and fails the
// test with its findings.
func CheckMetrics(t testing.TB, exposition []byte) {
	t.Helper()
	cmd := exec.Command(Binary(t, "promtool"), "check", "metrics")
	cmd.Stdin = bytes.NewReader(exposition)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

// Server is a Prometheus server run for a test on loopback.
type Server struct {
	// URL is the server's base URL (http://127.0.0.1:port).
	URL string
}

// StartServer runs Prometheus scraping target (host:port, path /metrics)
// every 200ms with the given rule files loaded, with a temporary data
// directory, and kills it when the test ends.
func StartServer(t testing.TB, target string, ruleFiles ...string) *Server {
	t.Helper()
	bin := Binary(t, "prometheus")
	dir := t.TempDir()
	var rules strings.Builder
	for _, f := range ruleFiles {
		abs, err := filepath.Abs(f)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&rules, "  - %q\n", abs)
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: 200ms
  scrape_timeout: 200ms
  evaluation_interval: 200ms
rule_files:
%sscrape_configs:
  - job_name: rpcproxy
    static_configs:
      - targets: [%q]
`, rules.String(), target)
	if rules.Len() == 0 {
		cfg = strings.Replace(cfg, "rule_files:\n", "", 1)
	}
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	// Prometheus takes no port 0: pick a free one, retrying if it is taken
	// between the check and the start.
	for attempt := 0; ; attempt++ {
		addr := freeAddr(t)
		var logs bytes.Buffer
		ctx, cancel := context.WithCancel(context.Background())
		cmd := exec.CommandContext(ctx, bin, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
			"--web.listen-address="+addr, "--log.level=warn")
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			cancel()
			t.Fatalf("start prometheus: %v", err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		stop := func() {
			cancel() // kills the process
			<-exited
		}
		s := &Server{URL: "http://" + addr}
		if s.waitReady(exited, 30*time.Second) {
			t.Cleanup(func() {
				stop()
				if t.Failed() {
					t.Logf("prometheus log:\n%s", logs.String())
				}
			})
			return s
		}
		stop()
		if attempt == 2 {
			t.Fatalf("prometheus did not become ready:\n%s", logs.String())
		}
	}
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// waitReady waits for /-/ready to answer 200, or the process to exit.
func (s *Server) waitReady(exited <-chan struct{}, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		default:
		}
		resp, err := http.Get(s.URL + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// Sample is one series of an instant query's result.
type Sample struct {
	Metric map[string]string
	Value  float64
}

// Query runs an instant query through the HTTP API (/api/v1/query).
func (s *Server) Query(t testing.TB, q string) []Sample {
	t.Helper()
	var out struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	s.get(t, "/api/v1/query?query="+url.QueryEscape(q), &out)
	if out.Status != "success" {
		t.Fatalf("query %q: %s %s", q, out.Status, out.Error)
	}
	var samples []Sample
	for _, r := range out.Data.Result {
		var v float64
		if str, ok := r.Value[1].(string); ok {
			fmt.Sscan(str, &v)
		}
		samples = append(samples, Sample{Metric: r.Metric, Value: v})
	}
	return samples
}

// RuleHealth returns each loaded rule's name and health ("ok", "err",
// "unknown" before its first evaluation), from /api/v1/rules.
func (s *Server) RuleHealth(t testing.TB) map[string]string {
	t.Helper()
	var out struct {
		Data struct {
			Groups []struct {
				Rules []struct {
					Name      string `json:"name"`
					Health    string `json:"health"`
					LastError string `json:"lastError"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	s.get(t, "/api/v1/rules", &out)
	health := map[string]string{}
	for _, g := range out.Data.Groups {
		for _, r := range g.Rules {
			health[r.Name] = r.Health + r.LastError
		}
	}
	return health
}

func (s *Server) get(t testing.TB, path string, out any) {
	t.Helper()
	resp, err := http.Get(s.URL + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}
