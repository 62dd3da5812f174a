package harness

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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
	if m := p.Moves(); len(m) != 1 || m[0] != (Move{"a-1", "127.0.0.1:1001", "127.0.0.1:1002"}) {
		t.Errorf("Moves = %v", m)
	}
}

// A whole cluster comes up, answers, and leaves nothing behind.
func TestClusterTeardownLeavesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real CLI servers")
	}
	t.Setenv("E2E_KEEP", "")
	c, err := Start(context.Background(), Options{Backends: 2})
	if err != nil {
		SkipOrFatal(t, err)
	}
	procs := c.Processes()
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
