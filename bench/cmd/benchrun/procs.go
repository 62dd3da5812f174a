package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rpcproxy/rpcproxy/internal/fakecli"
)

// child is a process the bench started: a backend or a proxy under test.
// Its stderr goes to a log file in the run's scratch directory.
type child struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited
	err  error         // its exit status; read after done
	log  string        // path of its stderr log
}

// listeningLine is what the CLI (and cmd/fakecli, and the stub backend)
// print once they listen.
const listeningLine = "CLI server listening on port "

// startChild starts a process whose stderr goes to logDir/name.log. When
// waitPort is set it reads stdout up to the CLI's "listening on port N"
// line and returns N.
func startChild(ctx context.Context, name, logDir, path string, args, env []string, waitPort bool) (*child, int, error) {
	logPath := filepath.Join(logDir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, 0, err
	}
	cmd := exec.Command(path, args...)
	cmd.Stderr = logFile
	cmd.Env = env
	var stdout io.ReadCloser
	if waitPort {
		if stdout, err = cmd.StdoutPipe(); err != nil {
			logFile.Close()
			return nil, 0, err
		}
	} else {
		cmd.Stdout = logFile
	}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, 0, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, done: make(chan struct{}), log: logPath}
	go func() {
		c.err = cmd.Wait()
		logFile.Close()
		close(c.done)
	}()
	if !waitPort {
		return c, 0, nil
	}

	portc := make(chan int, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		found := false
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), listeningLine); ok && !found {
				if p, err := strconv.Atoi(strings.TrimSpace(rest)); err == nil {
					found = true
					portc <- p
				}
			}
		}
		// Keep draining so the child never blocks on a full pipe.
		_, _ = io.Copy(io.Discard, stdout)
	}()
	timer := time.NewTimer(15 * time.Second)
	defer timer.Stop()
	select {
	case p := <-portc:
		return c, p, nil
	case <-c.done:
		return nil, 0, fmt.Errorf("%s exited before listening (%v); see %s", name, c.err, logPath)
	case <-timer.C:
		c.stop()
		return nil, 0, fmt.Errorf("%s did not report its port in 15s; see %s", name, logPath)
	case <-ctx.Done():
		c.stop()
		return nil, 0, ctx.Err()
	}
}

// pid is the process id.
func (c *child) pid() int { return c.cmd.Process.Pid }

// alive reports whether the process is still running.
func (c *child) alive() bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM, waits up to 5 s, then kills. Safe to call twice.
func (c *child) stop() {
	if c == nil || !c.alive() {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	timer := time.NewTimer(5 * time.Second)
	defer timer.Stop()
	select {
	case <-c.done:
	case <-timer.C:
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// freePort returns a loopback port nothing listens on right now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitHandshake retries the SDK's connect handshake against addr until it is
// answered, for up to timeout: a proxy is ready when a client would be
// served. It gives up early when proc exits.
func waitHandshake(ctx context.Context, addr string, proc *child, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if proc != nil && !proc.alive() {
			return fmt.Errorf("%s exited (%v): %q; see %s", proc.name, proc.err, lastLine(proc.log), proc.log)
		}
		if last = tryHandshake(ctx, addr); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("no connect answer from %s in %v: %w", addr, timeout, last)
}

func tryHandshake(ctx context.Context, addr string) error {
	c, err := fakecli.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := c.Connect(cctx, ""); err != nil {
		return err
	}
	if err := c.Call(cctx, "ping", nil, nil); err != nil {
		return errors.Join(errors.New("ping after connect"), err)
	}
	return nil
}

// childEnv is the environment for children: the bench's own, without
// COPILOT_HOME and tokens, so fake CLIs keep sessions in memory and accept
// any client.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "COPILOT_HOME", "COPILOT_CONNECTION_TOKEN", "RPCPROXY_CONNECTION_TOKEN", "GOMAXPROCS":
			continue
		}
		env = append(env, kv)
	}
	return env
}

// lastLine is the last non-empty line of a (small) log file, for errors.
func lastLine(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}
