package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/rpcproxy/rpcproxy/bench/loadgen"
	"github.com/rpcproxy/rpcproxy/bench/procstat"
	"github.com/rpcproxy/rpcproxy/bench/report"
)

// pool is a set of backend processes: fake CLI servers, or stub backends
// for the idle measurement.
type pool struct {
	procs []*child
	addrs []string
}

// startFakePool starts n cmd/fakecli processes with the bench's turn shape.
func (b *bench) startFakePool(ctx context.Context, tag string) (*pool, error) {
	args := []string{"--headless", "--port", "0", "--log-level", "warn",
		"--events", strconv.Itoa(b.events), "--event-sizes", loadgen.FormatSizes(b.sizes)}
	if b.noLifecycle {
		args = append(args, "--no-lifecycle")
	}
	return b.startPool(ctx, tag, b.fakecli, args)
}

// startStubPool starts n stub backends (this binary's stub-backend mode).
func (b *bench) startStubPool(ctx context.Context, tag string) (*pool, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return b.startPool(ctx, tag, self, []string{"stub-backend"})
}

func (b *bench) startPool(ctx context.Context, tag, path string, args []string) (*pool, error) {
	p := &pool{}
	for i := range b.backends {
		c, port, err := startChild(ctx, fmt.Sprintf("%s-backend%d", tag, i), b.scratch, path, args, childEnv(), true)
		if err != nil {
			p.stop()
			return nil, err
		}
		p.procs = append(p.procs, c)
		p.addrs = append(p.addrs, "127.0.0.1:"+strconv.Itoa(port))
	}
	for _, a := range p.addrs {
		if err := waitHandshake(ctx, a, nil, 10*time.Second); err != nil {
			p.stop()
			return nil, err
		}
	}
	return p, nil
}

func (p *pool) stop() {
	for _, c := range p.procs {
		c.stop()
	}
}

// cpu sums the backends' CPU time.
func (p *pool) cpu() time.Duration {
	var sum time.Duration
	for _, c := range p.procs {
		sum += cpuOf(c.pid())
	}
	return sum
}

// conns counts the connections the backends hold: their socket
// descriptors minus one listener each.
func (p *pool) conns() int {
	n := 0
	for _, c := range p.procs {
		if s, err := procstat.Sockets(c.pid()); err == nil {
			n += max(0, s-1)
		}
	}
	return n
}

// target is what the load generator dials in one mode, and the proxy
// process in front of the backends (nil in direct mode).
type target struct {
	mode  string
	addrs []string
	proxy *child
}

func (t *target) close() { t.proxy.stop() }

// openMode starts what a mode needs in front of the pool.
func (b *bench) openMode(ctx context.Context, mode, tag string, p *pool) (*target, error) {
	switch mode {
	case report.ModeDirect:
		return &target{mode: mode, addrs: p.addrs}, nil
	case report.ModeRPCProxy:
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		addr := "127.0.0.1:" + strconv.Itoa(port)
		args := []string{"serve", "--listen", addr, "--log-level", "warn"}
		for _, a := range p.addrs {
			args = append(args, "--backend", a)
		}
		args = append(args, b.proxyArgs...)
		if b.profileDir != "" {
			args = append(args, "--cpuprofile", filepath.Join(b.profileDir, tag+".cpu"), "--memprofile", filepath.Join(b.profileDir, tag+".heap"))
		}
		return b.startProxy(ctx, mode, tag+"-rpcproxy", addr, b.rpcproxy, args)
	case report.ModeHAProxy:
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		addr := "127.0.0.1:" + strconv.Itoa(port)
		cfgPath := filepath.Join(b.scratch, tag+"-haproxy.cfg")
		if err := os.WriteFile(cfgPath, []byte(haproxyConfig(addr, p.addrs, b.nofile)), 0o644); err != nil {
			return nil, err
		}
		return b.startProxy(ctx, mode, tag+"-haproxy", addr, b.haproxy, []string{"-f", cfgPath, "-db"})
	}
	return nil, fmt.Errorf("unknown mode %q", mode)
}

// startProxy starts a proxy process listening on addr and waits until it
// answers the connect handshake.
func (b *bench) startProxy(ctx context.Context, mode, name, addr, path string, args []string) (*target, error) {
	proc, _, err := startChild(ctx, name, b.scratch, path, args, childEnv(), false)
	if err != nil {
		return nil, err
	}
	if err := waitHandshake(ctx, addr, proc, 15*time.Second); err != nil {
		proc.stop()
		return nil, err
	}
	return &target{mode: mode, addrs: []string{addr}, proxy: proc}, nil
}

// haproxyConfig is HAProxy in TCP mode in front of the backends, round robin
// per connection: each client connection gets one backend, as in direct
// mode. Timeouts are long so idle SDK connections stay up. maxconn fits
// the open files limit (HAProxy needs two descriptors per connection).
func haproxyConfig(listen string, backends []string, nofile uint64) string {
	maxconn := 60000
	if nofile > 0 {
		maxconn = max(100, min(maxconn, int(min(nofile, 1<<30))/2-200))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "global\n    maxconn %d\n\n", maxconn)
	b.WriteString("defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 1h\n    timeout server 1h\n\n")
	fmt.Fprintf(&b, "frontend sdk\n    bind %s\n    default_backend cli\n\n", listen)
	b.WriteString("backend cli\n    balance roundrobin\n")
	for i, a := range backends {
		fmt.Fprintf(&b, "    server cli%d %s\n", i, a)
	}
	return b.String()
}
