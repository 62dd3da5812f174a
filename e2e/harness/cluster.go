package harness

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rpcproxy/rpcproxy/internal/modelstub"
)

// DefaultBackends is how many CLI servers sit behind the proxy.
const DefaultBackends = 3

// Options configures a Cluster. The zero value reads the environment.
type Options struct {
	// Backends is the number of CLI servers. Zero means $E2E_BACKENDS, else
	// DefaultBackends. Direct mode always starts one.
	Backends int
	// Direct puts no proxy in front: Target is the one CLI server. False
	// means whatever $E2E_DIRECT says.
	Direct bool
	// ProxyLogLevel is rpcproxy's --log-level. Empty means "debug".
	ProxyLogLevel string
	// SharedHome gives every CLI server the same COPILOT_HOME, one session
	// store for all (what failover needs). False: one store per server.
	SharedHome bool
	// Config, when set, is the text of an HCL file given with --config to
	// every rpcproxy process (proxies and agents); flags set by the harness
	// (listen, backends, gossip addresses, log level) override it.
	Config string
	// Gossip starts an `rpcproxy agent` beside every CLI server and gives
	// the proxies no --backend: they find the servers by gossip. Start
	// returns once every proxy has logged "backend joined" for each one.
	Gossip bool
	// Proxies is the number of rpcproxy front ends. Zero means 1; more than
	// one needs Gossip (the first is the seed the others and the agents join).
	Proxies int
	// CLIEnv, AgentEnv and ProxyEnv are added ("KEY=value") to the scrubbed
	// environment of every CLI server, agent and proxy: tokens and gossip
	// keys given the way an operator would.
	CLIEnv, AgentEnv, ProxyEnv []string
}

func (o Options) withDefaults() (Options, error) {
	if !o.Direct {
		o.Direct = Direct()
	}
	if o.Backends == 0 {
		o.Backends = DefaultBackends
		if v := os.Getenv("E2E_BACKENDS"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return o, fmt.Errorf("harness: E2E_BACKENDS=%q: want a positive number", v)
			}
			o.Backends = n
		}
	}
	if o.Direct {
		o.Backends = 1
	}
	if o.ProxyLogLevel == "" {
		o.ProxyLogLevel = "debug"
	}
	if o.Proxies == 0 {
		o.Proxies = 1
	}
	if o.Direct && (o.Gossip || o.Proxies > 1) {
		return o, fmt.Errorf("harness: direct mode has no proxy, so no gossip and no second proxy")
	}
	if o.Proxies > 1 && !o.Gossip {
		return o, fmt.Errorf("harness: %d proxies need Options.Gossip", o.Proxies)
	}
	return o, nil
}

// Cluster is the model stub, the CLI servers and (unless direct) rpcproxy in
// front of them. Close tears everything down.
type Cluster struct {
	// WorkDir holds every server's home, working directory and log.
	WorkDir string
	// Stub is the model stub; StubURL is its base URL for a BYOK provider.
	Stub    *modelstub.Server
	StubURL string
	// Backends are the CLI servers, cli0…cliN-1.
	Backends []*CLIServer
	// Proxy is rpcproxy (the first of Proxies), nil in direct mode.
	Proxy *Proxy
	// Proxies are every rpcproxy front end, in start order; empty in
	// direct mode.
	Proxies []*Proxy
	// Agents are the `rpcproxy agent`s with Options.Gossip, Agents[i]
	// beside Backends[i].
	Agents []*Agent
	// Target is the address SDK clients connect to: the (first) proxy, or
	// in direct mode the one CLI server.
	Target string
	// SharedHome is the one COPILOT_HOME of every backend with
	// Options.SharedHome, else empty.
	SharedHome string

	stubLog   *os.File
	closeOnce sync.Once
	closeErr  error
}

// Direct reports whether the cluster has no proxy.
func (c *Cluster) Direct() bool { return c.Proxy == nil }

// Start brings up a cluster. Errors for missing prerequisites wrap
// ErrUnavailable. On error everything already started is torn down.
func Start(ctx context.Context, opts Options) (_ *Cluster, err error) {
	opts, err = opts.withDefaults()
	if err != nil {
		return nil, err
	}
	bin, err := CopilotBinary()
	if err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", "rpcproxy-e2e-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{WorkDir: work}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()

	c.stubLog, err = os.Create(filepath.Join(work, "modelstub.log"))
	if err != nil {
		return nil, err
	}
	c.Stub = modelstub.New(modelstub.Config{
		Logger: slog.New(slog.NewTextHandler(c.stubLog, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if c.StubURL, err = c.Stub.Start("127.0.0.1:0"); err != nil {
		return nil, err
	}

	// The CLI servers start concurrently with the proxy build.
	var proxyBin string
	var buildErr error
	var wg sync.WaitGroup
	if !opts.Direct {
		wg.Add(1)
		go func() {
			defer wg.Done()
			proxyBin, buildErr = BuildProxy(ctx, work)
		}()
	}
	sharedHome := ""
	if opts.SharedHome {
		c.SharedHome = filepath.Join(work, "shared-home")
		sharedHome = c.SharedHome
	}
	c.Backends = make([]*CLIServer, opts.Backends)
	errs := make([]error, opts.Backends)
	for i := range c.Backends {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("cli%d", i)
			c.Backends[i], errs[i] = StartCLI(ctx, bin, name, filepath.Join(work, name), sharedHome, opts.CLIEnv...)
		}()
	}
	wg.Wait()
	if err := errors.Join(append(errs, buildErr)...); err != nil {
		return nil, err
	}

	if opts.Direct {
		c.Target = c.Backends[0].Addr
		return c, nil
	}
	configFile := ""
	if opts.Config != "" {
		configFile = filepath.Join(work, "rpcproxy.hcl")
		if err := os.WriteFile(configFile, []byte(opts.Config), 0o600); err != nil {
			return nil, err
		}
	}
	addrs := make([]string, len(c.Backends))
	for i, b := range c.Backends {
		addrs[i] = b.Addr
	}
	if opts.Gossip {
		err = c.startGossip(ctx, opts, proxyBin, configFile)
	} else {
		var p *Proxy
		p, err = StartProxy(ctx, ProxyConfig{Bin: proxyBin, Dir: work, Backends: addrs, LogLevel: opts.ProxyLogLevel, ConfigFile: configFile, Env: opts.ProxyEnv})
		c.Proxies = []*Proxy{p}
	}
	if err != nil {
		return nil, err
	}
	c.Proxy = c.Proxies[0]
	c.Target = c.Proxy.Addr
	return c, nil
}

// gossipJoinTimeout bounds the wait for every proxy to see every agent.
const gossipJoinTimeout = 30 * time.Second

// startGossip starts the proxies (the first is the seed, the others join
// it) and one agent per CLI server (joining the seed), then waits until
// every proxy has added every CLI server to its pool.
func (c *Cluster) startGossip(ctx context.Context, opts Options, bin, configFile string) error {
	for i := range opts.Proxies {
		cfg := ProxyConfig{Bin: bin, Dir: c.WorkDir, Name: "rpcproxy", LogLevel: opts.ProxyLogLevel, ConfigFile: configFile, Gossip: true, Env: opts.ProxyEnv}
		if i > 0 {
			cfg.Name = fmt.Sprintf("rpcproxy%d", i)
			cfg.Join = []string{c.Proxies[0].GossipAddr}
		}
		p, err := StartProxy(ctx, cfg)
		if err != nil {
			return err
		}
		c.Proxies = append(c.Proxies, p)
	}
	c.Agents = make([]*Agent, len(c.Backends))
	errs := make([]error, len(c.Backends))
	var wg sync.WaitGroup
	for i, b := range c.Backends {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.Agents[i], errs[i] = StartAgent(ctx, AgentConfig{
				Bin: bin, Dir: c.WorkDir, Name: fmt.Sprintf("agent%d", i), CLI: b.Addr,
				Join: []string{c.Proxies[0].GossipAddr}, ConfigFile: configFile, LogLevel: opts.ProxyLogLevel,
				Env: opts.AgentEnv,
			})
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, gossipJoinTimeout)
	defer cancel()
	for _, p := range c.Proxies {
		err := Eventually(ctx, p.Proc.Name+" to add every CLI server from gossip", func() bool {
			joined := p.JoinedBackends()
			for _, b := range c.Backends {
				if !slices.Contains(joined, b.Addr) {
					return false
				}
			}
			return true
		})
		if err != nil {
			return fmt.Errorf("%w; joined: %v; output:\n%s", err, p.JoinedBackends(), p.Proc.LogTail(30))
		}
	}
	return nil
}

// StartT starts a cluster for one test and closes it in t.Cleanup. It skips
// the test when a prerequisite is missing and E2E_REQUIRED is not set.
func StartT(t testing.TB, opts Options) *Cluster {
	t.Helper()
	c, err := Start(context.Background(), opts)
	if err != nil {
		SkipOrFatal(t, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(c.Diagnostics(40))
		}
		c.Close()
	})
	return c
}

// SkipOrFatal skips t for a missing prerequisite unless E2E_REQUIRED is set,
// and fails it for anything else.
func SkipOrFatal(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, ErrUnavailable) && !Required() {
		t.Skipf("end-to-end prerequisites missing (set E2E_REQUIRED=1 to fail instead): %v", err)
	}
	t.Fatal(err)
}

// BackendOf returns the one backend whose store holds session id, and an
// error when none or several do. With a shared home the store cannot tell:
// it is always an error.
func (c *Cluster) BackendOf(id string) (*CLIServer, error) {
	if c.SharedHome != "" {
		return nil, fmt.Errorf("session %s: backends share one store; ask the proxy's placements", id)
	}
	var found []*CLIServer
	for _, b := range c.Backends {
		if b.HasSession(id) {
			found = append(found, b)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return nil, fmt.Errorf("session %s is in no backend's session-state", id)
	default:
		names := make([]string, len(found))
		for i, b := range found {
			names[i] = b.Name
		}
		return nil, fmt.Errorf("session %s is in the session-state of %d backends: %s", id, len(found), strings.Join(names, ", "))
	}
}

// Backend returns the backend listening on addr, or nil.
func (c *Cluster) Backend(addr string) *CLIServer {
	for _, b := range c.Backends {
		if b.Addr == addr {
			return b
		}
	}
	return nil
}

// Diagnostics returns the last n lines of every log, for a failed test.
func (c *Cluster) Diagnostics(n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "cluster work directory: %s\n", c.WorkDir)
	for _, p := range c.Processes() {
		fmt.Fprintf(&b, "----- %s (%s) last %d lines -----\n%s\n", p.Name, p.LogPath, n, p.LogTail(n))
	}
	if c.stubLog != nil {
		if data, err := os.ReadFile(c.stubLog.Name()); err == nil {
			lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
			if len(lines) > n {
				lines = lines[len(lines)-n:]
			}
			fmt.Fprintf(&b, "----- modelstub last %d lines -----\n%s\n", n, strings.Join(lines, "\n"))
		}
	}
	return b.String()
}

// Processes returns every child process of the cluster.
func (c *Cluster) Processes() []*Process {
	var out []*Process
	for _, p := range c.Proxies {
		if p != nil {
			out = append(out, p.Proc)
		}
	}
	for _, a := range c.Agents {
		if a != nil {
			out = append(out, a.Proc)
		}
	}
	for _, s := range c.Backends {
		if s != nil {
			out = append(out, s.Proc)
		}
	}
	return out
}

// Close stops the proxy, the CLI servers and the stub, and removes the work
// directory unless E2E_KEEP is set. Safe to call more than once.
func (c *Cluster) Close() error {
	c.closeOnce.Do(func() {
		// Proxies first (their clients see a closed connection, not backend
		// errors), then agents and CLI servers together.
		var wg sync.WaitGroup
		stopAll := func(procs []*Process) {
			for _, p := range procs {
				wg.Add(1)
				go func() { defer wg.Done(); p.Stop() }()
			}
			wg.Wait()
		}
		var proxies []*Process
		for _, p := range c.Proxies {
			if p != nil {
				proxies = append(proxies, p.Proc)
			}
		}
		rest := c.Processes()[len(proxies):] // Processes lists proxies first
		stopAll(proxies)
		stopAll(rest)
		if c.Stub != nil {
			c.closeErr = c.Stub.Close()
		}
		if c.stubLog != nil {
			c.stubLog.Close()
		}
		if envBool("E2E_KEEP") {
			fmt.Fprintf(os.Stderr, "e2e: kept work directory %s\n", c.WorkDir)
			return
		}
		if err := os.RemoveAll(c.WorkDir); err != nil {
			c.closeErr = errors.Join(c.closeErr, err)
		}
	})
	return c.closeErr
}
