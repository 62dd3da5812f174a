//go:build unix

package localpool

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestStartAllChildrenAccept(t *testing.T) {
	cfg := fakeConfig(t, 3, envEcho+"=hello")
	cfg.Args = []string{"--log-level", "debug"}
	p := startPool(t, cfg)

	addrs := p.Addrs()
	if len(addrs) != 3 {
		t.Fatalf("Addrs = %v, want 3", addrs)
	}
	seen := map[string]bool{}
	for _, a := range addrs {
		if seen[a] {
			t.Fatalf("duplicate address %s in %v", a, addrs)
		}
		seen[a] = true
		if !strings.HasPrefix(a, "127.0.0.1:") {
			t.Errorf("address %s not on loopback", a)
		}
		conn, err := net.DialTimeout("tcp", a, time.Second)
		if err != nil {
			t.Fatalf("dial %s: %v", a, err)
		}
		conn.Close()
	}
	for i, ev := range p.Status() {
		if ev.Child != i || !ev.Up || ev.Addr != addrs[i] || ev.Restarts != 0 || ev.Err != nil || !alive(ev.PID) {
			t.Errorf("Status()[%d] = %+v", i, ev)
		}
	}

	// Every child wrote its record into the one shared home, with the
	// extra args and env.
	children, _ := fakePIDs(t, cfg.Home)
	if len(children) != 3 {
		t.Fatalf("%d children recorded in the shared home, want 3", len(children))
	}
	for _, pid := range children {
		b, err := os.ReadFile(filepath.Join(cfg.Home, fakeStateDir, strconv.Itoa(pid)))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "args=--log-level,debug echo=hello") {
			t.Errorf("child %d recorded %q", pid, b)
		}
	}

	// The consumer gets every child's Up even though it reads after Start.
	ups := map[int]bool{}
	for len(ups) < 3 {
		ev := nextEvent(t, p, 2*time.Second, func(ev Event) bool { return ev.Up })
		ups[ev.Child] = true
	}
}

func TestKilledChildRestartsOnSameAddress(t *testing.T) {
	cfg := fakeConfig(t, 2)
	cfg.MinBackoff = 300 * time.Millisecond
	p := startPool(t, cfg)
	before := p.Status()
	victim := before[1]

	killed := time.Now()
	if err := syscall.Kill(victim.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	down := nextEvent(t, p, 2*time.Second, func(ev Event) bool { return ev.Child == 1 && !ev.Up })
	if down.PID != victim.PID || down.Addr != victim.Addr || down.Err == nil || !strings.Contains(down.Err.Error(), "killed") {
		t.Errorf("down event %+v, want child 1 pid %d killed", down, victim.PID)
	}
	up := nextEvent(t, p, 3*time.Second, func(ev Event) bool { return ev.Child == 1 && ev.Up })
	took := time.Since(killed)
	if up.Addr != victim.Addr || up.PID == victim.PID || up.Restarts != 1 {
		t.Errorf("up event %+v, want same addr %s, new pid, 1 restart", up, victim.Addr)
	}
	if took < cfg.MinBackoff {
		t.Errorf("restarted after %v, before the %v backoff", took, cfg.MinBackoff)
	}
	t.Logf("restarted in %v", took)
	if alive(victim.PID) {
		t.Errorf("killed pid %d still alive", victim.PID)
	}
	conn, err := net.DialTimeout("tcp", victim.Addr, time.Second)
	if err != nil {
		t.Fatalf("dial restarted child: %v", err)
	}
	conn.Close()
	if now := p.Status()[0]; now.PID != before[0].PID || now.Restarts != 0 {
		t.Errorf("child 0 changed: %+v -> %+v", before[0], now)
	}
	if got := p.Addrs(); got[0] != before[0].Addr || got[1] != victim.Addr {
		t.Errorf("Addrs = %v, want unchanged", got)
	}
}

func TestRestartMovesWhenPortTaken(t *testing.T) {
	cfg := fakeConfig(t, 1)
	cfg.MinBackoff = 300 * time.Millisecond
	p := startPool(t, cfg)
	old := p.Status()[0]

	if err := syscall.Kill(old.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	nextEvent(t, p, 2*time.Second, func(ev Event) bool { return !ev.Up })
	squatter, err := net.Listen("tcp", old.Addr)
	if err != nil {
		t.Fatalf("take the dead child's port: %v", err)
	}
	t.Cleanup(func() { squatter.Close() })

	up := nextEvent(t, p, 3*time.Second, func(ev Event) bool { return ev.Up })
	if up.Addr == old.Addr || up.Restarts != 1 {
		t.Fatalf("up event %+v, want a new address after %s was taken", up, old.Addr)
	}
	if got := p.Addrs()[0]; got != up.Addr {
		t.Errorf("Addrs()[0] = %s, want %s", got, up.Addr)
	}
	conn, err := net.DialTimeout("tcp", up.Addr, time.Second)
	if err != nil {
		t.Fatalf("dial moved child: %v", err)
	}
	conn.Close()
}

func TestCrashLoopBacksOff(t *testing.T) {
	cfg := fakeConfig(t, 1, envExitAfter+"=30ms")
	cfg.MinBackoff = 20 * time.Millisecond
	cfg.MaxBackoff = 100 * time.Millisecond
	cfg.ResetAfter = time.Hour
	var retries func() []string
	cfg.Logger, retries = captureLogger(t)
	p := startPool(t, cfg)
	started := time.Now()

	var downs int
	for {
		ev := nextEvent(t, p, 5*time.Second, func(Event) bool { return true })
		if !ev.Up {
			downs++
			if ev.Err == nil || !strings.Contains(ev.Err.Error(), "exit status 3") {
				t.Errorf("down event %+v, want exit status 3", ev)
			}
		}
		if ev.Up && ev.Restarts == 5 {
			break
		}
	}
	want := "20ms 40ms 80ms 100ms 100ms"
	if got := strings.Join(retries(), " "); got != want {
		t.Errorf("backoffs %s, want %s", got, want)
	}
	if took := time.Since(started); took < 340*time.Millisecond {
		t.Errorf("5 restarts in %v, less than their backoffs", took)
	}
	if downs != 5 {
		t.Errorf("saw %d down events, want 5", downs)
	}
}

func TestBackoffResetsAfterStableUptime(t *testing.T) {
	cfg := fakeConfig(t, 1, envExitAfter+"=100ms")
	cfg.MinBackoff = 20 * time.Millisecond
	cfg.MaxBackoff = 10 * time.Second
	cfg.ResetAfter = 20 * time.Millisecond // every 100ms run counts as stable
	var retries func() []string
	cfg.Logger, retries = captureLogger(t)
	p := startPool(t, cfg)

	nextEvent(t, p, 5*time.Second, func(ev Event) bool { return ev.Up && ev.Restarts == 4 })
	want := "20ms 20ms 20ms 20ms"
	if got := strings.Join(retries(), " "); got != want {
		t.Errorf("backoffs %s, want %s", got, want)
	}
}

func TestCloseLeavesNoProcessOrGoroutine(t *testing.T) {
	for _, tc := range []struct {
		name       string
		env        []string
		minStop    time.Duration
		maxStop    time.Duration
		stopTimout time.Duration
	}{
		{name: "exits on SIGTERM", stopTimout: 5 * time.Second, maxStop: 2 * time.Second},
		{name: "ignores SIGTERM", env: []string{envIgnoreTerm + "=1"}, stopTimout: 300 * time.Millisecond,
			minStop: 300 * time.Millisecond, maxStop: 3 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := fakeConfig(t, 3, append(tc.env, envGrandchild+"=1")...)
			cfg.StopTimeout = tc.stopTimout
			p, err := Start(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			children, grandchildren := fakePIDs(t, cfg.Home)
			if len(children) != 3 || len(grandchildren) != 3 {
				t.Fatalf("children %v grandchildren %v, want 3 each", children, grandchildren)
			}
			for _, pid := range append(children, grandchildren...) {
				if !alive(pid) {
					t.Fatalf("pid %d not running before Close", pid)
				}
			}

			began := time.Now()
			if err := p.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			took := time.Since(began)
			if took < tc.minStop || took > tc.maxStop {
				t.Errorf("Close took %v, want between %v and %v", took, tc.minStop, tc.maxStop)
			}
			for _, pid := range children {
				if alive(pid) { // reaped by Close: no wait allowed
					t.Errorf("child %d alive after Close", pid)
				}
			}
			waitDead(t, 2*time.Second, grandchildren...)
			if err := p.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
			for range p.Events() { // must be closed, after any buffered events
			}
			checkNoGoroutines(t)
		})
	}
}

func TestExitedChildLeavesNoOrphan(t *testing.T) {
	cfg := fakeConfig(t, 1, envGrandchild+"=1", envExitAfter+"=100ms")
	cfg.MinBackoff, cfg.MaxBackoff = time.Minute, time.Minute // Close must cut the backoff short
	p := startPool(t, cfg)
	nextEvent(t, p, 3*time.Second, func(ev Event) bool { return !ev.Up })
	_, grandchildren := fakePIDs(t, cfg.Home)
	if len(grandchildren) != 1 {
		t.Fatalf("grandchildren %v, want 1", grandchildren)
	}
	waitDead(t, 2*time.Second, grandchildren...)

	began := time.Now()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took > time.Second {
		t.Errorf("Close during backoff took %v", took)
	}
	checkNoGoroutines(t)
}

func TestStartMissingBinary(t *testing.T) {
	cfg := fakeConfig(t, 1)
	cfg.Binary = filepath.Join(t.TempDir(), "copilot")
	_, err := Start(context.Background(), cfg)
	if !errors.Is(err, ErrBinaryNotFound) {
		t.Fatalf("Start = %v, want ErrBinaryNotFound", err)
	}
	t.Setenv("PATH", t.TempDir())
	cfg.Binary = ""
	_, err = Start(context.Background(), cfg)
	want := `copilot CLI not found on PATH: install it with "npm install -g @github/copilot@1.0.102" or set pool.copilot_path`
	if err == nil || err.Error() != want {
		t.Fatalf("Start = %v, want %s", err, want)
	}
}

func TestStartFailsWhenChildNeverReady(t *testing.T) {
	cfg := fakeConfig(t, 2, envMode+"=never-ready", envIgnoreTerm+"=1")
	cfg.ReadyTimeout = 300 * time.Millisecond
	cfg.StopTimeout = 200 * time.Millisecond
	began := time.Now()
	p, err := Start(context.Background(), cfg)
	took := time.Since(began)
	if !errors.Is(err, ErrNotReady) || p != nil {
		t.Fatalf("Start = %v, %v; want ErrNotReady", p, err)
	}
	t.Logf("Start failed after %v: %v", took, err)
	if took < cfg.ReadyTimeout || took > cfg.ReadyTimeout+cfg.StopTimeout+2*time.Second {
		t.Errorf("Start failed after %v, want about ReadyTimeout+StopTimeout", took)
	}
	children, _ := fakePIDs(t, cfg.Home)
	if len(children) != 2 {
		t.Fatalf("children %v, want 2", children)
	}
	for _, pid := range children {
		if alive(pid) {
			t.Errorf("pid %d alive after Start failed", pid)
		}
	}
	checkNoGoroutines(t)
}

func TestStartFailsWhenChildExits(t *testing.T) {
	cfg := fakeConfig(t, 2, envMode+"=fail")
	_, err := Start(context.Background(), cfg)
	if !errors.Is(err, ErrExited) {
		t.Fatalf("Start = %v, want ErrExited", err)
	}
	for _, want := range []string{"exit status 1", "boom: cannot start"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	checkNoGoroutines(t)
}

func TestStartHonorsContext(t *testing.T) {
	cfg := fakeConfig(t, 1, envMode+"=never-ready")
	cfg.ReadyTimeout = time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	began := time.Now()
	_, err := Start(ctx, cfg)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Start = %v, want deadline exceeded", err)
	}
	if took := time.Since(began); took > 2*time.Second {
		t.Errorf("Start returned %v after its context ended", took)
	}
	children, _ := fakePIDs(t, cfg.Home)
	for _, pid := range children {
		if alive(pid) {
			t.Errorf("pid %d alive after Start failed", pid)
		}
	}
	checkNoGoroutines(t)
}
