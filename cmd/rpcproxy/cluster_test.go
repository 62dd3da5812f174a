package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rpcproxy/rpcproxy/internal/admin"
	"github.com/rpcproxy/rpcproxy/internal/fakecli"
	"github.com/rpcproxy/rpcproxy/internal/testlog"
)

// The test binary doubles as rpcproxy, so multi-process tests run the real
// command without a separate build.
func TestMain(m *testing.M) {
	if os.Getenv("RPCPROXY_TEST_AS_MAIN") == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// process is an rpcproxy child with its log captured.
type process struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed when the child exited; then err is its Wait result
	err    error
	log    testlog.Buffer
}

func (p *process) Write(b []byte) (int, error) { return p.log.Write(b) }

func (p *process) logs() string { return p.log.String() }

func startProcess(t *testing.T, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(os.Args[0], args...), exited: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), "RPCPROXY_TEST_AS_MAIN=1")
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("log of %v:\n%s", args[:1], p.logs())
		}
	})
	return p
}

// running fails the test if the child has exited.
func (p *process) running(t *testing.T) {
	t.Helper()
	select {
	case <-p.exited:
		t.Fatalf("process exited: %v", p.err)
	default:
	}
}

func (p *process) waitLog(t *testing.T, substr string, count int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d× %q in the log", count, substr), func() bool { return strings.Count(p.logs(), substr) >= count })
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// sdkClient connects through a proxy as an SDK would.
func sdkClient(t *testing.T, addr string) *fakecli.Client {
	t.Helper()
	c, err := fakecli.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Connect(ctx, ""); err != nil {
		t.Fatal(err)
	}
	return c
}

func call(t *testing.T, c *fakecli.Client, method string, params map[string]any) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var out map[string]any
	if err := c.Call(ctx, method, params, &out); err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	return out
}

func turnOn(t *testing.T, c *fakecli.Client, sid, prompt string) {
	t.Helper()
	call(t, c, "session.send", map[string]any{"sessionId": sid, "prompt": prompt})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Collect(ctx, sid, "session.idle"); err != nil {
		t.Fatalf("turn of %s: %v", sid, err)
	}
}

// Two proxy processes and three agent processes beside fake CLI servers:
// a session created through proxy 1 resumes through proxy 2 on the same
// backend; proxy 1 is killed and its client carries on through proxy 2.
func TestMultiProcessProxiesAndAgents(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "rpcproxy.hcl")
	os.WriteFile(cfgPath, []byte(`
log_level = "info"
gossip { profile = "fast" }
health {
  interval = "100ms"
  timeout  = "100ms"
}
agent { drain_timeout = "200ms" }
`), 0o600)
	seed := freeAddr(t)
	listen1, listen2 := freeAddr(t), freeAddr(t)
	proxy1 := startProcess(t, "serve", "--config", cfgPath, "--listen", listen1, "--gossip-bind", seed)
	proxy1.waitLog(t, "rpcproxy listening", 1)
	proxy2 := startProcess(t, "serve", "--config", cfgPath, "--listen", listen2, "--gossip-bind", freeAddr(t), "--join", seed)
	proxy2.waitLog(t, "rpcproxy listening", 1)
	for i := 0; i < 3; i++ {
		cli, err := fakecli.Listen("127.0.0.1:0", fakecli.Config{Name: fmt.Sprintf("cli-%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cli.Close() })
		startProcess(t, "agent", "--config", cfgPath, "--cli", cli.Addr(), "--bind", freeAddr(t), "--join", seed)
	}
	proxy1.waitLog(t, "backend joined: backend=", 3)
	proxy2.waitLog(t, "backend joined: backend=", 3)

	// A session created through proxy 1 ...
	c1 := sdkClient(t, listen1)
	created := call(t, c1, "session.create", map[string]any{"sessionId": "user-7-chat"})
	turnOn(t, c1, "user-7-chat", "hello")
	c1.Close()
	// ... is resumed through proxy 2 on the same backend.
	c2 := sdkClient(t, listen2)
	resumed := call(t, c2, "session.resume", map[string]any{"sessionId": "user-7-chat"})
	if created["server"] != resumed["server"] {
		t.Fatalf("created on %v, resumed through the other proxy on %v", created["server"], resumed["server"])
	}
	turnOn(t, c2, "user-7-chat", "again")
	c2.Close()

	// Proxy 1 dies; its client reconnects through proxy 2 and carries on.
	c3 := sdkClient(t, listen1)
	first := call(t, c3, "session.create", map[string]any{"sessionId": "user-8-chat"})
	turnOn(t, c3, "user-8-chat", "before the crash")
	proxy1.cmd.Process.Kill()
	select {
	case <-c3.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("client of the killed proxy was not disconnected")
	}
	c4 := sdkClient(t, listen2)
	again := call(t, c4, "session.resume", map[string]any{"sessionId": "user-8-chat"})
	if first["server"] != again["server"] {
		t.Fatalf("after failover to proxy 2 the session went to %v, not %v", again["server"], first["server"])
	}
	turnOn(t, c4, "user-8-chat", "after the crash")
	msgs := call(t, c4, "session.getMessages", map[string]any{"sessionId": "user-8-chat"})
	if !strings.Contains(fmt.Sprint(msgs), "before the crash") {
		t.Fatal("history lost")
	}
}

// serve --spawn N runs a managed local pool: children found on PATH, on
// loopback, one shared session store; sessions spread over them.
func TestServeSpawnManagedPool(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs processes")
	}
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "copilot"), "github.com/rpcproxy/rpcproxy/cmd/fakecli")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build fake copilot: %v\n%s", err, out)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	listen, adminAddr := freeAddr(t), freeAddr(t)
	p := startProcess(t, "serve", "--spawn", "3", "--listen", listen, "--admin", adminAddr)
	p.waitLog(t, "rpcproxy listening", 1)
	c := sdkClient(t, listen)
	for i := 0; i < 12; i++ {
		sid := fmt.Sprintf("spawned-%d", i)
		call(t, c, "session.create", map[string]any{"sessionId": sid})
		turnOn(t, c, sid, "hi")
	}
	if n := strings.Count(p.logs(), "child up"); n != 3 {
		t.Fatalf("%d children up, want 3", n)
	}
	placed := map[string]bool{}
	for _, line := range strings.Split(p.logs(), "\n") {
		if i := strings.Index(line, "backend="); i >= 0 && strings.Contains(line, "session placed") {
			placed[strings.Fields(line[i:])[0]] = true
		}
	}
	if len(placed) < 2 {
		t.Fatalf("sessions placed on %d pool servers, want at least 2", len(placed))
	}
	// The admin API lists the children as pool backends holding the sessions.
	var backends []admin.Backend
	if err := adminGet(adminAddr, "/v1/backends", "", &backends); err != nil {
		t.Fatal(err)
	}
	sessions := 0
	for _, b := range backends {
		if b.Source != "pool" || b.State != "up" {
			t.Fatalf("pool backend %+v", b)
		}
		sessions += b.Sessions
	}
	if len(backends) != 3 || sessions != 12 {
		t.Fatalf("%d backends holding %d sessions, want 3 and 12", len(backends), sessions)
	}
}

// Without a copilot binary, --spawn fails with one clear line.
func TestServeSpawnWithoutCLI(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	var stderr bytes.Buffer
	code := run([]string{"serve", "--spawn", "1", "--listen", "127.0.0.1:0", "--log-level", "error"}, &stderr, &stderr)
	if code != 1 {
		t.Fatalf("exit code %d", code)
	}
	out := strings.TrimSpace(stderr.String())
	if strings.Count(out, "\n") != 0 || !strings.Contains(out, "copilot CLI not found on PATH") {
		t.Fatalf("message: %q", out)
	}
}

// SIGHUP re-reads the configuration: a backend marked drain = true takes no
// new sessions and its sessions move off it at their next turn.
func TestReloadDrainsBackend(t *testing.T) {
	store := fakecli.NewStore()
	var fakes []*fakecli.Server
	for i := 0; i < 2; i++ {
		f, err := fakecli.Listen("127.0.0.1:0", fakecli.Config{Name: fmt.Sprintf("cli-%d", i), Store: store})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		fakes = append(fakes, f)
	}
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "rpcproxy.hcl")
	write := func(drain bool) {
		body := fmt.Sprintf("backend %q {}\nbackend %q { drain = %v }\n", fakes[0].Addr(), fakes[1].Addr(), drain)
		if err := os.WriteFile(cfgPath, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(false)
	listen := freeAddr(t)
	p := startProcess(t, "serve", "--config", cfgPath, "--listen", listen)
	p.waitLog(t, "rpcproxy listening", 1)
	c := sdkClient(t, listen)
	onSecond := sessionsOnSecond(t, c, "reload")
	write(true)
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitLog(t, "configuration reloaded", 1)
	for _, sid := range onSecond {
		turnOn(t, c, sid, "after reload")
	}
	p.waitLog(t, "session moved", len(onSecond))
	for _, f := range fakes[1:] {
		if n := len(f.Sessions()); n != 0 {
			t.Fatalf("draining backend still holds %d sessions", n)
		}
	}
	p.waitLog(t, "draining backend holds no sessions", 1)
}

// sessionsOnSecond creates 16 sessions named prefix-N with a turn each and
// returns those the second fake (cli-1) holds; it fails when there is none.
func sessionsOnSecond(t *testing.T, c *fakecli.Client, prefix string) []string {
	t.Helper()
	var onSecond []string
	for i := 0; i < 16; i++ {
		sid := fmt.Sprintf("%s-%d", prefix, i)
		if call(t, c, "session.create", map[string]any{"sessionId": sid})["server"] == "cli-1" {
			onSecond = append(onSecond, sid)
		}
		turnOn(t, c, sid, "first")
	}
	if len(onSecond) == 0 {
		t.Fatal("no session on the second backend")
	}
	return onSecond
}
