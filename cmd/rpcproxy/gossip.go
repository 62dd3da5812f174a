package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"

	"github.com/hashicorp/go-hclog"

	"github.com/rpcproxy/rpcproxy/internal/config"
	"github.com/rpcproxy/rpcproxy/internal/health"
	"github.com/rpcproxy/rpcproxy/internal/membership"
	"github.com/rpcproxy/rpcproxy/internal/router"
)

// gossipConfig builds the membership config shared by proxies and agents.
func gossipConfig(cfg *config.Config, name string, meta membership.Meta, log hclog.Logger) (membership.Config, error) {
	keys, err := membership.ParseKeys(cfg.Gossip.Encrypt)
	if err != nil {
		return membership.Config{}, fmt.Errorf("gossip.encrypt: %w", err)
	}
	mc := membership.DefaultConfig()
	mc.NodeName = name
	mc.BindAddr = cfg.Gossip.Bind
	if mc.BindAddr == "" {
		mc.BindAddr = config.DefaultGossipBind
	}
	mc.AdvertiseAddr = cfg.Gossip.Advertise
	mc.Join = cfg.Gossip.Join
	mc.Keys = keys
	mc.Profile = membership.Profile(cfg.Gossip.Profile)
	mc.Meta = meta
	mc.Logger = log.Named("gossip")
	return mc, nil
}

// uniqueName is a node name for a proxy: the host name and a random suffix,
// so that proxies restarted on one host never clash.
func uniqueName(prefix string) string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + host + "-" + hex.EncodeToString(b[:])
}

// joinAsProxy joins the gossip cluster as role proxy; the pool follows the
// alive backend members that report themselves healthy and not draining,
// intersected with the proxy's own checks.
func joinAsProxy(ctx context.Context, cfg *config.Config, checker *health.Checker, log hclog.Logger) (*membership.Node, error) {
	pool := &gossipPool{checker: checker, token: cfg.Gossip.BackendToken, log: log.Named("gossip"), added: map[string]bool{}}
	mc, err := gossipConfig(cfg, uniqueName("proxy"), membership.Meta{Role: membership.RoleProxy, Version: version}, log)
	if err != nil {
		return nil, err
	}
	mc.Listener = pool
	node, err := membership.Join(ctx, mc)
	if err != nil {
		return nil, err
	}
	log.Info("joined gossip cluster", "node", node.Name(), "gossip", node.Addr(), "seeds", len(cfg.Gossip.Join))
	return node, nil
}

// gossipPool applies the cluster's backend set to the checker. The ring is
// keyed by the CLI address every agent advertises, so every proxy (and a
// static --backend naming the same server) builds the same ring.
type gossipPool struct {
	checker *health.Checker
	token   string
	log     hclog.Logger
	added   map[string]bool // backends this pool added (not static ones)
}

// BackendsChanged is called from the membership node's dispatch goroutine,
// one call at a time.
func (g *gossipPool) BackendsChanged(backends []membership.Backend) {
	seen := make(map[string]bool, len(backends))
	for _, b := range backends {
		seen[b.Addr] = true
		if !g.added[b.Addr] {
			if err := g.checker.Add(&router.Backend{Name: b.Addr, Addr: b.Addr, Token: g.token, Weight: b.Weight, Source: router.SourceGossip}); err == nil {
				g.added[b.Addr] = true
				g.log.Info("backend joined", "backend", b.Addr, "node", b.Name)
			}
		}
		_ = g.checker.SetDraining(b.Addr, b.Draining)
		_ = g.checker.SetAgentHealthy(b.Addr, b.Healthy)
	}
	for addr := range g.added {
		if !seen[addr] {
			g.log.Info("backend left", "backend", addr)
			g.checker.Remove(addr)
			delete(g.added, addr)
		}
	}
}
