package proxy

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/rpcproxy/rpcproxy/internal/fakecli"
	"github.com/rpcproxy/rpcproxy/internal/frame"
	"github.com/rpcproxy/rpcproxy/internal/health"
	"github.com/rpcproxy/rpcproxy/internal/metrics"
	"github.com/rpcproxy/rpcproxy/internal/router"
	"github.com/rpcproxy/rpcproxy/internal/testlog"
)

// cluster is a proxy in front of fake CLI servers, all on loopback, with
// the real health checker and ring.
type cluster struct {
	t       testing.TB
	fakes   []*fakecli.Server
	store   *fakecli.Store
	table   *router.Table
	checker *health.Checker
	srv     *Server
	addr    string
	logs    *testlog.Buffer
}

type clusterOptions struct {
	backends     int
	sharedStore  bool   // one session store for all fakes (a shared COPILOT_HOME)
	token        string // the proxy's client token
	backendToken string // every fake's COPILOT_CONNECTION_TOKEN
	limits       frame.Limits
	health       health.Config
	reqTimeout   time.Duration
	onEmpty      func(backend string)
	writeTimeout time.Duration    // the proxy's WriteTimeout (default 30s)
	handshake    time.Duration    // the proxy's HandshakeTimeout (default 2s)
	fake         fakecli.Config   // base config of every fake (Name, Store and Token are set per fake)
	metrics      *metrics.Metrics // when set: the proxy's Observer and the checks' OnCheck
	proxy        func(*Config)    // adjusts the proxy's Config before New
}

// testConnectionsPerBackend is every test cluster's default
// ConnectionsPerBackend: 4, what rpcproxy serve uses by default;
// RPCPROXY_TEST_SHARED=n runs the suite over n shared upstreams per
// backend, 0 with every client's upstreams its own (make unit runs both).
var testConnectionsPerBackend = func() int {
	n, err := strconv.Atoi(os.Getenv("RPCPROXY_TEST_SHARED"))
	if err != nil {
		return 4
	}
	return n
}()

func newCluster(t testing.TB, o clusterOptions) *cluster {
	t.Helper()
	if o.backends == 0 {
		o.backends = 3
	}
	c := &cluster{t: t, logs: &testlog.Buffer{}}
	if o.sharedStore {
		c.store = fakecli.NewStore()
	}
	log := hclog.New(&hclog.LoggerOptions{Level: hclog.Trace, Output: c.logs})
	c.table = router.NewTable(router.RingConfig{})
	hc := o.health
	if hc.Interval == 0 {
		// Quick enough to notice a frozen backend within a second, slack
		// enough not to take a busy one down under the race detector.
		hc.Interval = 100 * time.Millisecond
		hc.Timeout = 500 * time.Millisecond
	}
	hc.OnInfo = func(info json.RawMessage) { c.srv.SetInfo(info) }
	hc.OnChange = func(name string, _, to health.State) {
		if to == health.StateDraining {
			c.srv.BackendDraining(name)
		}
	}
	hc.Logger = log.Named("health")
	var obs Observer
	if o.metrics != nil {
		hc.OnCheck = o.metrics.Health.Check
		obs = o.metrics.Proxy
	}
	c.checker = health.New(hc, c.table)
	if o.handshake == 0 {
		o.handshake = 2 * time.Second
	}
	pcfg := Config{Token: o.token, Limits: o.limits, Logger: log.Named("proxy"), HandshakeTimeout: o.handshake,
		RequestTimeout: o.reqTimeout, WriteTimeout: o.writeTimeout, OnEmpty: o.onEmpty, Observer: obs,
		ConnectionsPerBackend: testConnectionsPerBackend}
	if o.proxy != nil {
		o.proxy(&pcfg)
	}
	c.srv = New(pcfg, c.table, c.checker)
	for i := 0; i < o.backends; i++ {
		fc := o.fake
		fc.Name, fc.Store, fc.Token = fmt.Sprintf("fake-%d", i), c.store, o.backendToken
		c.addBackend(fc, o.backendToken)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c.addr = ln.Addr().String()
	done := make(chan struct{})
	go func() { c.srv.Serve(ln); close(done) }()
	t.Cleanup(func() {
		if t.Failed() {
			logs := c.logs.String()
			t.Logf("proxy log (tail):\n%s", logs[max(0, len(logs)-6000):])
		}
		c.srv.Close()
		<-done
		c.checker.Close()
		for _, f := range c.fakes {
			f.Close()
		}
	})
	return c
}

// addBackend starts one more fake and adds it to the pool.
func (c *cluster) addBackend(cfg fakecli.Config, token string) *fakecli.Server {
	c.t.Helper()
	f, err := fakecli.Listen("127.0.0.1:0", cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	c.fakes = append(c.fakes, f)
	if err := c.checker.Add(&router.Backend{Name: f.Addr(), Addr: f.Addr(), Token: token}); err != nil {
		c.t.Fatal(err)
	}
	return f
}

// client connects an SDK-like client and completes the handshake.
func (c *cluster) client() *testClient {
	c.t.Helper()
	cl := dialClient(c.t, c.addr)
	var res struct {
		OK              bool `json:"ok"`
		ProtocolVersion int  `json:"protocolVersion"`
	}
	cl.mustCall("connect", map[string]any{"supportedTaskKinds": []string{"agent"}}, &res)
	if res.ProtocolVersion != 3 {
		c.t.Fatalf("connect: protocolVersion %d", res.ProtocolVersion)
	}
	return cl
}

// holders counts the fakes that have the session loaded: a session moved
// between live backends must be held by exactly one (the old one was told
// to detach it).
func (c *cluster) holders(sid string) int {
	n := 0
	for _, f := range c.fakes {
		for _, s := range f.Sessions() {
			if s == sid {
				n++
			}
		}
	}
	return n
}

// holder returns the fake that has the session loaded, or nil.
func (c *cluster) holder(sid string) *fakecli.Server {
	for _, f := range c.fakes {
		for _, s := range f.Sessions() {
			if s == sid {
				return f
			}
		}
	}
	return nil
}

// eventually waits for cond, failing the test after d.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// createSession creates a session with a tool and a provider, as the SDK does.
func createSession(t testing.TB, cl *testClient, sid string) {
	t.Helper()
	cl.mustCall("session.create", map[string]any{
		"sessionId": sid, "model": "gpt-4.1",
		"tools":    []map[string]any{{"name": "lookup", "description": "d", "parameters": map[string]any{}}},
		"provider": map[string]any{"type": "openai", "baseUrl": "http://127.0.0.1:1/v1", "apiKey": "SECRET-API-KEY"},
	}, nil)
}

// turn sends a prompt and waits for the turn to end; it returns the
// assistant.message content.
func turn(t testing.TB, cl *testClient, sid, prompt string) string {
	t.Helper()
	cl.mustCall("session.send", map[string]any{"sessionId": sid, "prompt": prompt}, nil)
	return cl.waitAssistant(sid)
}

func (c *cluster) indexOf(f *fakecli.Server) int {
	for i, x := range c.fakes {
		if x == f {
			return i
		}
	}
	return -1
}
