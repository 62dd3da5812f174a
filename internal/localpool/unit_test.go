//go:build unix

package localpool

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string // substring of the error; "" for valid
	}{
		{"minimal", Config{Count: 1}, ""},
		{"full", Config{Count: 4, Binary: "copilot", Args: []string{"--log-level", "info"}, Home: "/tmp/h",
			Env: []string{"A=b", "C="}, ReadyTimeout: time.Second, MinBackoff: time.Second, MaxBackoff: time.Minute}, ""},
		{"max count", Config{Count: MaxCount}, ""},
		{"zero count", Config{}, "count 0"},
		{"too many", Config{Count: MaxCount + 1}, "out of range"},
		{"negative timeout", Config{Count: 1, ReadyTimeout: -1}, "negative ready timeout"},
		{"negative stop", Config{Count: 1, StopTimeout: -1}, "negative stop timeout"},
		{"min over max", Config{Count: 1, MinBackoff: 2 * time.Second, MaxBackoff: time.Second}, "exceeds"},
		{"min over default max", Config{Count: 1, MinBackoff: time.Hour}, "exceeds"},
		{"port arg", Config{Count: 1, Args: []string{"--port", "1"}}, `"--port"`},
		{"port= arg", Config{Count: 1, Args: []string{"--port=1"}}, `"--port=1"`},
		{"headless arg", Config{Count: 1, Args: []string{"--headless"}}, `"--headless"`},
		{"bad env", Config{Count: 1, Env: []string{"NOVALUE"}}, "not KEY=VALUE"},
		{"empty env key", Config{Count: 1, Env: []string{"=x"}}, "not KEY=VALUE"},
		{"home twice", Config{Count: 1, Home: "/h", Env: []string{"COPILOT_HOME=/x"}}, "COPILOT_HOME"},
		{"home in env only", Config{Count: 1, Env: []string{"COPILOT_HOME=/x"}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want error containing %q", err, tc.want)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	for _, tc := range []struct {
		name     string
		min, max time.Duration
		resetAt  int // reset before this call; -1 never
		want     []time.Duration
	}{
		{"doubles to cap", 500 * time.Millisecond, 3 * time.Second, -1,
			[]time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 3 * time.Second, 3 * time.Second}},
		{"reset", time.Second, time.Minute, 3,
			[]time.Duration{time.Second, 2 * time.Second, 4 * time.Second, time.Second, 2 * time.Second}},
		{"min equals max", time.Second, time.Second, -1, []time.Duration{time.Second, time.Second}},
		{"huge cap does not overflow", time.Hour, 1 << 62, -1,
			[]time.Duration{time.Hour, 2 * time.Hour, 4 * time.Hour}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := backoff{min: tc.min, max: tc.max}
			for i, want := range tc.want {
				if i == tc.resetAt {
					b.reset()
				}
				if got := b.next(); got != want {
					t.Fatalf("call %d: next = %v, want %v", i, got, want)
				}
			}
		})
	}
	b := backoff{min: time.Second, max: 1<<63 - 1}
	for range 100 {
		if d := b.next(); d <= 0 {
			t.Fatalf("backoff overflowed to %v", d)
		}
	}
}

func TestLineLog(t *testing.T) {
	var mu sync.Mutex
	var logged []string
	log := hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: writerFunc(func(b []byte) {
		mu.Lock()
		defer mu.Unlock()
		logged = append(logged, string(b))
	})})
	w := newLineLog(log, "stderr")
	long := strings.Repeat("x", maxLineBytes+100)
	for _, chunk := range []string{"first li", "ne\r\nsecond\n\n", long + "\n", "partial"} {
		if n, err := w.Write([]byte(chunk)); n != len(chunk) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	if got := w.lastLine(); got != strings.Repeat("x", maxLastLine) {
		t.Errorf("lastLine = %q", got)
	}
	w.flush()
	if got := w.lastLine(); got != "partial" {
		t.Errorf("lastLine after flush = %q", got)
	}
	if len(logged) != 4 {
		t.Fatalf("logged %d lines, want 4: %q", len(logged), logged)
	}
	for i, want := range []string{"line=\"first line\"", "line=second", "dropped_bytes=100", "line=partial"} {
		if !strings.Contains(logged[i], want) || !strings.Contains(logged[i], "stream=stderr") {
			t.Errorf("log line %d = %q, want %q", i, logged[i], want)
		}
	}
	if strings.Contains(logged[2], strings.Repeat("x", maxLineBytes+1)) {
		t.Errorf("long line not cut to %d bytes", maxLineBytes)
	}
}

type writerFunc func([]byte)

func (f writerFunc) Write(b []byte) (int, error) { f(b); return len(b), nil }

func TestFindBinary(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "copilot")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)

	for _, tc := range []struct {
		name, arg, want, wantErr string
	}{
		{"default on PATH", "", exe, ""},
		{"name on PATH", "copilot", exe, ""},
		{"path", exe, exe, ""},
		{"other name missing", "copilot-nightly", "", `"copilot-nightly" is not on PATH`},
		{"path missing", filepath.Join(dir, "nope"), "", "copilot CLI not found at " + filepath.Join(dir, "nope")},
		{"directory", dir, "", "is a directory"},
		{"not executable", plain, "", "is not executable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FindBinary(tc.arg)
			if tc.wantErr != "" {
				if !errors.Is(err, ErrBinaryNotFound) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("FindBinary(%q) = %q, %v; want error containing %q", tc.arg, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("FindBinary(%q) = %q, %v; want %q", tc.arg, got, err, tc.want)
			}
		})
	}

	t.Chdir(dir)
	if got, err := FindBinary("./copilot"); err != nil || got != exe {
		t.Errorf("FindBinary(./copilot) = %q, %v; want absolute %q", got, err, exe)
	}
	t.Setenv("PATH", ".")
	if _, err := FindBinary(""); !errors.Is(err, ErrBinaryNotFound) || !strings.Contains(err.Error(), "relative PATH entry") {
		t.Errorf("FindBinary via PATH=. = %v, want relative PATH error", err)
	}

	t.Setenv("PATH", t.TempDir())
	_, err := FindBinary("")
	want := `copilot CLI not found on PATH: install it with "npm install -g @github/copilot@1.0.102" or set pool.copilot_path`
	if err == nil || err.Error() != want {
		t.Fatalf("FindBinary(\"\") = %v, want %s", err, want)
	}
}

// TestEventsKeepLatestPerChild checks the queue between supervisors and the
// consumer: bounded by Count, newest state per child, closed on shutdown.
func TestEventsKeepLatestPerChild(t *testing.T) {
	p := &Pool{
		done:   make(chan struct{}),
		state:  make([]Event, 2),
		dirty:  make([]bool, 2),
		notify: make(chan struct{}, 1),
		events: make(chan Event, 2),
	}
	for r := range 5 { // child 0 flaps while nobody reads
		p.publish(Event{Child: 0, Up: r%2 == 0, Restarts: r})
	}
	p.publish(Event{Child: 1, Up: true})
	p.background.Add(1)
	go p.deliverEvents()

	got := map[int]Event{}
	for len(got) < 2 {
		select {
		case ev := <-p.events:
			got[ev.Child] = ev
		case <-time.After(2 * time.Second):
			t.Fatalf("got %v, want one event per child", got)
		}
	}
	if ev := got[0]; !ev.Up || ev.Restarts != 4 {
		t.Errorf("child 0 event %+v, want the latest (up, 4 restarts)", ev)
	}
	select {
	case ev := <-p.events:
		t.Errorf("extra event %+v", ev)
	case <-time.After(50 * time.Millisecond):
	}
	close(p.done)
	p.background.Wait()
	if _, ok := <-p.events; ok {
		t.Error("events not closed")
	}
}
