//go:build unix

package localpool

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// fakeConfig returns a Config that runs count fake CLIs (this test binary)
// sharing a temporary home, with fast timings and the knobs in env.
func fakeConfig(t testing.TB, count int, env ...string) Config {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return Config{
		Count:        count,
		Binary:       self,
		Home:         t.TempDir(),
		Env:          append([]string{envFakeCLI + "=1"}, env...),
		ReadyTimeout: 5 * time.Second,
		MinBackoff:   50 * time.Millisecond,
		MaxBackoff:   time.Second,
		StopTimeout:  2 * time.Second,
		Logger:       testLogger(t),
	}
}

// testLogger logs through t at debug level, so a failing test shows what the
// pool and its children said.
func testLogger(t testing.TB) hclog.Logger {
	log, _ := captureLogger(t)
	return log
}

// captureLogger is testLogger that also returns the retry_in values of the
// pool's "restarting child" logs so far: the restart backoffs it chose.
func captureLogger(t testing.TB) (hclog.Logger, func() []string) {
	w := &testWriter{t: t}
	return hclog.New(&hclog.LoggerOptions{Name: "localpool", Level: hclog.Debug, Output: w}), w.retries
}

type testWriter struct {
	t       testing.TB
	mu      sync.Mutex
	retryIn []string
}

func (w *testWriter) Write(b []byte) (int, error) {
	line := strings.TrimRight(string(b), "\n")
	w.t.Log(line)
	if strings.Contains(line, "restarting child") {
		if _, v, ok := strings.Cut(line, "retry_in="); ok {
			w.mu.Lock()
			w.retryIn = append(w.retryIn, strings.Fields(v)[0])
			w.mu.Unlock()
		}
	}
	return len(b), nil
}

func (w *testWriter) retries() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.retryIn...)
}

// startPool starts a pool and closes it when the test ends.
func startPool(t testing.TB, cfg Config) *Pool {
	t.Helper()
	p, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return p
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// nextEvent returns the first event on p.Events that match accepts,
// skipping others, or fails the test after timeout.
func nextEvent(t testing.TB, p *Pool, timeout time.Duration, match func(Event) bool) Event {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-p.Events():
			if !ok {
				t.Fatal("events channel closed")
			}
			if match(ev) {
				return ev
			}
		case <-timer.C:
			t.Fatalf("no matching event within %v; status %+v", timeout, p.Status())
		}
	}
}

// alive reports whether pid is a running process (a zombie is not: in a
// container nobody may reap an orphan).
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return !os.IsNotExist(err)
	}
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}

// waitDead fails the test unless every pid is gone within timeout.
func waitDead(t testing.TB, timeout time.Duration, pids ...int) {
	t.Helper()
	waitFor(t, timeout, "processes "+strconv.Itoa(len(pids))+" to end", func() bool {
		for _, pid := range pids {
			if alive(pid) {
				return false
			}
		}
		return true
	})
}

// fakePIDs returns the pids of every fake CLI started with home, and of the
// grandchildren they started.
func fakePIDs(t testing.TB, home string) (children, grandchildren []int) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(home, fakeStateDir))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasSuffix(name, "."+grandchildFile) {
			b, err := os.ReadFile(filepath.Join(home, fakeStateDir, name))
			if err != nil {
				t.Fatal(err)
			}
			pid, err := strconv.Atoi(string(b))
			if err != nil {
				t.Fatal(err)
			}
			grandchildren = append(grandchildren, pid)
			continue
		}
		pid, err := strconv.Atoi(name)
		if err != nil {
			t.Fatalf("unexpected file %s", name)
		}
		children = append(children, pid)
	}
	return children, grandchildren
}

// checkNoGoroutines fails the test if a pool goroutine, or one os/exec
// started for a child, is still running.
func checkNoGoroutines(t testing.TB) {
	t.Helper()
	var leftover string
	deadline := time.Now().Add(2 * time.Second)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		leftover = ""
		for i, g := range strings.Split(string(buf), "\n\n") {
			if i == 0 {
				continue // this goroutine
			}
			if strings.Contains(g, "internal/localpool.(*") || strings.Contains(g, "os/exec.") {
				leftover += g + "\n\n"
			}
		}
		if leftover == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("goroutines left after Close:\n%s", leftover)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
