// Package testcluster runs, for in-process tests, a proxy in front of fake
// CLI servers, all on loopback, with the real health checker and ring:
// one harness instead of one per test package. (internal/proxy's own
// tests cannot use it: this package imports proxy.)
package testcluster

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/rpcproxy/rpcproxy/internal/fakecli"
	"github.com/rpcproxy/rpcproxy/internal/health"
	"github.com/rpcproxy/rpcproxy/internal/jsonrpc"
	"github.com/rpcproxy/rpcproxy/internal/proxy"
	"github.com/rpcproxy/rpcproxy/internal/router"
	"github.com/rpcproxy/rpcproxy/internal/testlog"
)

// callTimeout bounds every call the harness makes itself (the handshake).
const callTimeout = 10 * time.Second

// Options shape a Cluster. The zero value is three fakes, each with its
// own session store, no tokens, and a quick health check.
type Options struct {
	// Backends is how many fakes start. Zero means 3.
	Backends int
	// SharedStore gives all fakes one session store (a shared
	// COPILOT_HOME), so a session can move between them.
	SharedStore bool
	// Fake is the base config of every fake; Name, Store and Token are set
	// per fake.
	Fake fakecli.Config
	// BackendToken is every fake's connection token.
	BackendToken string
	// Health configures the checker; OnInfo, OnChange and Logger are the
	// harness's. A zero Interval means 100ms with a 500ms Timeout: quick
	// enough to notice a frozen backend within a second, slack enough not
	// to take a busy one down under the race detector.
	Health health.Config
	// Proxy adjusts the proxy's Config (Logger set, HandshakeTimeout 2s)
	// before proxy.New.
	Proxy func(*proxy.Config)
}

// Cluster is a running proxy with its fakes. Start stops it all at the
// test's cleanup; its fields are for the test to read.
type Cluster struct {
	Addr    string // the proxy's listener
	Server  *proxy.Server
	Checker *health.Checker
	Table   *router.Table
	Store   *fakecli.Store // the shared store, or nil
	Logs    *testlog.Buffer

	t        testing.TB
	fakes    []*fakecli.Server
	backendT string
	base     fakecli.Config
}

// Start runs a Cluster for t.
func Start(t testing.TB, o Options) *Cluster {
	t.Helper()
	if o.Backends == 0 {
		o.Backends = 3
	}
	c := &Cluster{t: t, Logs: &testlog.Buffer{}, Table: router.NewTable(router.RingConfig{}),
		backendT: o.BackendToken, base: o.Fake}
	if o.SharedStore {
		c.Store = fakecli.NewStore()
	}
	log := hclog.New(&hclog.LoggerOptions{Level: hclog.Trace, Output: c.Logs})
	hc := o.Health
	if hc.Interval == 0 {
		hc.Interval, hc.Timeout = 100*time.Millisecond, 500*time.Millisecond
	}
	hc.OnInfo = func(info json.RawMessage) { c.Server.SetInfo(info) }
	hc.OnChange = func(name string, _, to health.State) {
		if to == health.StateDraining {
			c.Server.BackendDraining(name)
		}
	}
	hc.Logger = log.Named("health")
	c.Checker = health.New(hc, c.Table)
	pcfg := proxy.Config{Logger: log.Named("proxy"), HandshakeTimeout: 2 * time.Second}
	if o.Proxy != nil {
		o.Proxy(&pcfg)
	}
	c.Server = proxy.New(pcfg, c.Table, c.Checker)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		c.Checker.Close()
		t.Fatal(err)
	}
	c.Addr = ln.Addr().String()
	served := make(chan struct{})
	go func() { c.Server.Serve(ln); close(served) }()
	t.Cleanup(func() {
		if t.Failed() {
			logs := c.Logs.String()
			t.Logf("proxy log (tail):\n%s", logs[max(0, len(logs)-6000):])
		}
		c.Server.Close()
		<-served
		c.Checker.Close()
		for _, f := range c.fakes {
			f.Close()
		}
	})
	for i := range o.Backends {
		c.AddBackend(fmt.Sprintf("fake-%d", i))
	}
	return c
}

// AddBackend starts one more fake, named name, and adds it to the pool.
func (c *Cluster) AddBackend(name string) *fakecli.Server {
	c.t.Helper()
	fc := c.base
	fc.Name, fc.Store, fc.Token = name, c.Store, c.backendT
	f, err := fakecli.Listen("127.0.0.1:0", fc)
	if err != nil {
		c.t.Fatal(err)
	}
	c.fakes = append(c.fakes, f)
	if err := c.Checker.Add(&router.Backend{Name: f.Addr(), Addr: f.Addr(), Token: c.backendT}); err != nil {
		c.t.Fatal(err)
	}
	return f
}

// Fakes are the fakes started so far, in order (killed ones included).
func (c *Cluster) Fakes() []*fakecli.Server { return c.fakes }

// Kill closes fake i, as a crashed CLI: its connections drop.
func (c *Cluster) Kill(i int) { c.fakes[i].Close() }

// Freeze makes fake i stop answering while its connections stay open, as a
// hung CLI; Thaw undoes it.
func (c *Cluster) Freeze(i int) { c.fakes[i].Freeze() }

// Thaw lets a frozen fake i answer again.
func (c *Cluster) Thaw(i int) { c.fakes[i].Thaw() }

// Holder returns the fake that has the session loaded, or nil.
func (c *Cluster) Holder(sid string) *fakecli.Server {
	for _, f := range c.fakes {
		for _, s := range f.Sessions() {
			if s == sid {
				return f
			}
		}
	}
	return nil
}

// Dial connects a client to the proxy without a handshake; it is closed
// at the test's cleanup.
func (c *Cluster) Dial(t testing.TB) *jsonrpc.Conn {
	t.Helper()
	conn, err := jsonrpc.Dial(c.Addr, jsonrpc.Config{})
	if err != nil {
		t.Fatalf("dial proxy: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// Client connects a client to the proxy and completes the connect
// handshake with token ("" sends none).
func (c *Cluster) Client(t testing.TB, token string) *jsonrpc.Conn {
	t.Helper()
	conn := c.Dial(t)
	params := map[string]any{"supportedTaskKinds": []string{"agent"}}
	if token != "" {
		params["token"] = token
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	if _, err := conn.Call(ctx, "connect", params); err != nil {
		t.Fatalf("connect: %v", err)
	}
	return conn
}
