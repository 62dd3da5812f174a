package harness

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// cliStartTimeout bounds a CLI server's start; the very first start on a
// machine unpacks the CLI under ~/.cache/copilot and takes longest.
const cliStartTimeout = 90 * time.Second

var cliListening = regexp.MustCompile(`CLI server listening on port (\d+)`)

// CLIServer is one real `copilot --headless` server with its own
// COPILOT_HOME, listening on loopback.
type CLIServer struct {
	// Name is "cli0", "cli1", … in start order.
	Name string
	// Addr is the host:port SDKs (or rpcproxy) connect to.
	Addr string
	// Home is the server's COPILOT_HOME: session-state/<id>/ lives here.
	Home string
	// Proc is the server process; Restart replaces it.
	Proc *Process

	bin, dir string
	env      []string // extra environment ("KEY=value"), kept across restarts
	starts   int      // processes started so far, for their log names
}

// StartCLI starts `bin --headless --port 0` with COPILOT_HOME=home (empty
// means dir/home), working directory dir/work and env ("KEY=value", such as
// COPILOT_CONNECTION_TOKEN) added to the scrubbed environment, and waits
// until it listens.
func StartCLI(ctx context.Context, bin, name, dir, home string, env ...string) (*CLIServer, error) {
	if home == "" {
		home = filepath.Join(dir, "home")
	}
	for _, d := range []string{home, filepath.Join(dir, "work")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("harness: %s: %w", name, err)
		}
	}
	s := &CLIServer{Name: name, Home: home, bin: bin, dir: dir, env: env}
	proc, port, err := s.start(ctx, "0")
	if err != nil {
		return nil, err
	}
	s.Addr, s.Proc = net.JoinHostPort("127.0.0.1", port), proc
	return s, nil
}

// Restart starts the server again after its process ended (Proc.Kill): same
// port, same COPILOT_HOME, same working directory, a new log file
// (<name>.<n>.log). It waits until the new process listens and replaces
// Proc. Not safe for concurrent use with other methods of s.
func (s *CLIServer) Restart(ctx context.Context) error {
	if exited, _ := s.Proc.Exited(); !exited {
		return fmt.Errorf("harness: restart %s: its process (pid %d) is still running", s.Name, s.Proc.PID())
	}
	_, port, err := net.SplitHostPort(s.Addr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, cliStartTimeout)
	defer cancel()
	// The port was free a moment ago; if the old process's socket lingers,
	// try again until the deadline.
	for {
		proc, got, err := s.start(ctx, port)
		if err == nil && got != port {
			proc.Stop()
			err = fmt.Errorf("harness: restarted %s listens on port %s, want %s", s.Name, got, port)
		}
		if err == nil {
			s.Proc = proc
			return nil
		}
		if ctx.Err() != nil || !strings.Contains(err.Error(), "EADDRINUSE") {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// start runs one server process on port ("0": any) and returns it with the
// port it reports listening on, once it accepts connections.
func (s *CLIServer) start(ctx context.Context, port string) (*Process, string, error) {
	s.starts++
	logName := s.Name + ".log"
	if s.starts > 1 {
		logName = fmt.Sprintf("%s.%d.log", s.Name, s.starts)
	}
	cmd := exec.Command(s.bin, "--headless", "--port", port)
	cmd.Dir = filepath.Join(s.dir, "work")
	cmd.Env = append(append(scrubbedEnv(), "COPILOT_HOME="+s.Home), s.env...)
	proc, err := startProcess(s.Name, cmd, filepath.Join(s.dir, logName))
	if err != nil {
		return nil, "", err
	}
	ctx, cancel := context.WithTimeout(ctx, cliStartTimeout)
	defer cancel()
	m, err := proc.WaitFor(ctx, cliListening)
	if err != nil {
		proc.Stop()
		return nil, "", err
	}
	if err := waitDial(ctx, net.JoinHostPort("127.0.0.1", m[1])); err != nil {
		proc.Stop()
		return nil, "", fmt.Errorf("harness: %s: %w", s.Name, err)
	}
	return proc, m[1], nil
}

// SessionDir is where this server keeps the state of session id.
func (s *CLIServer) SessionDir(id string) string {
	return filepath.Join(s.Home, "session-state", id)
}

// HasSession reports whether this server's store holds session id.
func (s *CLIServer) HasSession(id string) bool {
	_, err := os.Stat(s.SessionDir(id))
	return err == nil
}

// Sessions lists the session ids in this server's store.
func (s *CLIServer) Sessions() ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(s.Home, "session-state"))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, e := range entries {
		if e.IsDir() {
			ids = append(ids, e.Name())
		}
	}
	return ids, nil
}

// scrubbedEnv is the test's environment without credentials or Copilot
// settings, so that the CLI runs unauthenticated (BYOK only) and unaffected by
// the developer's own configuration.
func scrubbedEnv() []string {
	drop := []string{"COPILOT_", "GITHUB_TOKEN", "GH_TOKEN", "GH_ENTERPRISE_TOKEN", "GITHUB_ENTERPRISE_TOKEN",
		"RPCPROXY_", "OPENAI_", "ANTHROPIC_", "AZURE_OPENAI_"}
	var env []string
next:
	for _, kv := range os.Environ() {
		for _, p := range drop {
			if strings.HasPrefix(kv, p) {
				continue next
			}
		}
		env = append(env, kv)
	}
	return env
}

// waitDial waits until a TCP connection to addr succeeds.
func waitDial(ctx context.Context, addr string) error {
	var d net.Dialer
	for {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("dial %s: %w (last error: %v)", addr, ctx.Err(), err)
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// freeLoopbackAddr returns a loopback address with a port that was free a
// moment ago, for children that cannot report the port they bound.
func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// freeGossipAddr returns a loopback address whose port was free a moment
// ago for both TCP and UDP, as memberlist binds both.
func freeGossipAddr() (string, error) {
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		addr := ln.Addr().String()
		pc, err := net.ListenPacket("udp", addr)
		ln.Close()
		if err == nil {
			pc.Close()
			return addr, nil
		}
	}
	return "", fmt.Errorf("no loopback port free for both TCP and UDP")
}
