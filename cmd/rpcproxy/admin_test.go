package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/rpcproxy/rpcproxy/internal/admin"
	"github.com/rpcproxy/rpcproxy/internal/config"
	"github.com/rpcproxy/rpcproxy/internal/fakecli"
	"github.com/rpcproxy/rpcproxy/internal/membership"
)

// adminProxy is runProxy in-process with its admin listener.
type adminProxy struct {
	listen, admin, token string
}

// startAdminProxy runs runProxy with cfg (quick health checks, loopback
// listeners) until the test ends, and waits for the admin listener.
func startAdminProxy(t *testing.T, cfg *config.Config) *adminProxy {
	t.Helper()
	cfg.Listen, cfg.Admin.Listen = freeAddr(t), freeAddr(t)
	cfg.Health.Interval, cfg.Health.Timeout = 100*time.Millisecond, 100*time.Millisecond
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runProxy(ctx, cfg, hclog.NewNullLogger(), nil, configSource{}) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("runProxy: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("runProxy did not stop")
		}
	})
	p := &adminProxy{listen: cfg.Listen, admin: cfg.Admin.Listen, token: cfg.Admin.Token}
	waitFor(t, "the admin listener", func() bool { code, _ := p.do(t, "GET", "/healthz", ""); return code == 200 })
	return p
}

// do sends one admin request with token (when not empty) and returns the
// status code and body; a connection error gives code 0.
func (p *adminProxy) do(t *testing.T, method, path, token string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+p.admin+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// get fetches an admin endpoint that must answer 200 and decodes it.
func (p *adminProxy) get(t *testing.T, path string, out any) {
	t.Helper()
	code, body := p.do(t, "GET", path, p.token)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, code, body)
	}
	if err := json.Unmarshal(body, out); err != nil {
		t.Fatalf("GET %s: %v: %s", path, err, body)
	}
}

func (p *adminProxy) backends(t *testing.T) map[string]admin.Backend {
	t.Helper()
	var list []admin.Backend
	p.get(t, "/v1/backends", &list)
	out := map[string]admin.Backend{}
	for _, b := range list {
		out[b.Address] = b
	}
	return out
}

func (p *adminProxy) session(t *testing.T, id string) admin.Session {
	t.Helper()
	var s admin.Session
	p.get(t, "/v1/sessions/"+id, &s)
	return s
}

func (p *adminProxy) hasEvent(t *testing.T, kind, backend string) bool {
	t.Helper()
	var events []admin.Event
	p.get(t, "/v1/events", &events)
	for _, e := range events {
		if e.Kind == kind && e.Backend == backend {
			return true
		}
	}
	return false
}

func staticFakes(t *testing.T, n int) (*config.Config, []*fakecli.Server) {
	t.Helper()
	store := fakecli.NewStore()
	cfg := config.Default()
	var fakes []*fakecli.Server
	for i := 0; i < n; i++ {
		f, err := fakecli.Listen("127.0.0.1:0", fakecli.Config{Name: fmt.Sprintf("cli-%d", i), Store: store})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		fakes = append(fakes, f)
		cfg.Backends = append(cfg.Backends, config.Backend{Address: f.Addr(), Weight: i + 1})
	}
	return cfg, fakes
}

// The API follows a live pool: a session raises sessions and clients on the
// backend that holds it; a drain over the API takes the backend off the
// ring and moves the session at its next turn; a killed backend shows down;
// with none left /readyz answers 503. Events record each step.
func TestAdminFollowsLivePool(t *testing.T) {
	cfg, fakes := staticFakes(t, 2)
	p := startAdminProxy(t, cfg)
	byName := map[string]string{"cli-0": fakes[0].Addr(), "cli-1": fakes[1].Addr()}

	if code, body := p.do(t, "GET", "/readyz", ""); code != 200 {
		t.Fatalf("/readyz: %d %s", code, body)
	}
	var bs map[string]admin.Backend
	waitFor(t, "both backends checked", func() bool {
		bs = p.backends(t)
		return bs[fakes[0].Addr()].LastCheck.OK && bs[fakes[1].Addr()].LastCheck.OK
	})
	share := 0.0
	for i, f := range fakes {
		b := bs[f.Addr()]
		if b.State != "up" || b.Source != "static" || b.Weight != i+1 || b.Sessions != 0 || b.Clients != 0 ||
			b.Version != "1.0.102" || b.ProtocolVersion != 3 || b.LastCheck.Time == nil {
			t.Fatalf("backend %d: %+v", i, b)
		}
		share += b.Share
	}
	if share < 0.999 || share > 1.001 || bs[fakes[1].Addr()].Share <= bs[fakes[0].Addr()].Share {
		t.Fatalf("shares %v and %v (weights 1 and 2)", bs[fakes[0].Addr()].Share, bs[fakes[1].Addr()].Share)
	}

	// A session raises sessions and clients on the backend holding it.
	c := sdkClient(t, p.listen)
	const sid = "admin-live-1"
	holder := byName[call(t, c, "session.create", map[string]any{"sessionId": sid})["server"].(string)]
	s := p.session(t, sid)
	if s.Owner != holder || s.Backend != holder || s.Clients != 1 || len(s.Holders) != 1 {
		t.Fatalf("session %+v, created on %s", s, holder)
	}
	bs = p.backends(t)
	if b := bs[holder]; b.Sessions != 1 || b.Clients != 1 {
		t.Fatalf("holder after create: %+v", b)
	}
	var sum admin.Summary
	p.get(t, "/v1/summary", &sum)
	if sum.Clients != 1 || sum.Sessions != 1 || sum.Backends != 2 || sum.Up != 2 || !sum.Ready {
		t.Fatalf("summary %+v", sum)
	}
	turnOn(t, c, sid, "first")

	// Drain the holder over the API: off the ring now, the session moves at
	// its next turn.
	if code, body := p.do(t, "POST", "/v1/backends/"+holder+"/drain", ""); code != 200 {
		t.Fatalf("drain: %d %s", code, body)
	}
	bs = p.backends(t)
	if b := bs[holder]; b.State != "draining" || b.Share != 0 || !b.AdminDrain {
		t.Fatalf("drained holder: %+v", b)
	}
	other := fakes[0].Addr()
	if other == holder {
		other = fakes[1].Addr()
	}
	if s := p.session(t, sid); s.Owner != other || s.Backend != holder {
		t.Fatalf("after drain, before the next turn: %+v", s)
	}
	turnOn(t, c, sid, "after drain")
	if s := p.session(t, sid); s.Backend != other {
		t.Fatalf("after the next turn the session is on %s, want %s", s.Backend, other)
	}
	bs = p.backends(t)
	if bs[holder].Sessions != 0 || bs[other].Sessions != 1 {
		t.Fatalf("sessions after the move: holder %d, other %d", bs[holder].Sessions, bs[other].Sessions)
	}
	if !p.hasEvent(t, admin.KindDrain, holder) || !p.hasEvent(t, admin.KindMove, holder) || !p.hasEvent(t, admin.KindState, holder) {
		t.Fatal("drain, move or state event missing")
	}
	if code, _ := p.do(t, "POST", "/v1/backends/"+holder+"/undrain", ""); code != 200 {
		t.Fatal("undrain failed")
	}
	if b := p.backends(t)[holder]; b.State != "up" || b.AdminDrain {
		t.Fatalf("undrained: %+v", b)
	}
	if code, _ := p.do(t, "POST", "/v1/backends/127.0.0.1:1/drain", ""); code != 404 {
		t.Fatalf("drain of an unknown backend: %d", code)
	}

	// The backend holding the session is killed: it shows down within the
	// health timing, and the session fails over at its next request.
	fakeAt := map[string]*fakecli.Server{fakes[0].Addr(): fakes[0], fakes[1].Addr(): fakes[1]}
	fakeAt[other].Close()
	waitFor(t, "the killed backend down", func() bool { return p.backends(t)[other].State == "down" })
	if b := p.backends(t)[other]; b.LastCheck.OK || b.LastCheck.Error == "" {
		t.Fatalf("down backend's last check: %+v", b.LastCheck)
	}
	if code, _ := p.do(t, "GET", "/readyz", ""); code != 200 {
		t.Fatal("not ready with one backend left")
	}
	turnOn(t, c, sid, "after the crash")
	if s := p.session(t, sid); s.Backend != holder || s.Owner != holder {
		t.Fatalf("after failover: %+v, want on %s", s, holder)
	}
	if !p.hasEvent(t, admin.KindFailover, other) {
		t.Fatal("no failover event")
	}
	p.get(t, "/v1/summary", &sum)
	if sum.Up != 1 || sum.Down != 1 || sum.Sessions != 1 {
		t.Fatalf("summary after the crash: %+v", sum)
	}
	// Turns ran: the summary's turn percentiles and, a second after the
	// first summary, its request rate are numbers, not null.
	if sum.TurnP50MS == nil || sum.TurnP99MS == nil || *sum.TurnP50MS <= 0 || *sum.TurnP99MS < *sum.TurnP50MS {
		t.Fatalf("turn percentiles after three turns: %v %v", sum.TurnP50MS, sum.TurnP99MS)
	}
	waitFor(t, "a request rate in the summary", func() bool {
		time.Sleep(200 * time.Millisecond)
		var again admin.Summary
		p.get(t, "/v1/summary", &again)
		return again.RequestsPerSecond != nil && again.ErrorRate != nil
	})
	fakeAt[holder].Close()
	waitFor(t, "/readyz 503", func() bool { code, _ := p.do(t, "GET", "/readyz", ""); return code == 503 })
	if code, _ := p.do(t, "GET", "/healthz", ""); code != 200 {
		t.Fatal("/healthz failed while the process serves")
	}
}

// With admin.token set, every endpoint but /healthz and /readyz wants the
// bearer token.
func TestAdminToken(t *testing.T) {
	cfg, _ := staticFakes(t, 1)
	cfg.Admin.Token = "s3cret-admin"
	p := startAdminProxy(t, cfg)
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, _ := p.do(t, "GET", path, ""); code != 200 {
			t.Fatalf("%s without a token: %d", path, code)
		}
	}
	for _, ep := range []struct{ method, path string }{
		{"GET", "/v1/backends"}, {"GET", "/v1/sessions/x"}, {"GET", "/v1/members"},
		{"GET", "/v1/events"}, {"GET", "/v1/summary"}, {"GET", "/metrics"},
		{"POST", "/v1/backends/" + cfg.Backends[0].Address + "/drain"},
	} {
		for _, token := range []string{"", "wrong", "s3cret-admin2", "s3cret-admi"} {
			if code, _ := p.do(t, ep.method, ep.path, token); code != http.StatusUnauthorized {
				t.Fatalf("%s %s with token %q: %d, want 401", ep.method, ep.path, token, code)
			}
		}
	}
	if b := p.backends(t)[cfg.Backends[0].Address]; b.State != "up" {
		t.Fatalf("a refused drain changed the backend: %+v", b)
	}
	if code, _ := p.do(t, "GET", "/v1/summary", "s3cret-admin"); code != 200 {
		t.Fatalf("with the token: %d", code)
	}
}

// A proxy and an agent on loopback: /v1/members lists both with their role
// and status, and /v1/backends the agent's CLI with source gossip.
func TestAdminMembers(t *testing.T) {
	cfg := gossipTestConfig(nil, nil)
	cfg.Gossip.Bind = freeAddr(t)
	p := startAdminProxy(t, cfg)
	cli, _, _ := startTestAgent(t, []string{cfg.Gossip.Bind}, nil)
	var members []admin.Member
	waitFor(t, "two members", func() bool { p.get(t, "/v1/members", &members); return len(members) == 2 })
	roles := map[string]admin.Member{}
	for _, m := range members {
		roles[m.Role] = m
	}
	if m := roles[string(membership.RoleProxy)]; m.Status != "alive" || m.Address != cfg.Gossip.Bind {
		t.Fatalf("proxy member %+v", m)
	}
	waitFor(t, "the agent healthy", func() bool {
		p.get(t, "/v1/members", &members)
		for _, m := range members {
			if m.Role == string(membership.RoleBackend) && m.Status == "healthy" && m.Backend == cli.Addr() {
				return true
			}
		}
		return false
	})
	if b, ok := p.backends(t)[cli.Addr()]; !ok || b.Source != "gossip" {
		t.Fatalf("gossip backend: %+v", b)
	}
}

// `rpcproxy status` prints the live backends as an aligned table.
func TestStatusCommand(t *testing.T) {
	cfg, fakes := staticFakes(t, 2)
	cfg.Admin.Token = "tok"
	p := startAdminProxy(t, cfg)
	waitFor(t, "both backends checked", func() bool {
		bs := p.backends(t)
		return bs[fakes[0].Addr()].LastCheck.OK && bs[fakes[1].Addr()].LastCheck.OK
	})
	var out, errOut bytes.Buffer
	if code := run([]string{"status", "--admin", p.admin}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "401") {
		t.Fatalf("without the token: exit %d, %q", code, errOut.String())
	}
	t.Setenv(config.EnvAdminToken, "tok")
	out.Reset()
	if code := run([]string{"status", "--admin", p.admin}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("want a header and 2 rows:\n%s", out.String())
	}
	header := lines[0]
	for _, col := range []string{"ADDRESS", "STATE", "SOURCE", "WEIGHT", "SHARE", "SESSIONS", "CLIENTS", "LAST CHECK", "VERSION"} {
		if !strings.Contains(header, col) {
			t.Fatalf("header lacks %s: %q", col, header)
		}
	}
	col := strings.Index(header, "STATE")
	for i, f := range fakes {
		row := lines[1]
		if !strings.HasPrefix(row, f.Addr()) {
			row = lines[2]
		}
		if !strings.HasPrefix(row, f.Addr()) || !strings.HasPrefix(row[col:], "up ") || !strings.Contains(row, "static") ||
			!strings.Contains(row, "ok ") || !strings.Contains(row, "1.0.102 (protocol 3)") {
			t.Fatalf("row %d not aligned or incomplete:\n%s", i, out.String())
		}
	}
}

// `rpcproxy keygen` prints a key that gossip.encrypt takes.
func TestKeygenCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"keygen"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	key := strings.TrimSpace(out.String())
	keys, err := membership.ParseKeys([]string{key})
	if err != nil || len(keys) != 1 || len(keys[0]) != 32 {
		t.Fatalf("ParseKeys(%q) = %d keys, %v", key, len(keys), err)
	}
	cfg := config.Default()
	cfg.Gossip.Bind, cfg.Gossip.Encrypt = "127.0.0.1:0", []string{key}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	run([]string{"keygen"}, &out, &errOut)
	if strings.TrimSpace(out.String()) == key {
		t.Fatal("two runs printed the same key")
	}
}

// `rpcproxy validate` exits 0 on a good file, 1 with the line on a bad
// value or a syntax error.
func TestValidateCommand(t *testing.T) {
	t.Setenv(config.EnvGossipKeys, "")
	dir := t.TempDir()
	tests := []struct {
		name, src string
		code      int
		want      string
	}{
		{"good", "listen = \"127.0.0.1:4321\"\nadmin { listen = \"127.0.0.1:9090\" }\n", 0, "ok"},
		{"bad value", "listen = \"127.0.0.1:4321\"\nhealth {\n  rise = 0\n}\n", 1, ":3:3: health.rise: must be > 0"},
		{"syntax error", "listen = \"127.0.0.1:4321\"\n\nlimits {\n", 1, ":3:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".hcl")
			if err := os.WriteFile(path, []byte(tt.src), 0o600); err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			code := run([]string{"validate", "--config", path}, &out, &out)
			if code != tt.code || !strings.Contains(out.String(), tt.want) {
				t.Fatalf("exit %d, output %q; want %d and %q", code, out.String(), tt.code, tt.want)
			}
		})
	}
}
