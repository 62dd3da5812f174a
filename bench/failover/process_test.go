package failover

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The binaries under test, built once per test binary into a temporary
// directory that TestMain removes.
var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// binaries are the paths of the freshly built commands.
type binaries struct {
	rpcproxy string
	fakecli  string
}

// buildTimeout bounds one `go build` (cached builds take about a second).
const buildTimeout = 5 * time.Minute

// buildBinaries builds cmd/rpcproxy and cmd/fakecli from this module, once.
func buildBinaries(tb testing.TB) binaries {
	tb.Helper()
	buildOnce.Do(func() {
		if buildDir, buildErr = os.MkdirTemp("", "rpcproxy-failover-bin-"); buildErr != nil {
			return
		}
		gocmd, err := exec.LookPath("go")
		if err != nil {
			gocmd = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		for _, name := range []string{"rpcproxy", "fakecli"} {
			ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
			cmd := exec.CommandContext(ctx, gocmd, "build", "-buildvcs=false",
				"-o", filepath.Join(buildDir, name), "github.com/rpcproxy/rpcproxy/cmd/"+name)
			out, err := cmd.CombinedOutput()
			cancel()
			if err != nil {
				buildErr = fmt.Errorf("go build cmd/%s: %w\n%s", name, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	return binaries{rpcproxy: filepath.Join(buildDir, "rpcproxy"), fakecli: filepath.Join(buildDir, "fakecli")}
}

// process is a child in a process group of its own (so a signal reaches
// everything it started), killed if the benchmark process dies, with its
// output captured line by line.
type process struct {
	name   string
	cmd    *exec.Cmd
	out    *output
	exited chan struct{} // closed once the child is reaped
	once   sync.Once
}

// stopGrace is how long a child may take to exit on SIGTERM before it is killed.
const stopGrace = 5 * time.Second

// startProcess starts bin with args; Close (also run by tb.Cleanup) ends it.
func startProcess(tb testing.TB, name, bin string, args ...string) *process {
	tb.Helper()
	p := &process{name: name, cmd: exec.Command(bin, args...), out: &output{}, exited: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p.cmd.WaitDelay = time.Second
	if err := p.cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", name, err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.exited)
	}()
	tb.Cleanup(p.Close)
	return p
}

// running reports whether the child has not been reaped yet: only then is
// its process group id certainly still its own.
func (p *process) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// signal sends sig to the child's process group.
func (p *process) signal(sig syscall.Signal) error {
	if !p.running() {
		return fmt.Errorf("%s: already exited", p.name)
	}
	if err := syscall.Kill(-p.cmd.Process.Pid, sig); err != nil {
		return fmt.Errorf("%s: %v: %w", p.name, sig, err)
	}
	return nil
}

// signalTakesEffect bounds the wait for a signal to take effect.
const signalTakesEffect = 5 * time.Second

// waitSignalled waits until sig has taken effect on the child: SIGKILL
// when it is a zombie (or reaped), SIGSTOP when every one of its threads is
// stopped. kill(2) returns before that: meanwhile a thread already running
// may still answer a request or two.
func (p *process) waitSignalled(sig syscall.Signal) error {
	deadline := time.Now().Add(signalTakesEffect)
	for {
		if !p.running() {
			if sig == syscall.SIGKILL {
				return nil
			}
			return fmt.Errorf("%s: exited", p.name)
		}
		states, err := threadStates(p.cmd.Process.Pid)
		if errors.Is(err, fs.ErrNotExist) && sig == syscall.SIGKILL {
			return nil // reaped since running() looked
		}
		if err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
		if inEffect(sig, states) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %v not in effect after %v (thread states %q)", p.name, sig, signalTakesEffect, states)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// inEffect reports whether thread states (from /proc) show sig done.
func inEffect(sig syscall.Signal, states []byte) bool {
	if len(states) == 0 {
		return sig == syscall.SIGKILL // no threads left
	}
	for _, st := range states {
		switch {
		case sig == syscall.SIGKILL && (st == 'Z' || st == 'X'):
		case sig == syscall.SIGSTOP && (st == 'T' || st == 't'):
		default:
			return false
		}
	}
	return true
}

// threadStates reads the state letter of every thread of pid from /proc.
// A thread that vanishes meanwhile is left out.
func threadStates(pid int) ([]byte, error) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("thread states: %w", err)
	}
	states := make([]byte, 0, len(tasks))
	for _, t := range tasks {
		stat, err := os.ReadFile(filepath.Join(dir, t.Name(), "stat"))
		if err != nil {
			continue
		}
		// "pid (comm) state …": comm may hold spaces or parentheses.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 || i+2 >= len(stat) {
			return nil, fmt.Errorf("thread states: cannot parse %q", stat)
		}
		states = append(states, stat[i+2])
	}
	return states, nil
}

// Close ends the child: SIGCONT (a stopped process cannot act on SIGTERM),
// SIGTERM, then SIGKILL after stopGrace. It waits for the child and is
// safe to call more than once.
func (p *process) Close() {
	p.once.Do(func() {
		if !p.running() {
			return
		}
		_ = p.signal(syscall.SIGCONT)
		_ = p.signal(syscall.SIGTERM)
		timer := time.NewTimer(stopGrace)
		defer timer.Stop()
		select {
		case <-p.exited:
			return
		case <-timer.C:
		}
		_ = p.signal(syscall.SIGKILL)
		<-p.exited // SIGKILL cannot be ignored; WaitDelay bounds the output copy
	})
}

// logLine is one line of a child's output and when it reached us.
type logLine struct {
	at   time.Time
	text string
}

// json decodes the line as a JSON log record (go-hclog's log_json format);
// nil when it is not one.
func (l logLine) json() map[string]any {
	if len(l.text) == 0 || l.text[0] != '{' {
		return nil
	}
	var m map[string]any
	if json.Unmarshal([]byte(l.text), &m) != nil {
		return nil
	}
	return m
}

// Bounds of what output keeps.
const (
	maxLines     = 100000
	maxLineBytes = 64 << 10
)

// output collects a child's stdout and stderr as timestamped lines.
type output struct {
	mu      sync.Mutex
	partial []byte
	lines   []logLine
	dropped int
}

func (o *output) Write(p []byte) (int, error) {
	now := time.Now()
	o.mu.Lock()
	defer o.mu.Unlock()
	o.partial = append(o.partial, p...)
	for {
		i := bytes.IndexByte(o.partial, '\n')
		if i < 0 && len(o.partial) < maxLineBytes {
			break
		}
		if i < 0 {
			i = len(o.partial)
		}
		if len(o.lines) < maxLines {
			o.lines = append(o.lines, logLine{at: now, text: string(o.partial[:i])})
		} else {
			o.dropped++
		}
		o.partial = o.partial[min(i+1, len(o.partial)):]
	}
	return len(p), nil
}

// find returns the first line that matches.
func (o *output) find(match func(logLine) bool) (logLine, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, l := range o.lines {
		if match(l) {
			return l, true
		}
	}
	return logLine{}, false
}

// wait returns the first line that matches, waiting up to d for it.
func (o *output) wait(d time.Duration, match func(logLine) bool) (logLine, bool) {
	deadline := time.Now().Add(d)
	for {
		if l, ok := o.find(match); ok {
			return l, true
		}
		if time.Now().After(deadline) {
			return logLine{}, false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// tail returns the last n lines, for failure reports.
func (o *output) tail(n int) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var b bytes.Buffer
	for _, l := range o.lines[max(0, len(o.lines)-n):] {
		b.WriteString(l.text)
		b.WriteByte('\n')
	}
	return b.String()
}

// logRecord matches a JSON log record with the given message whose fields
// include every key/value of want.
func logRecord(message string, want map[string]string) func(logLine) bool {
	return func(l logLine) bool {
		m := l.json()
		if m == nil || m["@message"] != message {
			return false
		}
		for k, v := range want {
			if s, _ := m[k].(string); s != v {
				return false
			}
		}
		return true
	}
}
