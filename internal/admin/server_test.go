package admin

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// fakeSource is a Source with fixed answers.
type fakeSource struct {
	routable int
}

func (f *fakeSource) Backends() []Backend {
	return []Backend{{Address: "127.0.0.1:4322", State: "up", Source: "static", Weight: 1, Share: 1}}
}
func (f *fakeSource) Session(id string) Session { return Session{ID: id, Owner: "127.0.0.1:4322"} }
func (f *fakeSource) SetDrain(address string, _ bool) error {
	if address != "127.0.0.1:4322" {
		return ErrUnknownBackend
	}
	return nil
}
func (f *fakeSource) Members() []Member { return nil }
func (f *fakeSource) Routable() int     { return f.routable }
func (f *fakeSource) Summary() Summary  { return Summary{} }

func request(t *testing.T, h http.Handler, method, path, auth string) (int, string) {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

// The token is required as a bearer token, exactly, by everything but the
// health endpoints.
func TestAuth(t *testing.T) {
	s := New(Config{Source: &fakeSource{routable: 1}, Token: "tok"})
	h := s.Handler()
	for _, auth := range []string{"", "tok", "Bearer", "Bearer ", "Bearer tok2", "Bearer to", "bearer tok", "Basic tok"} {
		if code, _ := request(t, h, "GET", "/v1/backends", auth); code != http.StatusUnauthorized {
			t.Errorf("Authorization %q: %d, want 401", auth, code)
		}
	}
	if code, body := request(t, h, "GET", "/v1/backends", "Bearer tok"); code != 200 || !strings.Contains(body, `"address": "127.0.0.1:4322"`) {
		t.Errorf("with the token: %d %s", code, body)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, _ := request(t, h, "GET", path, ""); code != 200 {
			t.Errorf("%s without a token: %d", path, code)
		}
	}
}

// /readyz answers 503 with no routable backend, and from SetDraining on.
func TestReadyz(t *testing.T) {
	src := &fakeSource{}
	s := New(Config{Source: src})
	if code, _ := request(t, s.Handler(), "GET", "/readyz", ""); code != 503 {
		t.Fatalf("no routable backend: %d", code)
	}
	src.routable = 2
	if code, _ := request(t, s.Handler(), "GET", "/readyz", ""); code != 200 {
		t.Fatalf("two routable backends: %d", code)
	}
	s.SetDraining()
	if code, body := request(t, s.Handler(), "GET", "/readyz", ""); code != 503 || !strings.Contains(body, "shutting down") {
		t.Fatalf("shutting down: %d %s", code, body)
	}
	if code, _ := request(t, s.Handler(), "GET", "/healthz", ""); code != 200 {
		t.Fatalf("/healthz while shutting down: %d", code)
	}
}

// Wrong methods and unknown paths are refused; /metrics is 404 without a
// handler and the handler's answer with one; a drain of an unknown backend
// is 404 and records no event.
func TestRoutes(t *testing.T) {
	events := NewEvents(0)
	s := New(Config{Source: &fakeSource{routable: 1}, Events: events})
	h := s.Handler()
	for _, tt := range []struct {
		method, path string
		code         int
	}{
		{"POST", "/v1/backends", 405},
		{"GET", "/v1/backends/127.0.0.1:4322/drain", 405},
		{"GET", "/v1/nothing", 404},
		{"GET", "/metrics", 404},
		{"POST", "/v1/backends/127.0.0.1:9/drain", 404},
		{"POST", "/v1/backends/127.0.0.1:4322/drain", 200},
		{"GET", "/", 200},
		{"GET", "/v1/members", 200},
	} {
		if code, body := request(t, h, tt.method, tt.path, ""); code != tt.code {
			t.Errorf("%s %s: %d %s, want %d", tt.method, tt.path, code, body, tt.code)
		}
	}
	if got := events.Last(); len(got) != 1 || got[0].Kind != KindDrain || got[0].Backend != "127.0.0.1:4322" {
		t.Fatalf("events %+v", got)
	}
	if _, body := request(t, h, "GET", "/v1/members", ""); strings.TrimSpace(body) != "[]" {
		t.Fatalf("members without gossip: %s", body)
	}
	m := New(Config{Source: &fakeSource{}, Metrics: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "up 1\n") })})
	if code, body := request(t, m.Handler(), "GET", "/metrics", ""); code != 200 || body != "up 1\n" {
		t.Fatalf("/metrics: %d %q", code, body)
	}
}

// The ring keeps the last n events, oldest first.
func TestEventsRing(t *testing.T) {
	e := NewEvents(3)
	if got := e.Last(); got == nil || len(got) != 0 {
		t.Fatalf("empty ring: %#v", got)
	}
	for i := 0; i < 5; i++ {
		e.Add(KindState, fmt.Sprint(i), "")
	}
	got := e.Last()
	if len(got) != 3 || got[0].Backend != "2" || got[2].Backend != "4" {
		t.Fatalf("last 3 of 5: %+v", got)
	}
	if n := len(NewEvents(0).buf); n != DefaultEvents {
		t.Fatalf("default size %d", n)
	}
	var none *Events
	none.Add(KindState, "x", "")
	if got := none.Last(); len(got) != 0 {
		t.Fatal("nil ring lists events")
	}
}

// Rates come from counter deltas over at least a second; in between the
// last rates repeat.
func TestRateMeter(t *testing.T) {
	var m rateMeter
	t0 := time.Unix(1000, 0)
	if r, e := m.sample(t0, 100, 0); r != nil || e != nil {
		t.Fatal("rates before a first interval")
	}
	r, e := m.sample(t0.Add(2*time.Second), 300, 20)
	if r == nil || *r != 100 || *e != 0.1 {
		t.Fatalf("rates %v %v, want 100/s and 0.1", r, e)
	}
	r, e = m.sample(t0.Add(2500*time.Millisecond), 10000, 10000)
	if *r != 100 || *e != 0.1 {
		t.Fatalf("within a second the rates changed: %v %v", *r, *e)
	}
}

// Close stops Start's listener and waits for it; a nil Server is off.
func TestStartClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := New(Config{Source: &fakeSource{routable: 1}})
	s.Start(ln)
	resp, err := http.Get("http://" + ln.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		t.Fatal("still listening after Close")
	}
	var off *Server
	off.SetDraining()
	if err := off.Close(); err != nil {
		t.Fatal(err)
	}
}
