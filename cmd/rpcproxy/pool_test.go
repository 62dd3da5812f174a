package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/rpcproxy/rpcproxy/internal/config"
)

// buildFakeCopilot builds cmd/fakecli as an executable named copilot in a
// temporary directory and returns its path.
func buildFakeCopilot(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "copilot")
	build := exec.Command("go", "build", "-o", path, "github.com/rpcproxy/rpcproxy/cmd/fakecli")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build fake copilot: %v\n%s", err, out)
	}
	return path
}

// privateHomes lists the pool homes rpcproxy made in tmp.
func privateHomes(t *testing.T, tmp string) []string {
	t.Helper()
	homes, err := filepath.Glob(filepath.Join(tmp, "rpcproxy-pool-*"))
	if err != nil {
		t.Fatal(err)
	}
	return homes
}

// checkHoldsSessions fails the test unless home holds files (the fake CLI
// keeps its sessions in COPILOT_HOME, as the real one keeps transcripts).
func checkHoldsSessions(t *testing.T, home string) {
	t.Helper()
	var files int
	_ = filepath.WalkDir(home, func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files++
		}
		return nil
	})
	if files == 0 {
		t.Fatalf("pool home %s holds no files; the test wants sessions in it", home)
	}
}

// serve --spawn with no pool { home } makes a private home in the OS
// temporary directory and removes it, sessions and all, when it exits on
// SIGTERM.
func TestServeSpawnRemovesPrivateHomeOnSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs processes")
	}
	copilot := buildFakeCopilot(t)
	t.Setenv("PATH", filepath.Dir(copilot)+string(os.PathListSeparator)+os.Getenv("PATH"))
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)

	listen := freeAddr(t)
	p := startProcess(t, "serve", "--spawn", "2", "--listen", listen)
	p.waitLog(t, "rpcproxy listening", 1)
	c := sdkClient(t, listen)
	for _, sid := range []string{"home-a", "home-b"} {
		call(t, c, "session.create", map[string]any{"sessionId": sid})
		turnOn(t, c, sid, "hi")
	}
	homes := privateHomes(t, tmp)
	if len(homes) != 1 {
		t.Fatalf("private pool homes in %s: %v, want one", tmp, homes)
	}
	checkHoldsSessions(t, homes[0])

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
		if p.err != nil {
			t.Fatalf("serve exited with %v", p.err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not exit within 15s of SIGTERM")
	}
	if left := privateHomes(t, tmp); len(left) != 0 {
		t.Errorf("private pool home left behind after SIGTERM: %v", left)
	}
}

// runProxy with a managed pool, ended by cancelling its context: a private
// home is removed, a pool { home } the user gave is kept with its sessions.
func TestServeSpawnHomeOnCancel(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs processes")
	}
	copilot := buildFakeCopilot(t)
	for _, tc := range []struct {
		name     string
		userHome bool
	}{
		{"private home removed", false},
		{"user home kept", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmp := t.TempDir()
			t.Setenv("TMPDIR", tmp)
			cfg := config.Default()
			cfg.Listen = freeAddr(t)
			cfg.Pool.Spawn = 2
			cfg.Pool.CopilotPath = copilot
			if tc.userHome {
				cfg.Pool.Home = filepath.Join(t.TempDir(), "copilot-home")
			}
			log, logs := bufferLogger()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- runProxy(ctx, cfg, log, nil, configSource{}) }()
			waitFor(t, "rpcproxy listening", func() bool { return strings.Contains(logs(), "rpcproxy listening") })

			c := sdkClient(t, cfg.Listen)
			call(t, c, "session.create", map[string]any{"sessionId": "home-c"})
			turnOn(t, c, "home-c", "hi")
			home := cfg.Pool.Home
			if !tc.userHome {
				homes := privateHomes(t, tmp)
				if len(homes) != 1 {
					t.Fatalf("private pool homes in %s: %v, want one", tmp, homes)
				}
				home = homes[0]
			} else if homes := privateHomes(t, tmp); len(homes) != 0 {
				t.Fatalf("pool made a private home %v although pool { home } is set", homes)
			}
			checkHoldsSessions(t, home)

			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("runProxy: %v", err)
				}
			case <-time.After(15 * time.Second):
				t.Fatal("runProxy did not return within 15s of cancel")
			}
			_, err := os.Stat(home)
			switch {
			case tc.userHome && err != nil:
				t.Errorf("user-given pool home %s: %v after exit, want it kept", home, err)
			case tc.userHome:
				checkHoldsSessions(t, home)
			case !errors.Is(err, os.ErrNotExist):
				t.Errorf("private pool home %s still there after exit (stat: %v)", home, err)
			}
		})
	}
}

// bufferLogger returns a logger at debug level and a function reading what
// it has written so far.
func bufferLogger() (hclog.Logger, func() string) {
	var mu sync.Mutex
	var buf bytes.Buffer
	w := writerFunc(func(b []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(b)
	})
	log := hclog.New(&hclog.LoggerOptions{Name: "rpcproxy", Level: hclog.Debug, Output: w})
	return log, func() string {
		mu.Lock()
		defer mu.Unlock()
		return buf.String()
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }
