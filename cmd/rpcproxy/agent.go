package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/rpcproxy/rpcproxy/internal/config"
	"github.com/rpcproxy/rpcproxy/internal/health"
	"github.com/rpcproxy/rpcproxy/internal/membership"
	"github.com/rpcproxy/rpcproxy/internal/router"
)

// agent runs beside one headless CLI server: it joins the gossip cluster as
// a backend, checks its CLI and publishes the result in its metadata, and
// on SIGTERM drains then leaves.
func agent(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "HCL configuration file (flags override it)")
	cli := fs.String("cli", "", `address of the local headless CLI server (default "127.0.0.1:4321")`)
	advertise := fs.String("advertise", "", "address proxies dial for this CLI server (default the --cli address)")
	bind := fs.String("bind", "", `gossip address (default "`+config.DefaultGossipBind+`", loopback only)`)
	name := fs.String("name", "", "node name in the cluster (default agent-<advertised address>)")
	logLevel := fs.String("log-level", "", "trace, debug, info, warn or error (default info)")
	drain := fs.Duration("drain-timeout", -1, "time spent draining after SIGTERM before leaving (default 10s)")
	var join listFlag
	fs.Var(&join, "join", "address of a cluster member to join (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("agent: unexpected argument %q", fs.Arg(0))
	}
	o := config.Overrides{LogLevel: *logLevel, GossipBind: *bind}
	if join.set {
		o.Join = join.values
	}
	cfg, err := loadConfig(*configPath, o)
	if err != nil {
		return err
	}
	if *cli != "" {
		cfg.Agent.CLI = *cli
	}
	if *advertise != "" {
		cfg.Agent.Advertise = *advertise
	}
	if *name != "" {
		cfg.Agent.Name = *name
	}
	if *drain >= 0 {
		cfg.Agent.DrainTimeout = *drain
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runAgent(ctx, cfg, log)
}

// agentMeta is the agent's metadata, changed by its CLI checks and its drain.
type agentMeta struct {
	mu   sync.Mutex
	meta membership.Meta
	node *membership.Node
	log  hclog.Logger
}

func (a *agentMeta) update(change func(*membership.Meta)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	change(&a.meta)
	if a.node != nil {
		if err := a.node.UpdateMeta(a.meta); err != nil {
			a.log.Warn("cannot publish metadata", "error", err)
		}
	}
}

func runAgent(ctx context.Context, cfg *config.Config, log hclog.Logger) error {
	addr := cfg.Agent.Advertise
	if addr == "" {
		addr = cfg.Agent.CLI
	}
	name := cfg.Agent.Name
	if name == "" {
		name = "agent-" + addr
	}
	addr, err := advertisedCLI(ctx, addr)
	if err != nil {
		return err
	}
	am := &agentMeta{log: log, meta: membership.Meta{
		Role: membership.RoleBackend, Addr: addr, Weight: cfg.Agent.Weight, Healthy: true, Version: metaVersion(),
	}}

	// The agent's own check of its CLI: the same probes a proxy runs.
	checker := health.New(health.Config{
		Interval: cfg.Health.Interval,
		Timeout:  cfg.Health.Timeout,
		Rise:     cfg.Health.Rise,
		Fall:     cfg.Health.Fall,
		OnInfo: func(info json.RawMessage) {
			var v struct {
				ProtocolVersion int `json:"protocolVersion"`
			}
			if json.Unmarshal(info, &v) == nil && v.ProtocolVersion > 0 {
				am.update(func(m *membership.Meta) { m.ProtocolVersion = v.ProtocolVersion })
			}
			// Once per new connection: says the token and address are right.
			log.Info("local CLI accepted the agent's connect", "cli", cfg.Agent.CLI, "protocol_version", v.ProtocolVersion)
		},
		OnChange: func(_ string, _, to health.State) {
			log.Info("local CLI state", "cli", cfg.Agent.CLI, "state", to.String())
			am.update(func(m *membership.Meta) { m.Healthy = to != health.StateDown })
		},
		Logger: log.Named("health"),
	}, router.NewTable(router.RingConfig{}))
	defer checker.Close()

	mc, err := gossipConfig(cfg, name, am.meta, log)
	if err != nil {
		return err
	}
	node, err := membership.Join(ctx, mc)
	if err != nil {
		return err
	}
	am.mu.Lock()
	am.node = node
	am.mu.Unlock()
	if err := checker.Add(&router.Backend{Name: cfg.Agent.CLI, Addr: cfg.Agent.CLI, Token: cfg.Agent.Token}); err != nil {
		node.Shutdown()
		return err
	}
	log.Info("agent joined gossip cluster", "node", node.Name(), "gossip", node.Addr(), "cli", cfg.Agent.CLI, "advertise", addr)

	<-ctx.Done()
	// SIGTERM: announce draining so proxies send no new sessions and move
	// the existing ones at their next turn boundary, then leave.
	log.Info("draining", "timeout", cfg.Agent.DrainTimeout)
	am.update(func(m *membership.Meta) { m.Draining = true })
	time.Sleep(cfg.Agent.DrainTimeout)
	am.mu.Lock()
	am.node = nil
	am.mu.Unlock()
	if err := node.Leave(0); err != nil {
		log.Warn("leave", "error", err)
	}
	node.Shutdown()
	log.Info("agent left the cluster")
	return nil
}
