package harness

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A child that forks a grandchild: Stop must end both.
func TestProcessStopEndsGroup(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command("sh", "-c", `trap "" TERM; sleep 300 & echo "child $!"; wait`)
	p, err := startProcess("sh", cmd, filepath.Join(dir, "sh.log"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := p.WaitFor(ctx, regexp.MustCompile(`child (\d+)`)); err != nil {
		t.Fatal(err)
	}
	if !p.GroupAlive() {
		t.Fatal("group not alive after start")
	}
	start := time.Now()
	p.Stop() // sh ignores SIGTERM: the SIGKILL after the grace period ends it
	p.Stop()
	if p.GroupAlive() {
		t.Error("process group still alive after Stop")
	}
	if exited, _ := p.Exited(); !exited {
		t.Error("Exited reports false after Stop")
	}
	if d := time.Since(start); d > stopGrace+5*time.Second {
		t.Errorf("Stop took %v", d)
	}
}

func TestWaitForFailsWhenChildExits(t *testing.T) {
	dir := t.TempDir()
	p, err := startProcess("echo", exec.Command("sh", "-c", "echo something else; exit 3"), filepath.Join(dir, "echo.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = p.WaitFor(ctx, regexp.MustCompile(`never printed`))
	if err == nil || !strings.Contains(err.Error(), "exited") || !strings.Contains(err.Error(), "something else") {
		t.Fatalf("WaitFor error = %v, want an early 'exited' error with the output", err)
	}
}

func TestWaitForDeadline(t *testing.T) {
	dir := t.TempDir()
	p, err := startProcess("sleep", exec.Command("sleep", "30"), filepath.Join(dir, "sleep.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := p.WaitFor(ctx, regexp.MustCompile(`x`)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitFor error = %v, want deadline exceeded", err)
	}
}

func TestScrubbedEnv(t *testing.T) {
	t.Setenv("GITHUB_TOKEN", "secret-1")
	t.Setenv("COPILOT_CONNECTION_TOKEN", "secret-2")
	t.Setenv("E2E_HARNESS_KEEP_ME", "yes")
	env := strings.Join(scrubbedEnv(), "\n")
	if strings.Contains(env, "secret-") {
		t.Error("credentials passed to children")
	}
	if !strings.Contains(env, "E2E_HARNESS_KEEP_ME=yes") {
		t.Error("ordinary variable dropped")
	}
}

func TestPlacements(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "proxy.log")
	content := `2026-11-23T19:12:07.420Z [INFO]  rpcproxy.proxy: session placed: client=2 session=a-1 backend=127.0.0.1:1001 method=session.create
2026-11-23T19:12:07.421Z [INFO]  rpcproxy.proxy: something else: session=zzz backend=127.0.0.1:9
2026-11-23T19:12:07.422Z [INFO]  rpcproxy.proxy: session placed: session="b-2" backend="127.0.0.1:1002"
2026-11-23T19:12:08.000Z [INFO]  rpcproxy.proxy: session placed: session=a-1 backend=127.0.0.1:1001 method=session.resume
2026-11-23T19:12:09.000Z [INFO]  rpcproxy.proxy: session moved: session=a-1 from=127.0.0.1:1001 to=127.0.0.1:1002 reason="backend down" took=12ms
`
	if err := os.WriteFile(log, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Proc: &Process{LogPath: log}}
	got := p.Placements()
	want := []Placement{{"a-1", "127.0.0.1:1001"}, {"b-2", "127.0.0.1:1002"}, {"a-1", "127.0.0.1:1001"}}
	if len(got) != len(want) {
		t.Fatalf("Placements = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("Placements[%d] = %v, want %v", i, got[i], want[i])
		}
	}
	if b := p.PlacedBackends("a-1"); len(b) != 1 || b[0] != "127.0.0.1:1001" {
		t.Errorf("PlacedBackends(a-1) = %v", b)
	}
	if m := p.Moves(); len(m) != 1 || m[0] != (Move{"a-1", "127.0.0.1:1001", "127.0.0.1:1002", "backend down"}) {
		t.Errorf("Moves = %v", m)
	}
}

func TestStateChanges(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "proxy.log")
	content := `2026-11-23T19:12:07.420Z [WARN]  rpcproxy.health: backend down: backend=127.0.0.1:1001 error="read tcp: i/o timeout"
2026-11-23T19:12:07.421Z [INFO]  rpcproxy.proxy: session placed: session=a-1 backend=127.0.0.1:1002 method=session.create
2026-11-23T19:12:07.422Z [WARN]  rpcproxy.health: backend down (passive): backend=127.0.0.1:1002 error=EOF
2026-11-23T19:12:08.000Z [INFO]  rpcproxy.health: backend state: backend=127.0.0.1:1001 from=down to=up
2026-11-23T19:12:09.000Z [INFO]  rpcproxy.health: backend state (agent report): backend=127.0.0.1:1001 from=up to=draining
2026-11-23T19:12:09.500Z [INFO]  rpcproxy.gossip: backend joined: backend=127.0.0.1:1003 node=agent3
`
	if err := os.WriteFile(log, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Proc: &Process{Name: "rpcproxy", LogPath: log}}
	want := []StateChange{{"127.0.0.1:1001", "down"}, {"127.0.0.1:1002", "down"}, {"127.0.0.1:1001", "up"}, {"127.0.0.1:1001", "draining"}}
	if got := p.StateChanges(); !slices.Equal(got, want) {
		t.Errorf("StateChanges = %v, want %v", got, want)
	}
	for addr, state := range map[string]string{"127.0.0.1:1001": "draining", "127.0.0.1:1002": "down", "127.0.0.1:1003": "up"} {
		if got := p.BackendState(addr); got != state {
			t.Errorf("BackendState(%s) = %q, want %q", addr, got, state)
		}
	}
	if got := p.JoinedBackends(); !slices.Equal(got, []string{"127.0.0.1:1003"}) {
		t.Errorf("JoinedBackends = %v", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := p.WaitBackendState(ctx, "127.0.0.1:1002", "down", 1); err != nil {
		t.Error(err)
	}
	// Past the first three changes, 1002 changed no more: waiting times out.
	short, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	if err := p.WaitBackendState(short, "127.0.0.1:1002", "down", 3); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitBackendState past the last change = %v, want deadline exceeded", err)
	}
}

// processState returns the state letter of pid from /proc ("S", "T", …).
func processState(t *testing.T, pid int) string {
	t.Helper()
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	return fields[0]
}

// Freeze stops the group, Thaw continues it, and Stop ends a frozen child
// at once (SIGCONT after SIGTERM) rather than after the grace period.
func TestFreezeThawStop(t *testing.T) {
	dir := t.TempDir()
	p, err := startProcess("sleep", exec.Command("sleep", "30"), filepath.Join(dir, "sleep.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stateIs := func(want string) {
		t.Helper()
		if err := Eventually(ctx, "sleep in state "+want, func() bool { return processState(t, p.PID()) == want }); err != nil {
			t.Fatalf("%v (state %s)", err, processState(t, p.PID()))
		}
	}
	if err := p.Freeze(); err != nil {
		t.Fatal(err)
	}
	stateIs("T")
	p.Thaw()
	stateIs("S")
	if err := p.Freeze(); err != nil {
		t.Fatal(err)
	}
	stateIs("T")
	start := time.Now()
	p.Stop()
	if d := time.Since(start); d >= stopGrace {
		t.Errorf("Stop of a frozen child took %v: it waited for the grace period", d)
	}
	if p.GroupAlive() {
		t.Error("frozen child still alive after Stop")
	}
	p.Thaw() // after exit: a no-op
}

// A CLI server killed and restarted listens on the same port again, with a
// log of its own.
func TestCLIRestartSamePort(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real CLI server")
	}
	bin, err := CopilotBinary()
	if err != nil {
		SkipOrFatal(t, err)
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*cliStartTimeout)
	defer cancel()
	s, err := StartCLI(ctx, bin, "cli0", dir, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Proc.Stop() })
	if err := s.Restart(ctx); err == nil {
		t.Error("Restart of a running server succeeded")
	}
	first := s.Proc
	first.Kill()
	if err := s.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if s.Proc == first || s.Proc.LogPath == first.LogPath {
		t.Errorf("restart kept the old process or log (%s)", s.Proc.LogPath)
	}
	if m := cliListening.FindStringSubmatch(s.Proc.Log()); m == nil || !strings.HasSuffix(s.Addr, ":"+m[1]) {
		t.Errorf("restarted server's log %q does not name port of %s", s.Proc.LogTail(5), s.Addr)
	}
	conn, err := net.DialTimeout("tcp", s.Addr, 5*time.Second)
	if err != nil {
		t.Fatalf("restarted server at %s: %v", s.Addr, err)
	}
	conn.Close()
}

// A whole cluster comes up, answers, and leaves nothing behind: with static
// backends, and with agents and two proxies on gossip.
func TestClusterTeardownLeavesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real CLI servers")
	}
	t.Setenv("E2E_KEEP", "")
	t.Setenv("E2E_DIRECT", "")
	for _, tc := range []struct {
		name  string
		opts  Options
		procs int
	}{
		{"static", Options{Backends: 2}, 3},
		{"gossip", Options{Backends: 2, Gossip: true, Proxies: 2, Config: `gossip { profile = "fast" }
agent { drain_timeout = "200ms" }
`}, 6},
	} {
		t.Run(tc.name, func(t *testing.T) { checkTeardown(t, tc.opts, tc.procs) })
	}
}

func checkTeardown(t *testing.T, opts Options, wantProcs int) {
	c, err := Start(context.Background(), opts)
	if err != nil {
		SkipOrFatal(t, err)
	}
	procs := c.Processes()
	if len(procs) != wantProcs {
		t.Errorf("cluster has %d processes, want %d", len(procs), wantProcs)
	}
	conn, err := net.DialTimeout("tcp", c.Target, 5*time.Second)
	if err != nil {
		c.Close()
		t.Fatalf("target %s: %v", c.Target, err)
	}
	conn.Close()
	for _, b := range c.Backends {
		if _, err := os.Stat(b.Home); err != nil {
			t.Errorf("%s home: %v", b.Name, err)
		}
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	for _, p := range procs {
		if p.GroupAlive() {
			t.Errorf("%s (pid %d) still running after Close", p.Name, p.PID())
		}
	}
	if _, err := os.Stat(c.WorkDir); !os.IsNotExist(err) {
		t.Errorf("work directory %s still there: %v", c.WorkDir, err)
	}
	if _, err := net.DialTimeout("tcp", c.StubURL[len("http://"):len(c.StubURL)-len("/v1")], time.Second); err == nil {
		t.Error("model stub still listening after Close")
	}
}
