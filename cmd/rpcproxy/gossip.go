package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

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
	allowed := make([]netip.Prefix, 0, len(cfg.Gossip.AllowedBackends))
	for i, s := range cfg.Gossip.AllowedBackends {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return membership.Config{}, fmt.Errorf("gossip.allowed_backends[%d]: %w", i, err)
		}
		allowed = append(allowed, p)
	}
	mc := membership.DefaultConfig()
	mc.NodeName = name
	mc.BindAddr = cfg.Gossip.Bind
	if mc.BindAddr == "" {
		mc.BindAddr = config.DefaultGossipBind
	}
	if host, port, err := net.SplitHostPort(mc.BindAddr); err == nil && host == "" {
		// The config's "all interfaces"; memberlist wants an IP.
		mc.BindAddr = net.JoinHostPort("0.0.0.0", port)
	}
	mc.AdvertiseAddr = cfg.Gossip.Advertise
	mc.Join = cfg.Gossip.Join
	mc.Keys = keys
	mc.Insecure = cfg.Gossip.Insecure
	mc.AllowedBackends = allowed
	mc.Profile = membership.Profile(cfg.Gossip.Profile)
	mc.Meta = meta
	mc.Logger = log.Named("gossip")
	if err := mc.Validate(); err != nil {
		return membership.Config{}, fmt.Errorf("gossip: %w", err)
	}
	return mc, nil
}

// advertiseResolveTimeout bounds the agent's one look-up of a host name in
// its advertised CLI address.
const advertiseResolveTimeout = 5 * time.Second

// advertisedCLI returns the CLI address an agent advertises for addr: proxies
// admit only an IP literal (equal to the agent's gossip IP, or in their
// gossip.allowed_backends), so a host name (e.g. a compose service name) is
// resolved once, here at start, to an IP (the first IPv4 one, else the
// first). The agent does this look-up for itself; proxies never resolve a
// name a peer gave them.
func advertisedCLI(ctx context.Context, addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("advertised CLI address %q: %w", addr, err)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return net.JoinHostPort(ip.Unmap().String(), port), nil
	}
	ctx, cancel := context.WithTimeout(ctx, advertiseResolveTimeout)
	defer cancel()
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return "", fmt.Errorf("advertised CLI address %q: %w", addr, err)
	}
	if len(ips) == 0 {
		return "", fmt.Errorf("advertised CLI address %q: host has no IP address", addr)
	}
	best := ips[0].Unmap()
	for _, ip := range ips {
		if ip.Unmap().Is4() {
			best = ip.Unmap()
			break
		}
	}
	return net.JoinHostPort(best.String(), port), nil
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
// intersected with the proxy's own checks. Only members the membership node
// admits (CLI address on their own gossip IP or in gossip.allowed_backends,
// first claimant of an address) reach the pool, and so receive the backend
// token and sessions.
func joinAsProxy(ctx context.Context, cfg *config.Config, checker *health.Checker, log hclog.Logger) (*membership.Node, error) {
	return joinWithPool(ctx, cfg, newGossipPool(cfg, checker, log), log)
}

// joinWithPool is joinAsProxy feeding an existing pool (a rejoin after a
// failed upgrade).
func joinWithPool(ctx context.Context, cfg *config.Config, pool *gossipPool, log hclog.Logger) (*membership.Node, error) {
	mc, err := gossipConfig(cfg, uniqueName("proxy"), membership.Meta{Role: membership.RoleProxy, Version: metaVersion()}, log)
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

func newGossipPool(cfg *config.Config, checker *health.Checker, log hclog.Logger) *gossipPool {
	return &gossipPool{checker: checker, token: cfg.Gossip.BackendToken, log: log.Named("gossip"), added: map[string]bool{}}
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
		_ = g.checker.SetAgentDraining(b.Addr, b.Draining)
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
