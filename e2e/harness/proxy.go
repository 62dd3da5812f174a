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
	// GossipAddr is its --gossip-bind address, empty without gossip.
	GossipAddr string
	// Proc is the proxy process; its log holds the placement lines.
	Proc *Process
}

// ProxyConfig says how to start one `rpcproxy serve`.
type ProxyConfig struct {
	// Bin is the rpcproxy binary (BuildProxy).
	Bin string
	// Dir is the working directory; the log is Dir/<Name>.log.
	Dir string
	// Name names the process and its log. Empty means "rpcproxy".
	Name string
	// Backends are static --backend addresses.
	Backends []string
	// LogLevel is --log-level. Empty means "debug".
	LogLevel string
	// ConfigFile, when set, is passed with --config.
	ConfigFile string
	// Gossip binds gossip on a free loopback port (--gossip-bind).
	Gossip bool
	// Join are --join addresses (gossip members to join); they need Gossip.
	Join []string
	// Env is added to the proxy's scrubbed environment ("KEY=value").
	Env []string
}

// StartProxy starts `rpcproxy serve --listen <free loopback port> …` as cfg
// says and waits until it accepts connections.
func StartProxy(ctx context.Context, cfg ProxyConfig) (*Proxy, error) {
	if cfg.Name == "" {
		cfg.Name = "rpcproxy"
	}
	if cfg.LogLevel == "" {
		cfg.LogLevel = "debug"
	}
	addr, err := freeLoopbackAddr()
	if err != nil {
		return nil, fmt.Errorf("harness: %s port: %w", cfg.Name, err)
	}
	args := []string{"serve", "--listen", addr, "--log-level", cfg.LogLevel}
	if cfg.ConfigFile != "" {
		args = append(args, "--config", cfg.ConfigFile)
	}
	for _, b := range cfg.Backends {
		args = append(args, "--backend", b)
	}
	gossipAddr := ""
	if cfg.Gossip {
		if gossipAddr, err = freeGossipAddr(); err != nil {
			return nil, fmt.Errorf("harness: %s gossip port: %w", cfg.Name, err)
		}
		args = append(args, "--gossip-bind", gossipAddr)
	}
	proc, err := startRPCProxy(cfg.Name, cfg.Bin, cfg.Dir, args, cfg.Join, cfg.Env)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, proxyStartTimeout)
	defer cancel()
	if err := waitReady(ctx, proc, addr); err != nil {
		proc.Stop()
		return nil, err
	}
	return &Proxy{Addr: addr, Backends: cfg.Backends, GossipAddr: gossipAddr, Proc: proc}, nil
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
	movedReason   = regexp.MustCompile(`\breason=("[^"]*"|\S+)`)
	// healthLine is a state change of a backend logged by rpcproxy's
	// health checker: "backend down", "backend down (passive)", "backend
	// state" (to=…), "backend state (agent report)".
	healthLine = regexp.MustCompile(`rpcproxy\.health: backend (down|state)\b`)
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
	// Reason is why: "backend lost", "ring owner changed".
	Reason string
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
		mv := Move{Session: s[1], From: f[1], To: t[1]}
		if r := movedReason.FindStringSubmatch(line); r != nil {
			mv.Reason = strings.Trim(r[1], `"`)
		}
		out = append(out, mv)
	}
	return out
}

// StateChange is one backend state change in the proxy's log.
type StateChange struct {
	// Backend is the backend's address; To is "up", "down" or "draining".
	Backend, To string
}

// StateChanges returns the health checker's state changes from the proxy's
// log, in order.
func (p *Proxy) StateChanges() []StateChange {
	var out []StateChange
	for _, line := range strings.Split(p.Proc.Log(), "\n") {
		m := healthLine.FindStringSubmatch(line)
		b := placedBackend.FindStringSubmatch(line)
		if m == nil || b == nil {
			continue
		}
		sc := StateChange{Backend: b[1], To: "down"}
		if m[1] == "state" {
			to := movedTo.FindStringSubmatch(line)
			if to == nil {
				continue
			}
			sc.To = to[1]
		}
		out = append(out, sc)
	}
	return out
}

// BackendState returns the last state the proxy logged for backend, "up"
// when it logged none (the checker starts every backend up).
func (p *Proxy) BackendState(backend string) string {
	state := "up"
	for _, sc := range p.StateChanges() {
		if sc.Backend == backend {
			state = sc.To
		}
	}
	return state
}

// WaitBackendState waits until, among the proxy's state changes after the
// first since (len(StateChanges()) taken before the action awaited), the
// last one of backend is to state ("up", "down", "draining").
func (p *Proxy) WaitBackendState(ctx context.Context, backend, state string, since int) error {
	return Eventually(ctx, fmt.Sprintf("%s to log backend %s %s", p.Proc.Name, backend, state), func() bool {
		changes := p.StateChanges()
		last := ""
		for _, sc := range changes[min(since, len(changes)):] {
			if sc.Backend == backend {
				last = sc.To
			}
		}
		return last == state
	})
}

// JoinedBackends returns the backends the proxy's gossip pool added ("backend
// joined" lines), in order.
func (p *Proxy) JoinedBackends() []string {
	var out []string
	for _, line := range strings.Split(p.Proc.Log(), "\n") {
		if !strings.Contains(line, "backend joined") {
			continue
		}
		if b := placedBackend.FindStringSubmatch(line); b != nil {
			out = append(out, b[1])
		}
	}
	return out
}
