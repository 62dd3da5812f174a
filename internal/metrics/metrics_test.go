package metrics

import (
	"errors"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rpcproxy/rpcproxy/internal/health"
	"github.com/rpcproxy/rpcproxy/internal/membership"
	"github.com/rpcproxy/rpcproxy/internal/metrics/promtest"
	"github.com/rpcproxy/rpcproxy/internal/router"
)

// alertsFile is the alert rules shipped for operators.
const alertsFile = "../../deploy/prometheus/alerts.yml"

// fixture is a registry with every metric given a value: two backends (one
// down), a ring over the other, gossip members, and one of each event.
func fixture(t *testing.T) (*Metrics, *httptest.Server) {
	t.Helper()
	m := New()
	a := &router.Backend{Name: "10.0.0.1:4321", Addr: "10.0.0.1:4321"}
	b := &router.Backend{Name: "10.0.0.2:4321", Addr: "10.0.0.2:4321"}
	ring, err := router.NewRing([]*router.Backend{a}, router.RingConfig{})
	if err != nil {
		t.Fatal(err)
	}
	m.Watch(Sources{
		Clients:  func() int { return 3 },
		Sessions: func() map[string]int { return map[string]int{a.Name: 5, "gone:1": 1} },
		Panics:   func() uint64 { return 0 },
		Status: func() []health.BackendStatus {
			return []health.BackendStatus{{Name: a.Name, State: health.StateUp, Weight: 1}, {Name: b.Name, State: health.StateDown, Weight: 2}}
		},
		Ring: func() *router.Ring { return ring },
		Members: func() []membership.Member {
			return []membership.Member{{Name: "p", Meta: membership.Meta{Role: membership.RoleProxy}},
				{Name: "a", Meta: membership.Meta{Role: membership.RoleBackend}}, {Name: "x", MetaErr: errors.New("newer")}}
		},
	})
	p := m.Proxy
	p.ClientAccepted()
	p.ClientRefused(RefusedAuth)
	p.ClientRequest(router.ClassSession)
	p.FromClient(100)
	p.ToClient(200)
	p.ErrorAnswer(-32601)
	p.ErrorAnswer(7)
	p.TurnEnded(1500 * time.Millisecond)
	p.Failover()
	p.TurnBoundaryMove()
	p.LimitHit(LimitMaxConnections)
	be := p.Backend(a.Name)
	be.Request(router.ClassSession)
	be.Answered(3 * time.Millisecond)
	be.FromBackend(300)
	be.ToBackend(400)
	m.Health.Check(a.Name, time.Millisecond, nil)
	m.Health.Check(b.Name, time.Second, errors.New("refused"))
	srv := httptest.NewServer(m.Handler())
	t.Cleanup(srv.Close)
	return m, srv
}

// TestExpositionFollowsConventions: the exposition passes client_golang's
// linter and promtool's (names, units, _total on counters, help text).
func TestExpositionFollowsConventions(t *testing.T) {
	m, srv := fixture(t)
	problems, err := testutil.GatherAndLint(m.Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	_, body := promtest.Get(t, srv.URL)
	promtest.CheckMetrics(t, body)
}

// TestValues: each source and event shows up where the README says.
func TestValues(t *testing.T) {
	_, srv := fixture(t)
	s, _ := promtest.Get(t, srv.URL)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"rpcproxy_client_connections", nil, 3},
		{"rpcproxy_client_connections_accepted_total", nil, 1},
		{"rpcproxy_client_connections_refused_total", []string{"reason", "auth_failed"}, 1},
		{"rpcproxy_client_connections_refused_total", []string{"reason", "closing"}, 0},
		{"rpcproxy_client_requests_total", []string{"class", "session"}, 1},
		{"rpcproxy_frames_total", []string{"direction", "to_backend"}, 1},
		{"rpcproxy_frame_bytes_total", []string{"direction", "from_backend"}, 300},
		{"rpcproxy_frame_bytes_total", []string{"direction", "to_client"}, 200},
		{"rpcproxy_error_answers_total", []string{"code", "-32601"}, 1},
		{"rpcproxy_error_answers_total", []string{"code", "other"}, 1},
		{"rpcproxy_turn_duration_seconds", nil, 1},
		{"rpcproxy_failovers_total", nil, 1},
		{"rpcproxy_turn_boundary_moves_total", nil, 1},
		{"rpcproxy_limit_hits_total", []string{"limit", "max_connections"}, 1},
		{"rpcproxy_limit_hits_total", []string{"limit", "other"}, 0},
		{"rpcproxy_backend_requests_total", []string{"backend", "10.0.0.1:4321", "class", "session"}, 1},
		{"rpcproxy_backend_request_duration_seconds", []string{"backend", "10.0.0.1:4321"}, 1},
		{"rpcproxy_backend_sessions", []string{"backend", "10.0.0.1:4321"}, 5},
		{"rpcproxy_backend_sessions", []string{"backend", "10.0.0.2:4321"}, 0},
		{"rpcproxy_backend_sessions", []string{"backend", "gone:1"}, 1},
		{"rpcproxy_backend_up", []string{"backend", "10.0.0.1:4321"}, 1},
		{"rpcproxy_backend_up", []string{"backend", "10.0.0.2:4321"}, 0},
		{"rpcproxy_backend_state", []string{"backend", "10.0.0.2:4321", "state", "down"}, 1},
		{"rpcproxy_backend_state", []string{"backend", "10.0.0.2:4321", "state", "up"}, 0},
		{"rpcproxy_backend_weight", []string{"backend", "10.0.0.2:4321"}, 2},
		{"rpcproxy_backend_ring_share_ratio", []string{"backend", "10.0.0.1:4321"}, 1},
		{"rpcproxy_backend_ring_share_ratio", []string{"backend", "10.0.0.2:4321"}, 0},
		{"rpcproxy_ring_backends", nil, 1},
		{"rpcproxy_gossip_members", []string{"role", "proxy"}, 1},
		{"rpcproxy_gossip_members", []string{"role", "backend"}, 1},
		{"rpcproxy_gossip_members", []string{"role", "unknown"}, 1},
		{"rpcproxy_health_checks_total", []string{"backend", "10.0.0.2:4321", "result", "failed"}, 1},
		{"rpcproxy_health_check_duration_seconds", []string{"backend", "10.0.0.1:4321"}, 1},
	} {
		if got := s.Must(t, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	for _, std := range []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "process_resident_memory_bytes"} {
		if _, ok := s[std]; !ok {
			t.Errorf("standard metric %s missing", std)
		}
	}
}

// TestLabelsBounded: names a peer or a caller controls fall in "other".
func TestLabelsBounded(t *testing.T) {
	m := New()
	p := m.Proxy
	for i := range 100 {
		p.ErrorAnswer(-40000 - i)
		p.LimitHit("limit-" + strings.Repeat("x", i))
		p.ClientRefused("reason-" + strings.Repeat("y", i))
	}
	if n := testutil.CollectAndCount(m.Registry(), "rpcproxy_error_answers_total"); n != len(knownErrorCodes)+1 {
		t.Errorf("%d error code series, want %d", n, len(knownErrorCodes)+1)
	}
	if n := testutil.CollectAndCount(m.Registry(), "rpcproxy_limit_hits_total"); n != len(Limits) {
		t.Errorf("%d limit series, want %d", n, len(Limits))
	}
	if n := testutil.CollectAndCount(m.Registry(), "rpcproxy_client_connections_refused_total"); n != len(RefusalReasons) {
		t.Errorf("%d refusal series, want %d", n, len(RefusalReasons))
	}
}

// TestHotPathAllocatesNothing: what the proxy calls per frame, request and
// answer allocates nothing (the proxy's own path is guarded by
// TestSendAllocatesNothing, with and without metrics).
func TestHotPathAllocatesNothing(t *testing.T) {
	p := New().Proxy
	b := p.Backend("10.0.0.1:4321")
	for name, f := range map[string]func(){
		"FromClient":    func() { p.FromClient(120) },
		"ToClient":      func() { p.ToClient(120) },
		"ClientRequest": func() { p.ClientRequest(router.ClassSession) },
		"ErrorAnswer":   func() { p.ErrorAnswer(-32030); p.ErrorAnswer(12) },
		"TurnEnded":     func() { p.TurnEnded(time.Second) },
		"LimitHit":      func() { p.LimitHit(LimitMaxPendingRequests); p.LimitHit("unlisted") },
		"Request":       func() { b.Request(router.ClassSession) },
		"Answered":      func() { b.Answered(time.Millisecond) },
		"FromBackend":   func() { b.FromBackend(4096) },
		"ToBackend":     func() { b.ToBackend(4096) },
	} {
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s allocates %v times per call", name, n)
		}
	}
}

// TestAlertRules: deploy/prometheus/alerts.yml passes promtool, and every
// rpcproxy metric it uses exists.
func TestAlertRules(t *testing.T) {
	out, err := exec.Command(promtest.Binary(t, "promtool"), "check", "rules", alertsFile).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	rules, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	_, srv := fixture(t)
	s, _ := promtest.Get(t, srv.URL)
	used := regexp.MustCompile(`rpcproxy_[a-z_]+`).FindAllString(string(rules), -1)
	if len(used) == 0 {
		t.Fatal("the alert rules use no rpcproxy metric")
	}
	for _, name := range used {
		if _, ok := s[name]; !ok {
			t.Errorf("alert rules use %s, which rpcproxy does not expose", name)
		}
	}
}

// TurnQuantiles follows the turn histogram: nothing before the first turn,
// then estimates inside the buckets the turns fell in.
func TestTurnQuantiles(t *testing.T) {
	m := New()
	if _, _, ok := m.Proxy.TurnQuantiles(); ok {
		t.Fatal("quantiles before any turn")
	}
	for i := 0; i < 98; i++ {
		m.Proxy.TurnEnded(70 * time.Millisecond) // the (0.05, 0.1] bucket
	}
	m.Proxy.TurnEnded(3 * time.Second) // (2.5, 5]
	m.Proxy.TurnEnded(3 * time.Second)
	p50, p99, ok := m.Proxy.TurnQuantiles()
	if !ok || p50 <= 50*time.Millisecond || p50 > 100*time.Millisecond || p99 <= 2500*time.Millisecond || p99 > 5*time.Second {
		t.Fatalf("p50 %v p99 %v ok %v", p50, p99, ok)
	}
}
