package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/rpcproxy/rpcproxy/internal/config"
	"github.com/rpcproxy/rpcproxy/internal/health"
	"github.com/rpcproxy/rpcproxy/internal/membership"
	"github.com/rpcproxy/rpcproxy/internal/router"
)

// agent runs beside one headless CLI server: it joins the gossip cluster as
// a backend, checks its CLI and publishes the result in its metadata, and
// on SIGTERM drains then leaves (at once on a second SIGTERM).
func agent(args []string, stderr io.Writer) error {
	path, o, err := parseAgentFlags(args, stderr)
	if err != nil {
		return err
	}
	cfg, err := loadConfig(path, o)
	if err != nil {
		return err
	}
	if err := cfg.ValidateAgent(); err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	sigs := watchSignals()
	defer sigs.Close()
	return runAgent(agentControl{
		stopping: sigs.stopping,
		now:      sigs.now,
		hangups:  sigs.hangups,
		onHangup: func() { agentHangup(path, o, cfg, log) },
	}, cfg, log)
}

func parseAgentFlags(args []string, stderr io.Writer) (string, config.Overrides, error) {
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "HCL configuration `file` (flags override it)")
	cli := fs.String("cli", "", `address of the local headless CLI server (default "127.0.0.1:4321")`)
	advertise := fs.String("advertise", "", "address proxies dial for this CLI server (default the --cli address)")
	bind := gossipBindFlags(fs, `gossip address (default "`+config.DefaultGossipBind+`", loopback only)`)
	name := fs.String("name", "", "node name in the cluster (default agent-<advertised address>)")
	logLevel := fs.String("log-level", "", "trace, debug, info, warn or error (default info)")
	var drain durationFlag
	fs.Var(&drain, "drain-timeout", "after SIGTERM, drain for this `duration` before leaving; a second SIGTERM leaves at once (default 10s)")
	var join listFlag
	fs.Var(&join, "join", "`host:port` of a cluster member to join (repeatable)")
	if err := fs.Parse(args); err != nil {
		return "", config.Overrides{}, err
	}
	if fs.NArg() > 0 {
		return "", config.Overrides{}, fmt.Errorf("agent: unexpected argument %q", fs.Arg(0))
	}
	if err := checkGossipBind(fs); err != nil {
		return "", config.Overrides{}, fmt.Errorf("agent: %w", err)
	}
	o := config.Overrides{LogLevel: *logLevel, GossipBind: *bind,
		AgentCLI: *cli, AgentAdvertise: *advertise, AgentName: *name}
	if join.set {
		o.Join = join.values
	}
	if drain.set {
		o.AgentDrainTimeout = &drain.value
	}
	return *configPath, o, nil
}

// agentHangup answers SIGHUP: the agent applies nothing at run time, so it
// names what changed in its file as needing a restart.
func agentHangup(path string, o config.Overrides, running *config.Config, log hclog.Logger) {
	if path == "" {
		log.Info("SIGHUP: nothing to reload (started without --config); a changed flag needs a restart")
		return
	}
	next, err := loadConfig(path, o)
	if err == nil {
		err = next.ValidateAgent()
	}
	if err != nil {
		log.Warn("SIGHUP: configuration does not load; the running one is kept", "error", err)
		return
	}
	changed := 0
	for _, name := range config.Changed(running, next) {
		if agentUses(name) {
			log.Warn("changed setting needs a restart; the running value is kept", "setting", name)
			changed++
		}
	}
	log.Info("SIGHUP: the agent applies no setting without a restart", "changed", changed)
}

// agentUses reports whether the agent runs with a setting: its block, gossip,
// health checks and logging.
func agentUses(name string) bool {
	for _, prefix := range []string{"agent.", "gossip.", "health.", "log_"} {
		if strings.HasPrefix(name, prefix) {
			return true
		}
	}
	return false
}

// agentControl is what ends or pokes a running agent: stopping starts its
// drain, now cuts the drain short, and onHangup (if set) answers each value
// on hangups.
type agentControl struct {
	stopping context.Context
	now      context.Context
	hangups  <-chan struct{}
	onHangup func()
}

func (c agentControl) hangup() {
	if c.onHangup != nil {
		c.onHangup()
	}
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

func runAgent(ctl agentControl, cfg *config.Config, log hclog.Logger) error {
	addr := cfg.Agent.Advertise
	if addr == "" {
		addr = cfg.Agent.CLI
	}
	name := cfg.Agent.Name
	if name == "" {
		name = "agent-" + addr
	}
	addr, err := advertisedCLI(ctl.stopping, addr)
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
	node, err := membership.Join(ctl.stopping, mc)
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

	for ctl.stopping.Err() == nil {
		select {
		case <-ctl.stopping.Done():
		case <-ctl.hangups:
			ctl.hangup()
		}
	}
	// SIGTERM: announce draining so proxies send no new sessions and move
	// the existing ones at their next turn boundary, then leave.
	log.Info("draining", "timeout", cfg.Agent.DrainTimeout)
	am.update(func(m *membership.Meta) { m.Draining = true })
	drained := time.NewTimer(cfg.Agent.DrainTimeout)
	defer drained.Stop()
drain:
	for {
		select {
		case <-drained.C:
			break drain
		case <-ctl.now.Done():
			log.Info("second signal while draining: leaving now")
			break drain
		case <-ctl.hangups:
			ctl.hangup()
		}
	}
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
