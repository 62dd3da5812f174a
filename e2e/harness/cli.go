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
	// Proc is the server process.
	Proc *Process
}

// StartCLI starts `bin --headless --port 0` with COPILOT_HOME=home (empty
// means dir/home) and working directory dir/work, and waits until it listens.
func StartCLI(ctx context.Context, bin, name, dir, home string) (*CLIServer, error) {
	if home == "" {
		home = filepath.Join(dir, "home")
	}
	work := filepath.Join(dir, "work")
	for _, d := range []string{home, work} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("harness: %s: %w", name, err)
		}
	}
	cmd := exec.Command(bin, "--headless", "--port", "0")
	cmd.Dir = work
	cmd.Env = append(scrubbedEnv(), "COPILOT_HOME="+home)
	proc, err := startProcess(name, cmd, filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, cliStartTimeout)
	defer cancel()
	m, err := proc.WaitFor(ctx, cliListening)
	if err != nil {
		proc.Stop()
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", m[1])
	if err := waitDial(ctx, addr); err != nil {
		proc.Stop()
		return nil, fmt.Errorf("harness: %s: %w", name, err)
	}
	return &CLIServer{Name: name, Addr: addr, Home: home, Proc: proc}, nil
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
