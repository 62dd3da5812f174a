package failover

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/rpcproxy/rpcproxy/internal/fakecli"
)

// healthSettings is the proxy's health { } block.
type healthSettings struct {
	name     string
	interval time.Duration
	timeout  time.Duration
	rise     int
	fall     int
}

func (h healthSettings) String() string {
	return fmt.Sprintf("%s (%v/%v, rise %d, fall %d)", h.name, h.interval, h.timeout, h.rise, h.fall)
}

var (
	// defaultHealth is config.example.hcl's health block.
	defaultHealth = healthSettings{name: "default", interval: time.Second, timeout: time.Second, rise: 2, fall: 2}
	// tunedHealth probes five times as often, with a timeout still far
	// above a loopback round trip.
	tunedHealth = healthSettings{name: "tuned", interval: 200 * time.Millisecond, timeout: 200 * time.Millisecond, rise: 2, fall: 2}
)

// startTimeout bounds a child's start-up (its "listening" line).
const startTimeout = 10 * time.Second

// cluster is three fakecli processes sharing one --store-dir behind one
// rpcproxy serve process, all on loopback.
type cluster struct {
	tb       testing.TB
	storeDir string
	fakes    []*fakeProcess
	proxy    *process
	addr     string // the proxy's listen address
}

// fakeProcess is one fakecli process.
type fakeProcess struct {
	name string // its --name: the server field of session.create
	addr string
	proc *process
}

var fakeListening = regexp.MustCompile(`^CLI server listening on port (\d+)$`)

// startCluster starts the fakes and the proxy and waits until the proxy listens.
func startCluster(tb testing.TB, bins binaries, hs healthSettings, backends int) *cluster {
	tb.Helper()
	c := &cluster{tb: tb, storeDir: tb.TempDir()}
	tb.Cleanup(c.Close)
	for i := range backends {
		c.fakes = append(c.fakes, startFake(tb, bins, fmt.Sprintf("fake-%d", i), c.storeDir))
	}
	conf := filepath.Join(tb.TempDir(), "rpcproxy.hcl")
	body := fmt.Sprintf(`listen = "127.0.0.1:0"
log_level = "info"
log_json = true
health {
  interval = %q
  timeout = %q
  rise = %d
  fall = %d
}
`, hs.interval, hs.timeout, hs.rise, hs.fall)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		tb.Fatal(err)
	}
	args := []string{"serve", "--config", conf}
	for _, f := range c.fakes {
		args = append(args, "--backend", f.addr)
	}
	c.proxy = startProcess(tb, "rpcproxy", bins.rpcproxy, args...)
	l, ok := c.proxy.out.wait(startTimeout, logRecord("rpcproxy listening", nil))
	if !ok {
		tb.Fatalf("rpcproxy did not start listening within %v; its output:\n%s", startTimeout, c.proxy.out.tail(40))
	}
	c.addr, _ = l.json()["addr"].(string)
	if c.addr == "" {
		tb.Fatalf("rpcproxy listening line without addr: %s", l.text)
	}
	return c
}

func startFake(tb testing.TB, bins binaries, name, storeDir string) *fakeProcess {
	tb.Helper()
	p := startProcess(tb, name, bins.fakecli, "--headless", "--port", "0", "--name", name,
		"--store-dir", storeDir, "--log-level", "warn")
	l, ok := p.out.wait(startTimeout, func(l logLine) bool { return fakeListening.MatchString(l.text) })
	if !ok {
		tb.Fatalf("%s did not start listening within %v; its output:\n%s", name, startTimeout, p.out.tail(20))
	}
	port, _ := strconv.Atoi(fakeListening.FindStringSubmatch(l.text)[1])
	return &fakeProcess{name: name, addr: "127.0.0.1:" + strconv.Itoa(port), proc: p}
}

// fake returns the fake called name, or nil.
func (c *cluster) fake(name string) *fakeProcess {
	for _, f := range c.fakes {
		if f.name == name {
			return f
		}
	}
	return nil
}

// Close stops the proxy, then the fakes (resuming stopped ones first).
// Idempotent; also run by tb.Cleanup.
func (c *cluster) Close() {
	if c.proxy != nil {
		c.proxy.Close()
	}
	for _, f := range c.fakes {
		f.proc.Close()
	}
}

// callTimeout bounds one ordinary request, and turnTimeout one whole turn:
// loopback with fakes answers in milliseconds, so hitting either is a hang.
const (
	callTimeout = 5 * time.Second
	turnTimeout = 10 * time.Second
)

// client connects an SDK-like client through the proxy.
func (c *cluster) client(tb testing.TB) *fakecli.Client {
	tb.Helper()
	return dialClient(tb, c.addr)
}

func dialClient(tb testing.TB, addr string) *fakecli.Client {
	tb.Helper()
	cl, err := fakecli.Dial(addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cl.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	if err := cl.Connect(ctx, ""); err != nil {
		tb.Fatalf("connect through the proxy: %v", err)
	}
	return cl
}
