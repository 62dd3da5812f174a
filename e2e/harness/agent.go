package harness

import (
	"context"
	"fmt"
	"regexp"
	"time"
)

const agentStartTimeout = 30 * time.Second

var agentJoined = regexp.MustCompile(`agent joined gossip cluster`)

// Agent is a running `rpcproxy agent` beside one CLI server: it announces
// the server to the gossip cluster.
type Agent struct {
	// Name is the process and log name ("agent0", …).
	Name string
	// CLI is the CLI server address it checks and announces.
	CLI string
	// GossipAddr is its --bind address.
	GossipAddr string
	// Proc is the agent process.
	Proc *Process
}

// AgentConfig says how to start one `rpcproxy agent`.
type AgentConfig struct {
	// Bin is the rpcproxy binary (BuildProxy).
	Bin string
	// Dir is the working directory; the log is Dir/<Name>.log.
	Dir string
	// Name names the process, its log and its gossip node.
	Name string
	// CLI is the --cli address.
	CLI string
	// Join are --join addresses: gossip members to join (at least one).
	Join []string
	// ConfigFile, when set, is passed with --config.
	ConfigFile string
	// LogLevel is --log-level. Empty means "debug".
	LogLevel string
	// Env is added to the agent's scrubbed environment ("KEY=value").
	Env []string
}

// StartAgent starts `rpcproxy agent --cli … --bind <free loopback port>
// --join …` as cfg says and waits until it has joined the cluster.
func StartAgent(ctx context.Context, cfg AgentConfig) (*Agent, error) {
	if cfg.LogLevel == "" {
		cfg.LogLevel = "debug"
	}
	bind, err := freeGossipAddr()
	if err != nil {
		return nil, fmt.Errorf("harness: %s gossip port: %w", cfg.Name, err)
	}
	args := []string{"agent", "--cli", cfg.CLI, "--bind", bind, "--name", cfg.Name, "--log-level", cfg.LogLevel}
	if cfg.ConfigFile != "" {
		args = append(args, "--config", cfg.ConfigFile)
	}
	proc, err := startRPCProxy(cfg.Name, cfg.Bin, cfg.Dir, args, cfg.Join, cfg.Env)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, agentStartTimeout)
	defer cancel()
	if _, err := proc.WaitFor(ctx, agentJoined); err != nil {
		proc.Stop()
		return nil, err
	}
	return &Agent{Name: cfg.Name, CLI: cfg.CLI, GossipAddr: bind, Proc: proc}, nil
}
