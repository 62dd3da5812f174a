package proxy

import (
	"io"
	"net"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rpcproxy/rpcproxy/internal/frame"
	"github.com/rpcproxy/rpcproxy/internal/metrics"
	"github.com/rpcproxy/rpcproxy/internal/metrics/promtest"
)

var _ Observer = (*metrics.Proxy)(nil)

// newMetricsCluster is a cluster with metrics on, served on a loopback
// HTTP server as the admin listener will: it returns the /metrics URL.
func newMetricsCluster(t *testing.T, o clusterOptions) (*cluster, string) {
	t.Helper()
	o.metrics = metrics.New()
	c := newCluster(t, o)
	o.metrics.Watch(metrics.Sources{Clients: c.srv.Clients, Sessions: c.srv.Sessions, Panics: c.srv.Panics,
		Status: c.checker.Status, Ring: c.table.Ring})
	hs := httptest.NewServer(o.metrics.Handler())
	t.Cleanup(hs.Close)
	return c, hs.URL + "/metrics"
}

// TestMetricsFollowTraffic: against a live pool of fake CLI servers, the
// numbers move as an operator expects: a session raises the sessions of
// the backend that holds it, a turn counts requests, latencies and a turn,
// a refused method counts its error code, a killed backend goes down
// within the health timing, and the session's next turn counts a failover.
func TestMetricsFollowTraffic(t *testing.T) {
	c, url := newMetricsCluster(t, clusterOptions{sharedStore: true})
	scrape := func() promtest.Scrape { s, _ := promtest.Get(t, url); return s }

	cl := c.client()
	createSession(t, cl, "metrics-1")
	holder := c.holder("metrics-1")
	if holder == nil {
		t.Fatal("no backend holds the session")
	}
	s := scrape()
	for _, f := range c.fakes {
		want := 0.0
		if f == holder {
			want = 1
		}
		if got := s.Must(t, "rpcproxy_backend_sessions", "backend", f.Addr()); got != want {
			t.Errorf("sessions on %s = %v, want %v", f.Addr(), got, want)
		}
		if got := s.Must(t, "rpcproxy_backend_up", "backend", f.Addr()); got != 1 {
			t.Errorf("backend_up %s = %v before any failure", f.Addr(), got)
		}
	}
	if got := s.Must(t, "rpcproxy_client_connections"); got != 1 {
		t.Errorf("client_connections = %v, want 1", got)
	}

	before := s.Must(t, "rpcproxy_backend_requests_total", "backend", holder.Addr(), "class", "session")
	turn(t, cl, "metrics-1", "hello")
	s = scrape()
	if got := s.Must(t, "rpcproxy_backend_requests_total", "backend", holder.Addr(), "class", "session"); got != before+1 {
		t.Errorf("session requests to the holder: %v after a turn, want %v", got, before+1)
	}
	if got := s.Must(t, "rpcproxy_turn_duration_seconds"); got != 1 {
		t.Errorf("turn_duration_seconds count = %v after one turn, want 1", got)
	}
	if got := s.Must(t, "rpcproxy_backend_request_duration_seconds", "backend", holder.Addr()); got < 2 {
		t.Errorf("request latencies observed on the holder: %v, want create and send at least", got)
	}
	for _, dir := range []string{"from_client", "to_client", "from_backend", "to_backend"} {
		if s.Must(t, "rpcproxy_frames_total", "direction", dir) == 0 || s.Must(t, "rpcproxy_frame_bytes_total", "direction", dir) == 0 {
			t.Errorf("no frames or bytes counted %s", dir)
		}
	}

	if m := cl.call("runtime.shutdown", map[string]any{}); m.Error == nil || m.Error.Code != -32601 {
		t.Fatalf("runtime.shutdown: %+v", m.Error)
	}
	s = scrape()
	if got := s.Must(t, "rpcproxy_error_answers_total", "code", "-32601"); got != 1 {
		t.Errorf("error answers -32601 = %v after a refused method, want 1", got)
	}
	if got := s.Must(t, "rpcproxy_client_requests_total", "class", "refused"); got != 1 {
		t.Errorf("refused-class requests = %v, want 1", got)
	}

	// Kill the holder: it goes down within fall × interval (+ a timeout);
	// 10s leaves the race detector room.
	holder.Close()
	eventually(t, 10*time.Second, "the killed backend's backend_up to go to 0", func() bool {
		v, _ := scrape().Value("rpcproxy_backend_up", "backend", holder.Addr())
		return v == 0
	})
	s = scrape()
	if got := s.Must(t, "rpcproxy_backend_state", "backend", holder.Addr(), "state", "down"); got != 1 {
		t.Errorf("backend_state{state=down} = %v", got)
	}
	if got := s.Must(t, "rpcproxy_health_checks_total", "backend", holder.Addr(), "result", "failed"); got < 1 {
		t.Errorf("failed checks of the killed backend: %v", got)
	}
	if got := s.Must(t, "rpcproxy_ring_backends"); got != 2 {
		t.Errorf("ring_backends = %v with one of 3 down", got)
	}
	if got := s.Must(t, "rpcproxy_backend_ring_share_ratio", "backend", holder.Addr()); got != 0 {
		t.Errorf("the down backend's ring share = %v", got)
	}

	turn(t, cl, "metrics-1", "again")
	s = scrape()
	if got := s.Must(t, "rpcproxy_failovers_total"); got != 1 {
		t.Errorf("failovers = %v after the session's next turn, want 1", got)
	}
	if got := s.Must(t, "rpcproxy_backend_sessions", "backend", holder.Addr()); got != 0 {
		t.Errorf("the killed backend still holds %v sessions", got)
	}
	moved := c.holder("metrics-1")
	if got := s.Must(t, "rpcproxy_backend_sessions", "backend", moved.Addr()); got != 1 {
		t.Errorf("sessions on the new holder = %v, want 1", got)
	}

	// What a live proxy exposes passes promtool's checks.
	_, body := promtest.Get(t, url)
	promtest.CheckMetrics(t, body)

	// A client whose framing breaks (a header line that is not a header)
	// is closed: a refusal. (A whole frame of bad JSON only gets -32700.)
	bad, err := net.Dial("tcp", c.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	if _, err := bad.Write([]byte("this is no header\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "a refusal for bad input", func() bool {
		v, _ := scrape().Value("rpcproxy_client_connections_refused_total", "reason", "bad_input")
		return v == 1
	})
}

// TestMetricsScrapedByPrometheus: a real Prometheus server scrapes the
// handler in front of a live pool, answers queries on it, and evaluates
// the shipped alert rules without error.
func TestMetricsScrapedByPrometheus(t *testing.T) {
	c, url := newMetricsCluster(t, clusterOptions{})
	cl := c.client()
	createSession(t, cl, "prom-1")
	target := strings.TrimSuffix(strings.TrimPrefix(url, "http://"), "/metrics")
	prom := promtest.StartServer(t, target, "../../deploy/prometheus/alerts.yml")
	eventually(t, 30*time.Second, "Prometheus to scrape rpcproxy (up == 1)", func() bool {
		up := prom.Query(t, "up")
		return len(up) == 1 && up[0].Value == 1
	})
	eventually(t, 10*time.Second, "rpcproxy_backend_up of 3 backends in Prometheus", func() bool {
		r := prom.Query(t, "sum(rpcproxy_backend_up)")
		return len(r) == 1 && r[0].Value == 3
	})
	r := prom.Query(t, "sum(rpcproxy_backend_sessions)")
	if len(r) != 1 || r[0].Value != 1 {
		t.Errorf("sum(rpcproxy_backend_sessions) = %+v, want 1", r)
	}
	eventually(t, 10*time.Second, "the alert rules to be evaluated", func() bool {
		h := prom.RuleHealth(t)
		if len(h) == 0 {
			return false
		}
		for name, health := range h {
			if health != "ok" {
				if health != "unknown" {
					t.Fatalf("alert rule %s: %s", name, health)
				}
				return false
			}
		}
		return true
	})
}

// TestSendAllocatesNothingWithMetrics: the write of a frame to a client
// still allocates nothing with metrics on.
func TestSendAllocatesNothingWithMetrics(t *testing.T) {
	c := &clientConn{w: frame.NewWriter(io.Discard), obs: metrics.New().Proxy}
	body := []byte(`{"jsonrpc":"2.0","id":12,"result":{"messageId":"81e9b882-8838-4be1-8ed9-a014c444ece0"}}`)
	var m frame.Meta
	if err := frame.Scan(body, &m); err != nil {
		t.Fatal(err)
	}
	client := makeRawID([]byte(`"5c1e4f0a-9a3b-4c52-8d7e-2f1b6a0c9d11"`))
	send := func() {
		buf := frame.Get(len(body))
		buf.B = append(buf.B[:0], body...)
		if !c.send(outFrame{buf: buf, idStart: m.ID.Start, idEnd: m.ID.End, id: client}, false) {
			t.Fatal("send failed")
		}
	}
	send()
	if n := testing.AllocsPerRun(200, send); n != 0 {
		t.Errorf("send with metrics allocates %v times per frame", n)
	}
}

// TestObserverNames: the refusal and limit names the proxy passes are ones
// internal/metrics gives a series of their own (not "other").
func TestObserverNames(t *testing.T) {
	for _, name := range []string{limitMaxPending, limitOpeningQueue, limitMoveQueue, limitFrameSize} {
		if !slices.Contains(metrics.Limits, name) {
			t.Errorf("limit %q is not in metrics.Limits", name)
		}
	}
	for _, name := range []string{refusedClosing, refusedHandshakeTimeout, refusedAuth, refusedBadInput} {
		if !slices.Contains(metrics.RefusalReasons, name) {
			t.Errorf("refusal reason %q is not in metrics.RefusalReasons", name)
		}
	}
}

func TestErrorCode(t *testing.T) {
	for body, want := range map[string]int{
		`{"jsonrpc":"2.0","id":3,"error":{"code":-32601,"message":"x"}}`:            -32601,
		`{"jsonrpc":"2.0","id":3,"error":{"message":"\"code\": 5","code": -32000}}`: -32000,
		`{"jsonrpc":"2.0","id":3,"error":{"message":"no code"}}`:                    -1,
	} {
		if got := errorCode([]byte(body)); got != want {
			t.Errorf("errorCode(%s) = %d, want %d", body, got, want)
		}
	}
}

// BenchmarkSendToClient is one frame written to a client with its id
// rewritten, with metrics off and on: what metrics cost per frame there.
func BenchmarkSendToClient(b *testing.B) {
	body := []byte(`{"jsonrpc":"2.0","id":12,"result":{"messageId":"81e9b882-8838-4be1-8ed9-a014c444ece0"}}`)
	var m frame.Meta
	if err := frame.Scan(body, &m); err != nil {
		b.Fatal(err)
	}
	client := makeRawID([]byte(`"5c1e4f0a-9a3b-4c52-8d7e-2f1b6a0c9d11"`))
	for _, on := range []bool{false, true} {
		name := "metrics-off"
		c := &clientConn{w: frame.NewWriter(io.Discard)}
		if on {
			name, c.obs = "metrics-on", metrics.New().Proxy
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				buf := frame.Get(len(body))
				buf.B = append(buf.B[:0], body...)
				c.send(outFrame{buf: buf, idStart: m.ID.Start, idEnd: m.ID.End, id: client}, false)
			}
		})
	}
}
