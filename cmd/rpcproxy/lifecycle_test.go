//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rpcproxy/rpcproxy/internal/fakecli"
)

// The lifecycle tests run the real rpcproxy binary, built into a temporary
// directory, in front of in-process fake CLI servers, and drive it with
// signals as an operator (or systemd) would.

// buildProxy builds cmd/rpcproxy as dir/name, stamped with version.
func buildProxy(t *testing.T, dir, name, version string) string {
	t.Helper()
	out := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-ldflags", "-X main.version="+version, "-o", out, "github.com/rpcproxy/rpcproxy/cmd/rpcproxy")
	cmd.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build rpcproxy: %v\n%s", err, b)
	}
	return out
}

// binProcess is an rpcproxy binary running with its log in a file, which a
// process it starts (an upgrade) inherits and appends to.
type binProcess struct {
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	err     error // cmd.Wait's, once exited is closed
	// reapOnce registers the cleanup of the new processes of upgrades.
	reapOnce sync.Once
}

func startBinary(t *testing.T, bin, logPath string, args ...string) *binProcess {
	t.Helper()
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := &binProcess{cmd: exec.Command(bin, args...), logPath: logPath, exited: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.exited
		if t.Failed() {
			t.Logf("log:\n%s", p.logs())
		}
	})
	return p
}

func (p *binProcess) logs() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

func (p *binProcess) waitLog(t *testing.T, substr string, count int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d× %q in the log", count, substr), func() bool { return strings.Count(p.logs(), substr) >= count })
}

func (p *binProcess) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// waitExit waits up to d for the process to exit and returns its exit code.
func (p *binProcess) waitExit(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(d):
		t.Fatalf("process still running after %s", d)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		t.Fatalf("wait: %v", p.err)
	}
	return 0
}

// lifecycleSetup starts n fake CLI servers sharing one store and writes a
// configuration naming them, with quick health checks.
func lifecycleSetup(t *testing.T, n int, shutdownTimeout string) (cfgPath string) {
	t.Helper()
	store := fakecli.NewStore()
	var body strings.Builder
	fmt.Fprintf(&body, "shutdown_timeout = %q\nhealth {\n  interval = \"100ms\"\n  timeout = \"100ms\"\n}\n", shutdownTimeout)
	for i := 0; i < n; i++ {
		f, err := fakecli.Listen("127.0.0.1:0", fakecli.Config{Name: fmt.Sprintf("cli-%d", i), Store: store, ReplyTimeout: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		fmt.Fprintf(&body, "backend %q {}\n", f.Addr())
	}
	cfgPath = filepath.Join(t.TempDir(), "rpcproxy.hcl")
	if err := os.WriteFile(cfgPath, []byte(body.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfgPath
}

// askTurn starts a turn that waits for the client's answer to its
// userInput.request, and returns that request.
func askTurn(t *testing.T, c *fakecli.Client, sid string) *fakecli.Message {
	t.Helper()
	call(t, c, "session.create", map[string]any{"sessionId": sid, "requestUserInput": true})
	call(t, c, "session.send", map[string]any{"sessionId": sid, "prompt": "ask: favourite colour?"})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		m, err := c.Next(ctx)
		if err != nil {
			t.Fatalf("waiting for userInput.request: %v", err)
		}
		if m.IsRequest() && m.Method == "userInput.request" {
			return m
		}
	}
}

// finishAsk answers the question and checks the turn ends with the answer.
func finishAsk(t *testing.T, c *fakecli.Client, sid string, q *fakecli.Message) {
	t.Helper()
	if err := c.Reply(q.ID, map[string]any{"answer": "blue"}); err != nil {
		t.Fatalf("answer: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	evs, err := c.Collect(ctx, sid, "session.idle")
	if err != nil {
		t.Fatalf("turn in flight did not finish: %v", err)
	}
	for _, ev := range evs {
		if ev.Type == "assistant.message" && strings.Contains(string(ev.Data), "[answer: blue]") {
			return
		}
	}
	t.Fatalf("turn in flight ended without the answer (%d events)", len(evs))
}

// SIGTERM with a turn in flight: new connections are refused at once, the
// turn finishes (the client gets its session.idle), then the proxy exits 0.
func TestSIGTERMFinishesTurnInFlight(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs processes")
	}
	dir := t.TempDir()
	bin := buildProxy(t, dir, "rpcproxy", "v1")
	cfgPath := lifecycleSetup(t, 1, "30s")
	listen := freeAddr(t)
	p := startBinary(t, bin, filepath.Join(dir, "proxy.log"), "serve", "--config", cfgPath, "--listen", listen)
	p.waitLog(t, "rpcproxy listening", 1)

	c := sdkClient(t, listen)
	q := askTurn(t, c, "slow-turn")
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.waitLog(t, "shutting down", 1)
	if conn, err := net.DialTimeout("tcp", listen, time.Second); err == nil {
		conn.Close()
		t.Fatal("a new connection was accepted after SIGTERM")
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("new connection after SIGTERM: %v, want connection refused", err)
	}
	if !p.running() {
		t.Fatal("proxy exited with a turn in flight")
	}
	finishAsk(t, c, "slow-turn", q)
	if code := p.waitExit(t, 10*time.Second); code != 0 {
		t.Fatalf("exit code %d after a graceful stop", code)
	}
	select {
	case <-c.Done():
	case <-time.After(time.Second):
		t.Fatal("client still connected after the proxy exited")
	}
}

// A second SIGTERM during the drain exits at once, turn in flight or not.
func TestSecondSIGTERMExitsAtOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs processes")
	}
	dir := t.TempDir()
	bin := buildProxy(t, dir, "rpcproxy", "v1")
	cfgPath := lifecycleSetup(t, 1, "10m")
	listen := freeAddr(t)
	p := startBinary(t, bin, filepath.Join(dir, "proxy.log"), "serve", "--config", cfgPath, "--listen", listen)
	p.waitLog(t, "rpcproxy listening", 1)

	c := sdkClient(t, listen)
	askTurn(t, c, "slow-turn")
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.waitLog(t, "shutting down", 1)
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.waitExit(t, 10*time.Second); code == 0 {
		t.Fatal("exit code 0 after a forced stop")
	}
	if !strings.Contains(p.logs(), "second signal") {
		t.Fatal("forced stop not logged")
	}
	select {
	case <-c.Done():
	case <-time.After(time.Second):
		t.Fatal("client still connected after the proxy exited")
	}
}

// turnLoop runs SDK clients that each connect, create a session, run one
// turn and leave, until stop or a time bound; it records every failure.
type turnLoop struct {
	mu       sync.Mutex
	turns    int
	failures []string
	stop     chan struct{}
	wg       sync.WaitGroup
}

func startTurnLoop(addr string, workers int, bound time.Duration) *turnLoop {
	l := &turnLoop{stop: make(chan struct{})}
	deadline := time.Now().Add(bound)
	for w := 0; w < workers; w++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := 0; ; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				if time.Now().After(deadline) {
					return
				}
				err := oneTurn(addr, fmt.Sprintf("loop-%d-%d", w, i))
				l.mu.Lock()
				if err != nil {
					l.failures = append(l.failures, err.Error())
				} else {
					l.turns++
				}
				l.mu.Unlock()
			}
		}()
	}
	return l
}

func (l *turnLoop) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.turns
}

func (l *turnLoop) finish() (turns int, failures []string) {
	close(l.stop)
	l.wg.Wait()
	return l.turns, l.failures
}

// oneTurn is one short client: connect, create, one turn, leave.
func oneTurn(addr, sid string) error {
	c, err := fakecli.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Connect(ctx, ""); err != nil {
		return fmt.Errorf("%s connect: %w", sid, err)
	}
	if err := c.Call(ctx, "session.create", map[string]any{"sessionId": sid}, nil); err != nil {
		return fmt.Errorf("%s create: %w", sid, err)
	}
	if err := c.Call(ctx, "session.send", map[string]any{"sessionId": sid, "prompt": "hello"}, nil); err != nil {
		return fmt.Errorf("%s send: %w", sid, err)
	}
	evs, err := c.Collect(ctx, sid, "session.idle")
	if err != nil {
		return fmt.Errorf("%s turn: %w", sid, err)
	}
	for _, ev := range evs {
		if ev.Type == "session.error" {
			return fmt.Errorf("%s turn: session.error", sid)
		}
	}
	return nil
}

var newPIDPattern = regexp.MustCompile(`new process started: pid=(\d+)`)

// upgradedPID waits for the nth new process p starts on SIGUSR2 and returns
// its pid. In the end the test stops and reaps every new process p logged
// (as subreaper, the test inherits them when p exits), one started by
// broken code included.
func upgradedPID(t *testing.T, p *binProcess, n int) int {
	t.Helper()
	p.waitLog(t, "new process started", n)
	m := newPIDPattern.FindAllStringSubmatch(p.logs(), -1)
	pid, err := strconv.Atoi(m[n-1][1])
	if err != nil {
		t.Fatal(err)
	}
	p.reapOnce.Do(func() {
		t.Cleanup(func() {
			for _, m := range newPIDPattern.FindAllStringSubmatch(p.logs(), -1) {
				pid, _ := strconv.Atoi(m[1])
				syscall.Kill(pid, syscall.SIGKILL)
				var ws syscall.WaitStatus
				syscall.Wait4(pid, &ws, 0, nil)
			}
		})
	})
	return pid
}

// becomeSubreaper makes the test process the parent of the new process of
// an upgrade once the old one, its parent, exits.
func becomeSubreaper(t *testing.T) {
	t.Helper()
	const prSetChildSubreaper = 36
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
		t.Skipf("cannot become a subreaper: %v", errno)
	}
}

// SIGUSR2 during a loop of client connects and turns: the binary installed
// at the same path starts on the inherited socket, no connection is
// refused and no turn lost, a second SIGUSR2 starts no second process, the
// old process serves its turn in flight, then exits 0 once its clients are
// gone, and the new one serves on.
func TestSIGUSR2SeamlessUpgrade(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs processes")
	}
	becomeSubreaper(t)
	dir := t.TempDir()
	bin := buildProxy(t, dir, "rpcproxy", "v1")
	next := buildProxy(t, dir, "rpcproxy.next", "v2")
	cfgPath := lifecycleSetup(t, 2, "30s")
	listen := freeAddr(t)
	// With the admin listener on: the new process binds it too while the
	// old one drains (SO_REUSEPORT), or the upgrade would fail.
	old := startBinary(t, bin, filepath.Join(dir, "proxy.log"), "serve", "--config", cfgPath, "--listen", listen, "--admin", freeAddr(t))
	old.waitLog(t, "rpcproxy listening", 1)

	asker := sdkClient(t, listen)
	q := askTurn(t, asker, "held-turn")
	loop := startTurnLoop(listen, 4, time.Minute)
	waitFor(t, "turns before the upgrade", func() bool { return loop.count() >= 20 })

	// Install the new binary at the same path, as a package manager does;
	// here behind a script that takes a second to start it, so that the
	// second SIGUSR2 surely comes while the upgrade is in progress.
	script := "#!/bin/sh\nsleep 1\nexec " + next + " \"$@\"\n"
	if err := os.WriteFile(bin+".new", []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(bin+".new", bin); err != nil {
		t.Fatal(err)
	}
	old.cmd.Process.Signal(syscall.SIGUSR2)
	pid := upgradedPID(t, old, 1)
	old.cmd.Process.Signal(syscall.SIGUSR2)
	old.waitLog(t, "SIGUSR2 ignored: an upgrade is in progress", 1)
	old.waitLog(t, "new process ready", 1)
	if n := strings.Count(old.logs(), "new process started"); n != 1 {
		t.Fatalf("%d new processes started, want 1", n)
	}
	if !strings.Contains(old.logs(), "version=v2") {
		t.Fatal("the new process is not the binary installed at the path")
	}

	// The old process drains: its turn in flight holds it.
	atHandOver := loop.count()
	waitFor(t, "turns through the new process", func() bool { return loop.count() >= atHandOver+20 })
	if !old.running() {
		t.Fatal("old process exited with a turn in flight")
	}
	finishAsk(t, asker, "held-turn", q)
	if code := old.waitExit(t, 15*time.Second); code != 0 {
		t.Fatalf("old process exit code %d", code)
	}
	afterOld := loop.count()
	waitFor(t, "turns after the old process exited", func() bool { return loop.count() >= afterOld+20 })
	turns, failures := loop.finish()
	if len(failures) > 0 {
		t.Fatalf("%d of %d client turns failed across the upgrade; first: %s", len(failures), turns+len(failures), failures[0])
	}
	t.Logf("%d client turns across the upgrade, none failed", turns)

	// The new process serves alone, and stops gracefully on SIGTERM.
	c := sdkClient(t, listen)
	call(t, c, "session.create", map[string]any{"sessionId": "after-upgrade"})
	turnOn(t, c, "after-upgrade", "still here")
	c.Close()
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var ws syscall.WaitStatus
	if _, err := syscall.Wait4(pid, &ws, 0, nil); err != nil {
		t.Fatalf("wait for the new process: %v", err)
	}
	if ws.ExitStatus() != 0 {
		t.Fatalf("new process exit status %d", ws.ExitStatus())
	}
}

// A new process that exits before it is ready changes nothing: the old one
// logs why and serves on, and a later SIGUSR2 may try again.
func TestSIGUSR2FailedUpgradeKeepsServing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs processes")
	}
	becomeSubreaper(t)
	dir := t.TempDir()
	bin := buildProxy(t, dir, "rpcproxy", "v1")
	cfgPath := lifecycleSetup(t, 1, "30s")
	listen := freeAddr(t)
	old := startBinary(t, bin, filepath.Join(dir, "proxy.log"), "serve", "--config", cfgPath, "--listen", listen)
	old.waitLog(t, "rpcproxy listening", 1)
	c := sdkClient(t, listen)
	call(t, c, "session.create", map[string]any{"sessionId": "before"})

	// A broken install: the new binary exits at once.
	if err := os.WriteFile(bin+".new", []byte("#!/bin/sh\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(bin+".new", bin); err != nil {
		t.Fatal(err)
	}
	old.cmd.Process.Signal(syscall.SIGUSR2)
	old.waitLog(t, "upgrade failed; this process keeps serving", 1)
	if !strings.Contains(old.logs(), "exit status 3") {
		t.Fatal("the reason of the failure is not logged")
	}
	// The old process still serves its client and accepts new ones.
	turnOn(t, c, "before", "after a failed upgrade")
	c2 := sdkClient(t, listen)
	call(t, c2, "session.create", map[string]any{"sessionId": "new-client"})
	turnOn(t, c2, "new-client", "hello")

	// Fixed install: SIGUSR2 again upgrades.
	if err := os.Rename(buildProxy(t, dir, "rpcproxy.v2", "v2"), bin); err != nil {
		t.Fatal(err)
	}
	old.cmd.Process.Signal(syscall.SIGUSR2)
	upgradedPID(t, old, 2)
	old.waitLog(t, "new process ready", 1)
	c.Close()
	c2.Close()
	if code := old.waitExit(t, 15*time.Second); code != 0 {
		t.Fatalf("old process exit code %d", code)
	}
	c3 := sdkClient(t, listen)
	call(t, c3, "session.resume", map[string]any{"sessionId": "before"})
	turnOn(t, c3, "before", "through the new process")
}

// With a managed pool, SIGUSR2 is refused with a reason and the proxy
// serves on.
func TestSIGUSR2RefusedWithSpawn(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs processes")
	}
	dir := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(dir, "copilot"), "github.com/rpcproxy/rpcproxy/cmd/fakecli")
	build.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build fake copilot: %v\n%s", err, out)
	}
	bin := buildProxy(t, dir, "rpcproxy", "v1")
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	listen := freeAddr(t)
	p := startBinary(t, bin, filepath.Join(dir, "proxy.log"), "serve", "--spawn", "1", "--listen", listen)
	p.waitLog(t, "rpcproxy listening", 1)
	p.cmd.Process.Signal(syscall.SIGUSR2)
	p.waitLog(t, "SIGUSR2 refused", 1)
	if !strings.Contains(p.logs(), "managed pool") || strings.Contains(p.logs(), "new process started") {
		t.Fatal("refusal without its reason, or a new process started")
	}
	c := sdkClient(t, listen)
	call(t, c, "session.create", map[string]any{"sessionId": "pooled"})
	turnOn(t, c, "pooled", "hello")
}

// With gossip, the old process leaves the cluster so that the new one can
// bind the same gossip address; the new one finds the backends through its
// seeds and takes over.
func TestSIGUSR2UpgradeWithGossip(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs processes")
	}
	becomeSubreaper(t)
	dir := t.TempDir()
	bin := buildProxy(t, dir, "rpcproxy", "v1")
	next := buildProxy(t, dir, "rpcproxy.next", "v2")
	cfgPath := filepath.Join(dir, "rpcproxy.hcl")
	if err := os.WriteFile(cfgPath, []byte("shutdown_timeout = \"30s\"\ngossip { profile = \"fast\" }\nhealth {\n  interval = \"100ms\"\n  timeout = \"100ms\"\n}\nagent { drain_timeout = \"200ms\" }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cli, err := fakecli.Listen("127.0.0.1:0", fakecli.Config{Name: "cli-0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	agentGossip, proxyGossip, listen := freeAddr(t), freeAddr(t), freeAddr(t)
	agent := startBinary(t, bin, filepath.Join(dir, "agent.log"), "agent", "--config", cfgPath, "--cli", cli.Addr(), "--bind", agentGossip)
	agent.waitLog(t, "agent joined gossip cluster", 1)
	old := startBinary(t, bin, filepath.Join(dir, "proxy.log"), "serve", "--config", cfgPath, "--listen", listen,
		"--gossip-bind", proxyGossip, "--join", agentGossip)
	old.waitLog(t, "backend joined", 1)
	c := sdkClient(t, listen)
	call(t, c, "session.create", map[string]any{"sessionId": "gossiped"})
	turnOn(t, c, "gossiped", "before")

	if err := os.Rename(next, bin); err != nil {
		t.Fatal(err)
	}
	old.cmd.Process.Signal(syscall.SIGUSR2)
	upgradedPID(t, old, 1)
	old.waitLog(t, "new process ready", 1)
	if strings.Count(old.logs(), "gossip="+proxyGossip+" seeds=") != 2 {
		t.Fatal("the new process did not join gossip on the old one's address")
	}
	turnOn(t, c, "gossiped", "in flight across the hand-over")
	c.Close()
	if code := old.waitExit(t, 15*time.Second); code != 0 {
		t.Fatalf("old process exit code %d", code)
	}
	c2 := sdkClient(t, listen)
	call(t, c2, "session.resume", map[string]any{"sessionId": "gossiped"})
	turnOn(t, c2, "gossiped", "through the new process")
}
