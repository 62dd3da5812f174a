package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"

	"github.com/rpcproxy/rpcproxy/internal/admin"
	"github.com/rpcproxy/rpcproxy/internal/config"
	"github.com/rpcproxy/rpcproxy/internal/frame"
	"github.com/rpcproxy/rpcproxy/internal/health"
	"github.com/rpcproxy/rpcproxy/internal/localpool"
	"github.com/rpcproxy/rpcproxy/internal/metrics"
	"github.com/rpcproxy/rpcproxy/internal/proxy"
	"github.com/rpcproxy/rpcproxy/internal/router"
)

// loadConfig reads the file (if any), applies the flags and validates.
func loadConfig(path string, o config.Overrides) (*config.Config, error) {
	cfg := config.Default()
	if path != "" {
		var err error
		if cfg, err = config.Load(path); err != nil {
			return nil, err
		}
	} else {
		cfg.ApplyEnv(os.Getenv)
	}
	cfg.Apply(o)
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

func newLogger(cfg *config.Config, w io.Writer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:       "rpcproxy",
		Level:      hclog.LevelFromString(cfg.LogLevel),
		JSONFormat: cfg.LogJSON,
		Output:     w,
	})
}

func serve(args []string, stderr io.Writer) error {
	src, err := parseServeFlags(args, stderr)
	if err != nil {
		return err
	}
	cfg, err := src.load()
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	sigs := watchSignals()
	defer sigs.Close()
	return runProxy(sigs.stopping, cfg, log, sigs.hangups, src)
}

// configSource is where serve's configuration comes from: the file given
// with --config (if any) and the command line's flags over it. SIGHUP loads
// it again.
type configSource struct {
	path      string
	overrides config.Overrides
}

func (c configSource) load() (*config.Config, error) { return loadConfig(c.path, c.overrides) }

// backendsFromFlags: --backend replaces the file's backend blocks.
func (c configSource) backendsFromFlags() bool { return c.overrides.Backends != nil }

func parseServeFlags(args []string, stderr io.Writer) (configSource, error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "HCL configuration `file` (flags override it; SIGHUP re-reads it)")
	listen := fs.String("listen", "", `address SDK clients connect to (default ":4321")`)
	logLevel := fs.String("log-level", "", "trace, debug, info, warn or error (default info)")
	var spawn intFlag
	fs.Var(&spawn, "spawn", "start `N` headless CLI servers as a managed local pool (default 0: none)")
	adminAddr := fs.String("admin", "", "admin HTTP listener `host:port`, e.g. 127.0.0.1:9090 (default off)")
	gossipBind := gossipBindFlags(fs, `join gossip on this address (default "`+config.DefaultGossipBind+`" when --join is given)`)
	var backends, join listFlag
	fs.Var(&backends, "backend", "a static backend `host:port` (repeatable; replaces the file's backends)")
	fs.Var(&join, "join", "`host:port` of a gossip cluster member to join (repeatable)")
	if err := fs.Parse(args); err != nil {
		return configSource{}, err
	}
	if fs.NArg() > 0 {
		return configSource{}, fmt.Errorf("serve: unexpected argument %q", fs.Arg(0))
	}
	if err := checkGossipBind(fs); err != nil {
		return configSource{}, fmt.Errorf("serve: %w", err)
	}
	o := config.Overrides{Listen: *listen, LogLevel: *logLevel, GossipBind: *gossipBind, Admin: *adminAddr}
	if join.set {
		o.Join = join.values
	}
	if backends.set {
		o.Backends = backends.values
	}
	if spawn.set {
		o.Spawn = &spawn.value
	}
	return configSource{path: *configPath, overrides: o}, nil
}

// runProxy runs the proxy until ctx ends or a new process took over
// (SIGUSR2, upgrade.go), then drains (shutdown.go) and shuts everything
// down in order. Each value on hangups (SIGHUP) reloads src.
func runProxy(ctx context.Context, cfg *config.Config, log hclog.Logger, hangups <-chan struct{}, src configSource) error {
	if len(cfg.Backends) == 0 && cfg.Pool.Spawn == 0 && !cfg.Gossip.Enabled() {
		return errors.New("no backends: give --backend ADDR, --spawn N, --join ADDR, or a config file with backend blocks, pool { spawn = N } or gossip")
	}
	if cfg.ConnectionToken == "" {
		log.Warn("no connection token configured: connections will be accepted from any client (set connection_token or " + config.EnvConnectionToken + ")")
	}

	table := router.NewTable(router.RingConfig{
		Partitions:  cfg.Ring.Partitions,
		Replication: cfg.Ring.Replication,
		Load:        cfg.Ring.Load,
	})
	var (
		srv    *proxy.Server
		static *staticBackends
	)
	reg := metrics.New()
	events := admin.NewEvents(0)
	onState := stateEvents(events)
	checker := health.New(health.Config{
		Interval: cfg.Health.Interval,
		Timeout:  cfg.Health.Timeout,
		Rise:     cfg.Health.Rise,
		Fall:     cfg.Health.Fall,
		OnInfo:   func(info json.RawMessage) { srv.SetInfo(info) },
		OnChange: func(name string, from, to health.State) {
			onState(name, from, to)
			if to == health.StateDraining {
				srv.BackendDraining(name) // logs only
			}
		},
		OnCheck: reg.Health.Check,
		Logger:  log.Named("health"),
	}, table)
	defer checker.Close()
	srv = proxy.New(proxy.Config{
		Token: cfg.ConnectionToken,
		Limits: frame.Limits{
			MaxBody:       cfg.Limits.MaxFrameBytes,
			MaxHeaderLine: cfg.Limits.MaxHeaderLineBytes,
			FrameTimeout:  cfg.Limits.FrameTimeout,
			Budget:        frame.NewBudget(int64(cfg.Limits.MaxBufferedBytes)),
		},
		MaxBodyBeforeConnect:  cfg.Limits.MaxUnauthenticatedFrameBytes,
		HandshakeTimeout:      cfg.Limits.HandshakeTimeout,
		DialTimeout:           cfg.Upstream.DialTimeout,
		RequestTimeout:        cfg.Upstream.RequestTimeout,
		ConnectionsPerBackend: cfg.Upstream.ConnectionsPerBackend,
		PoolLifecycle:         cfg.Upstream.Lifecycle == config.LifecyclePool,
		ClientQueueBytes:      cfg.Limits.ClientQueueBytes,
		MaxPending:            cfg.Limits.MaxPendingRequests,
		MaxConnections:        cfg.Limits.MaxConnections,
		MaxConnectionsPerIP:   cfg.Limits.MaxConnectionsPerIP,
		MaxSessions:           cfg.Limits.MaxSessionsPerClient,
		MaxSessionParams:      cfg.Limits.MaxSessionParamsBytes,
		MaxClientParams:       cfg.Limits.MaxClientParamsBytes,
		ClientIdleTimeout:     cfg.Limits.ClientIdleTimeout,
		OnEmpty:               func(string) { static.emptied() },
		OnSessionMoved:        moveEvents(events),
		Logger:                log.Named("proxy"),
		Observer:              reg.Proxy,
	}, table, checker)

	static = newStaticBackends(checker, srv.SessionCount, log)
	if src.path != "" && src.backendsFromFlags() {
		log.Info(flagBackendsNote)
	}
	if err := static.apply(cfg.Backends); err != nil {
		return err
	}
	rl := &reloader{static: static, started: cfg, src: src, log: log}
	reloadCtx, stopReloads := context.WithCancel(ctx)
	reloading := make(chan struct{})
	go func() {
		defer close(reloading)
		rl.run(reloadCtx, hangups)
	}()
	// Before the checker closes: a reload in progress finishes first.
	defer func() { stopReloads(); <-reloading }()

	if cfg.Pool.Spawn > 0 {
		pool, token, removeHome, err := startPool(ctx, cfg, log)
		if err != nil {
			return err
		}
		// Deferred calls run last-in first-out: the children stop before
		// the home they write in is removed.
		defer removeHome()
		defer pool.Close()
		slots := make([]string, len(pool.Addrs()))
		for i, addr := range pool.Addrs() {
			slots[i] = addr
			if err := checker.Add(&router.Backend{Name: addr, Addr: addr, Token: token, Source: router.SourcePool}); err != nil {
				return err
			}
		}
		go followPool(pool, slots, token, checker, log)
	}

	var member *gossipMember
	if cfg.Gossip.Enabled() {
		var err error
		if member, err = joinGossip(ctx, cfg, checker, log); err != nil {
			return err
		}
		defer member.Close()
	}
	ln, inherited, err := listenOrInherit(cfg.Listen, log)
	if err != nil {
		return err
	}
	// After the SDK listener: /readyz never says ready before clients can
	// connect.
	adminSrv, err := startAdmin(cfg, &adminSource{checker: checker, table: table, proxy: srv, member: member},
		events, reg, metricsHandler(reg, srv, checker, table, member), log)
	if err != nil {
		ln.Close()
		return err
	}
	defer adminSrv.Close()
	if inherited { // a new process of an upgrade: take clients once they can be served
		if err := awaitBackends(ctx, table, checker, log); err != nil {
			ln.Close()
			return err
		}
	}
	log.Info("rpcproxy listening", "addr", ln.Addr().String(), "backends", table.Ring().Len())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	if inherited {
		notifyReady(log)
	}
	upgrades := startUpgrader(ln, cfg, member, log)
	defer upgrades.Close()
	select {
	case <-ctx.Done():
		adminSrv.SetDraining()
		upgrades.Close()
		return stopProxy(srv, errc, cfg.ShutdownTimeout, log)
	case <-upgrades.HandedOver():
		adminSrv.SetDraining()
		return stopProxy(srv, errc, cfg.ShutdownTimeout, log)
	case err := <-errc:
		srv.Close()
		return err
	}
}

// startPool starts the managed local pool of headless CLI servers. Each
// run gets a random connection token shared by the children, so no other
// local user can use their loopback ports. With no pool { home }, the
// children share a private home made here (sessions and their transcripts
// live in it); removeHome deletes that directory, and is to be called once
// the pool is closed. It never touches a home the configuration gave.
func startPool(ctx context.Context, cfg *config.Config, log hclog.Logger) (pool *localpool.Pool, token string, removeHome func(), err error) {
	bin, err := localpool.FindBinary(cfg.Pool.Executable())
	if err != nil {
		return nil, "", nil, err
	}
	home := cfg.Pool.Home
	removeHome = func() {}
	if home == "" {
		if home, err = os.MkdirTemp("", "rpcproxy-pool-"); err != nil {
			return nil, "", nil, fmt.Errorf("pool home: %w", err)
		}
		removeHome = func() {
			if err := os.RemoveAll(home); err != nil {
				log.Warn("cannot remove the pool's private home", "home", home, "error", err)
				return
			}
			log.Debug("removed the pool's private home", "home", home)
		}
		defer func() {
			if err != nil {
				removeHome()
			}
		}()
	}
	var raw [24]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, "", nil, fmt.Errorf("pool token: %w", err)
	}
	token = hex.EncodeToString(raw[:])
	pool, err = localpool.Start(ctx, localpool.Config{
		Count:  cfg.Pool.Spawn,
		Binary: bin,
		Args:   cfg.Pool.Args,
		Home:   home,
		Env:    []string{"COPILOT_CONNECTION_TOKEN=" + token},
		Logger: log.Named("pool"),
	})
	if err != nil {
		return nil, "", nil, err
	}
	return pool, token, removeHome, nil
}

// followPool keeps the checker's backends in step with the pool's children:
// a child restarted on another port replaces its old address. It ends when
// the pool closes its event channel.
func followPool(pool *localpool.Pool, slots []string, token string, checker *health.Checker, log hclog.Logger) {
	for ev := range pool.Events() {
		if !ev.Up || ev.Child >= len(slots) || slots[ev.Child] == ev.Addr {
			continue
		}
		log.Info("pool child moved", "child", ev.Child, "from", slots[ev.Child], "to", ev.Addr)
		checker.Remove(slots[ev.Child])
		slots[ev.Child] = ev.Addr
		if err := checker.Add(&router.Backend{Name: ev.Addr, Addr: ev.Addr, Token: token, Source: router.SourcePool}); err != nil {
			log.Warn("cannot add moved pool child", "error", err)
		}
	}
}

// flagBackendsNote says what a reload applies when --backend and --config
// are given together.
const flagBackendsNote = "--backend flags replace the file's backend blocks: a reload (SIGHUP) applies the file's token, weight and drain to the backends the flags name, and adds or removes none"

// staticBackends keeps the checker in step with the configuration's backend
// blocks across reloads. A backend removed from the configuration is
// drained, then forgotten once it holds no session.
type staticBackends struct {
	checker  *health.Checker
	sessions func(backend string) int // sessions placed on a backend
	log      hclog.Logger
	// kick wakes run when a backend's session count dropped to zero.
	kick chan struct{}

	mu      sync.Mutex
	current map[string]config.Backend // every static backend the checker holds
	removed map[string]bool           // of those, the ones draining before they are forgotten
}

func newStaticBackends(checker *health.Checker, sessions func(string) int, log hclog.Logger) *staticBackends {
	return &staticBackends{checker: checker, sessions: sessions, log: log, kick: make(chan struct{}, 1),
		current: map[string]config.Backend{}, removed: map[string]bool{}}
}

// emptied is told that a backend holds no session any more; it never blocks.
func (s *staticBackends) emptied() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// apply adds new backends, updates the token and weight of known ones, and
// sets each one's draining flag; a backend no longer configured is drained
// (its sessions move at their next turn boundary) rather than cut off, and
// forgotten once it holds no session.
func (s *staticBackends) apply(backends []config.Backend) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := make(map[string]bool, len(backends))
	for _, b := range backends {
		next[b.Address] = true
		rb := &router.Backend{Name: b.Address, Addr: b.Address, Token: b.Token, Weight: b.Weight, Source: router.SourceStatic}
		old, known := s.current[b.Address]
		switch {
		case !known:
			if err := s.checker.Add(rb); err != nil {
				return err
			}
		case old.Token != b.Token || old.Weight != b.Weight:
			if err := s.checker.Update(rb); err != nil {
				return err
			}
			// Never the token itself: only that it changed.
			s.log.Info("backend updated", "backend", b.Address, "weight", b.Weight, "token_changed", old.Token != b.Token)
		}
		if s.removed[b.Address] {
			s.log.Info("backend back in the configuration", "backend", b.Address)
			delete(s.removed, b.Address)
		}
		s.current[b.Address] = b
		if err := s.checker.SetDraining(b.Address, b.Drain); err != nil {
			return err
		}
	}
	for addr := range s.current {
		if !next[addr] && !s.removed[addr] {
			s.log.Info("backend removed from the configuration: draining it", "backend", addr)
			s.removed[addr] = true
			_ = s.checker.SetDraining(addr, true)
		}
	}
	s.forgetDrainedLocked()
	return nil
}

// forgetDrainedLocked stops checking every removed backend that holds no
// session; s.mu is held.
func (s *staticBackends) forgetDrainedLocked() {
	for addr := range s.removed {
		if s.sessions(addr) > 0 {
			continue
		}
		s.log.Info("backend removed from the configuration holds no sessions: forgotten", "backend", addr)
		s.checker.Remove(addr)
		delete(s.removed, addr)
		delete(s.current, addr)
	}
}

// reloader applies the configuration again on SIGHUP: the backend blocks
// and log_level take effect; every other changed setting is named in a log
// line as needing a restart.
type reloader struct {
	static  *staticBackends
	started *config.Config // what the process runs with
	src     configSource
	log     hclog.Logger
}

// run reloads on every value of hangups and forgets drained backends when
// kicked, until ctx ends. It is the one goroutine that changes the static
// backends after start-up.
func (r *reloader) run(ctx context.Context, hangups <-chan struct{}) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hangups:
			r.reload()
		case <-r.static.kick:
			r.static.mu.Lock()
			r.static.forgetDrainedLocked()
			r.static.mu.Unlock()
		}
	}
}

// reload loads the configuration again. A file that does not load or
// validate is logged and changes nothing.
func (r *reloader) reload() {
	if r.src.path == "" {
		r.log.Info("SIGHUP: nothing to reload (started without --config); a changed flag needs a restart")
		return
	}
	next, err := r.src.load()
	if err != nil {
		r.log.Warn("configuration reload failed; keeping the running one", "error", err)
		return
	}
	if err := r.static.apply(next.Backends); err != nil {
		r.log.Warn("configuration reload: backends", "error", err)
		return
	}
	if level := hclog.LevelFromString(next.LogLevel); level != r.log.GetLevel() {
		r.log.SetLevel(level)
		r.log.Info("log level changed", "level", next.LogLevel)
	}
	for _, name := range config.Changed(r.started, next) {
		if name == "log_level" || strings.HasPrefix(name, "agent.") { // applied; ignored by serve
			continue
		}
		r.log.Warn("changed setting needs a restart; the running value is kept", "setting", name)
	}
	if r.src.backendsFromFlags() {
		r.log.Info(flagBackendsNote)
	}
	r.log.Info("configuration reloaded", "backends", len(next.Backends))
}
