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
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/hashicorp/go-hclog"

	"github.com/rpcproxy/rpcproxy/internal/admin"
	"github.com/rpcproxy/rpcproxy/internal/config"
	"github.com/rpcproxy/rpcproxy/internal/frame"
	"github.com/rpcproxy/rpcproxy/internal/health"
	"github.com/rpcproxy/rpcproxy/internal/localpool"
	"github.com/rpcproxy/rpcproxy/internal/membership"
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
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "HCL configuration file (flags override it)")
	listen := fs.String("listen", "", `address SDK clients connect to (default ":4321")`)
	logLevel := fs.String("log-level", "", "trace, debug, info, warn or error (default info)")
	spawn := fs.Int("spawn", -1, "start N headless CLI servers as a managed local pool")
	adminAddr := fs.String("admin", "", `admin HTTP listener, e.g. "127.0.0.1:9090" (default off)`)
	gossipBind := fs.String("gossip-bind", "", `join gossip on this address (default "`+config.DefaultGossipBind+`" when --join is given)`)
	var backends, join listFlag
	fs.Var(&backends, "backend", "a static backend host:port (repeatable; replaces the file's backends)")
	fs.Var(&join, "join", "address of a gossip cluster member to join (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("serve: unexpected argument %q", fs.Arg(0))
	}
	o := config.Overrides{Listen: *listen, LogLevel: *logLevel, GossipBind: *gossipBind, Admin: *adminAddr}
	if join.set {
		o.Join = join.values
	}
	if backends.set {
		o.Backends = backends.values
	}
	if *spawn >= 0 {
		o.Spawn = spawn
	}
	cfg, err := loadConfig(*configPath, o)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var reload func() (*config.Config, error)
	if *configPath != "" {
		reload = func() (*config.Config, error) { return loadConfig(*configPath, o) }
	}
	return runProxy(ctx, cfg, log, reload)
}

// runProxy runs the proxy until ctx ends, then shuts everything down in
// order. reload, if set, re-reads the configuration on SIGHUP.
func runProxy(ctx context.Context, cfg *config.Config, log hclog.Logger, reload func() (*config.Config, error)) error {
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
	var srv *proxy.Server
	events := admin.NewEvents(0)
	checker := health.New(health.Config{
		Interval: cfg.Health.Interval,
		Timeout:  cfg.Health.Timeout,
		Rise:     cfg.Health.Rise,
		Fall:     cfg.Health.Fall,
		OnInfo:   func(info json.RawMessage) { srv.SetInfo(info) },
		OnChange: stateEvents(events),
		Logger:   log.Named("health"),
	}, table)
	defer checker.Close()
	srv = proxy.New(proxy.Config{
		Token: cfg.ConnectionToken,
		Limits: frame.Limits{
			MaxBody:       cfg.Limits.MaxFrameBytes,
			MaxHeaderLine: cfg.Limits.MaxHeaderLineBytes,
			FrameTimeout:  cfg.Limits.FrameTimeout,
		},
		HandshakeTimeout: cfg.Limits.HandshakeTimeout,
		DialTimeout:      cfg.Upstream.DialTimeout,
		RequestTimeout:   cfg.Upstream.RequestTimeout,
		MaxPending:       cfg.Limits.MaxPendingRequests,
		OnSessionMoved:   moveEvents(events),
		Logger:           log.Named("proxy"),
	}, table, checker)

	static := newStaticBackends(checker, log)
	if err := static.apply(cfg.Backends); err != nil {
		return err
	}
	if reload != nil {
		go static.reloadOnHangup(ctx, reload)
	}

	if cfg.Pool.Spawn > 0 {
		pool, token, err := startPool(ctx, cfg, log)
		if err != nil {
			return err
		}
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

	var node *membership.Node
	if cfg.Gossip.Enabled() {
		var err error
		if node, err = joinAsProxy(ctx, cfg, checker, log); err != nil {
			return err
		}
		defer node.Close()
	}
	adminSrv, err := startAdmin(cfg, &adminSource{checker: checker, table: table, proxy: srv, node: node}, events, log)
	if err != nil {
		return err
	}
	defer adminSrv.Close()

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	log.Info("rpcproxy listening", "addr", ln.Addr().String(), "backends", table.Ring().Len())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		log.Info("shutting down")
		adminSrv.SetDraining()
		srv.Close()
		<-errc
		return nil
	case err := <-errc:
		srv.Close()
		return err
	}
}

// startPool starts the managed local pool of headless CLI servers. Each
// run gets a random connection token shared by the children, so no other
// local user can use their loopback ports.
func startPool(ctx context.Context, cfg *config.Config, log hclog.Logger) (*localpool.Pool, string, error) {
	bin, err := localpool.FindBinary(cfg.Pool.Executable())
	if err != nil {
		return nil, "", err
	}
	home := cfg.Pool.Home
	if home == "" {
		if home, err = os.MkdirTemp("", "rpcproxy-pool-"); err != nil {
			return nil, "", fmt.Errorf("pool home: %w", err)
		}
	}
	var raw [24]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, "", fmt.Errorf("pool token: %w", err)
	}
	token := hex.EncodeToString(raw[:])
	pool, err := localpool.Start(ctx, localpool.Config{
		Count:  cfg.Pool.Spawn,
		Binary: bin,
		Args:   cfg.Pool.Args,
		Home:   home,
		Env:    []string{"COPILOT_CONNECTION_TOKEN=" + token},
		Logger: log.Named("pool"),
	})
	return pool, token, err
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

// staticBackends keeps the checker in step with the configuration's backend
// blocks across reloads.
type staticBackends struct {
	checker *health.Checker
	log     hclog.Logger
	mu      sync.Mutex
	current map[string]config.Backend
}

func newStaticBackends(checker *health.Checker, log hclog.Logger) *staticBackends {
	return &staticBackends{checker: checker, log: log, current: map[string]config.Backend{}}
}

// apply adds new backends and sets each one's draining flag; a backend no
// longer configured is drained (its sessions move at their next turn
// boundary) rather than cut off.
func (s *staticBackends) apply(backends []config.Backend) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := make(map[string]config.Backend, len(backends))
	for _, b := range backends {
		next[b.Address] = b
		if _, ok := s.current[b.Address]; !ok {
			if err := s.checker.Add(&router.Backend{Name: b.Address, Addr: b.Address, Token: b.Token, Weight: b.Weight, Source: router.SourceStatic}); err != nil {
				return err
			}
		}
		if err := s.checker.SetDraining(b.Address, b.Drain); err != nil {
			return err
		}
	}
	for addr := range s.current {
		if _, ok := next[addr]; !ok {
			s.log.Info("backend removed from the configuration: draining it", "backend", addr)
			_ = s.checker.SetDraining(addr, true)
			next[addr] = config.Backend{Address: addr, Drain: true}
		}
	}
	s.current = next
	return nil
}

// reloadOnHangup re-reads the configuration on every SIGHUP until ctx ends.
// A file that does not load or validate is logged and changes nothing.
func (s *staticBackends) reloadOnHangup(ctx context.Context, reload func() (*config.Config, error)) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		cfg, err := reload()
		if err != nil {
			s.log.Warn("configuration reload failed; keeping the running one", "error", err)
			continue
		}
		if err := s.apply(cfg.Backends); err != nil {
			s.log.Warn("configuration reload: backends", "error", err)
			continue
		}
		s.log.Info("configuration reloaded", "backends", len(cfg.Backends))
	}
}
