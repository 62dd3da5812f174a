package harness

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

const (
	proxyBuildTimeout = 5 * time.Minute
	proxyStartTimeout = 30 * time.Second
)

// BuildProxy builds rpcproxy from the root module into dir and returns the
// binary's path; $E2E_PROXY_BIN, when set, is used instead.
func BuildProxy(ctx context.Context, dir string) (string, error) {
	if p := os.Getenv("E2E_PROXY_BIN"); p != "" {
		abs, err := filepath.Abs(p)
		if err != nil {
			return "", err
		}
		if _, err := os.Stat(abs); err != nil {
			return "", fmt.Errorf("harness: E2E_PROXY_BIN: %w", err)
		}
		return abs, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, proxyBuildTimeout)
	defer cancel()
	out := filepath.Join(dir, "rpcproxy")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/rpcproxy")
	cmd.Dir = root
	// Build in the root module as it is, whatever workspace or flags the e2e
	// module's test run has.
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-buildvcs=false")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("harness: go build ./cmd/rpcproxy: %w\n%s", err, b)
	}
	return out, nil
}

// Proxy is a running rpcproxy.
type Proxy struct {
	// Addr is the host:port SDK clients connect to.
	Addr string
	// Backends are the --backend addresses it was given, in order.
	Backends []string
	// Proc is the proxy process; its log holds the placement lines.
	Proc *Process
}

// StartProxy starts `bin serve --listen <free loopback port> --backend …
// --log-level <level>` with working directory dir and waits until it accepts
// connections.
func StartProxy(ctx context.Context, bin, dir string, backends []string, logLevel string) (*Proxy, error) {
	addr, err := freeLoopbackAddr()
	if err != nil {
		return nil, fmt.Errorf("harness: proxy port: %w", err)
	}
	args := []string{"serve", "--listen", addr, "--log-level", logLevel}
	for _, b := range backends {
		args = append(args, "--backend", b)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = scrubbedEnv()
	proc, err := startProcess("rpcproxy", cmd, filepath.Join(dir, "rpcproxy.log"))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, proxyStartTimeout)
	defer cancel()
	if err := waitReady(ctx, proc, addr); err != nil {
		proc.Stop()
		return nil, err
	}
	return &Proxy{Addr: addr, Backends: backends, Proc: proc}, nil
}

// waitReady waits until addr accepts connections, failing early when the
// process exits.
func waitReady(ctx context.Context, proc *Process, addr string) error {
	ready := make(chan error, 1)
	dialCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { ready <- waitDial(dialCtx, addr) }()
	select {
	case err := <-ready:
		if err != nil {
			return fmt.Errorf("harness: %s not accepting on %s: %w; output:\n%s", proc.Name, addr, err, proc.LogTail(30))
		}
		return nil
	case <-proc.done:
		cancel()
		<-ready
		return fmt.Errorf("harness: %s exited (%v) before listening on %s; output:\n%s", proc.Name, proc.waitErr, addr, proc.LogTail(30))
	}
}

var (
	placedSession = regexp.MustCompile(`\bsession="?([^\s"]+)"?`)
	placedBackend = regexp.MustCompile(`\bbackend="?([^\s"]+)"?`)
	movedFrom     = regexp.MustCompile(`\bfrom="?([^\s"]+)"?`)
	movedTo       = regexp.MustCompile(`\bto="?([^\s"]+)"?`)
)

// Placement is one "session placed" line of the proxy's log.
type Placement struct {
	Session, Backend string
}

// Placements returns the proxy log's "session placed" lines in order.
func (p *Proxy) Placements() []Placement {
	var out []Placement
	for _, line := range strings.Split(p.Proc.Log(), "\n") {
		if !strings.Contains(line, "session placed") {
			continue
		}
		s, b := placedSession.FindStringSubmatch(line), placedBackend.FindStringSubmatch(line)
		if s == nil || b == nil {
			continue
		}
		out = append(out, Placement{Session: s[1], Backend: b[1]})
	}
	return out
}

// PlacedBackends returns the distinct backends the proxy logged for session
// id, in first-seen order.
func (p *Proxy) PlacedBackends(id string) []string {
	var out []string
	seen := map[string]bool{}
	for _, pl := range p.Placements() {
		if pl.Session == id && !seen[pl.Backend] {
			seen[pl.Backend] = true
			out = append(out, pl.Backend)
		}
	}
	return out
}

// Move is one "session moved" line of the proxy's log: the proxy resumed a
// session on another backend (failover, rebalancing).
type Move struct {
	Session, From, To string
}

// Moves returns the proxy log's "session moved" lines in order.
func (p *Proxy) Moves() []Move {
	var out []Move
	for _, line := range strings.Split(p.Proc.Log(), "\n") {
		if !strings.Contains(line, "session moved") {
			continue
		}
		s, f, t := placedSession.FindStringSubmatch(line), movedFrom.FindStringSubmatch(line), movedTo.FindStringSubmatch(line)
		if s == nil || f == nil || t == nil {
			continue
		}
		out = append(out, Move{Session: s[1], From: f[1], To: t[1]})
	}
	return out
}
