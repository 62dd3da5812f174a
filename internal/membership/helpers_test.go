package membership

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// testLogger discards logs unless MEMBERSHIP_TEST_LOG is set, in which case
// it writes them to stderr. (Not to t.Log: memberlist goroutines may log a
// moment after a test has ended.)
func testLogger(name string) hclog.Logger {
	if os.Getenv("MEMBERSHIP_TEST_LOG") == "" {
		return hclog.NewNullLogger()
	}
	return hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.Debug, Output: os.Stderr})
}

// recorder is a Listener that keeps the latest backend set and when it came.
type recorder struct {
	mu     sync.Mutex
	calls  int
	latest []Backend
	at     time.Time
	seen   map[string]bool // every backend name ever delivered
	notify chan struct{}   // 1-buffered: "a new set arrived"
}

func newRecorder() *recorder {
	return &recorder{seen: make(map[string]bool), notify: make(chan struct{}, 1)}
}

func (r *recorder) BackendsChanged(b []Backend) {
	now := time.Now()
	r.mu.Lock()
	r.calls++
	r.latest, r.at = b, now
	for _, x := range b {
		r.seen[x.Name] = true
	}
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

func (r *recorder) snapshot() (calls int, latest []Backend, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls, slices.Clone(r.latest), r.at
}

func (r *recorder) everSaw(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen[name]
}

// wait blocks until the latest delivered set satisfies ok, or fails tb after
// timeout. It returns that set and the time the listener received it.
func (r *recorder) wait(tb testing.TB, timeout time.Duration, what string, ok func([]Backend) bool) ([]Backend, time.Time) {
	tb.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		calls, latest, at := r.snapshot()
		if calls > 0 && ok(latest) {
			return latest, at
		}
		select {
		case <-r.notify:
		case <-deadline.C:
			tb.Fatalf("timed out after %v waiting for %s; last set (%d calls): %+v", timeout, what, calls, latest)
		}
	}
}

// eventually polls cond every 10ms until it holds or fails tb after timeout;
// for conditions no Listener call announces (e.g. a non-backend member).
func eventually(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

func hasBackend(name string) func([]Backend) bool {
	return func(bs []Backend) bool { return findBackend(bs, name) != nil }
}

func lacksBackend(name string) func([]Backend) bool {
	return func(bs []Backend) bool { return findBackend(bs, name) == nil }
}

func findBackend(bs []Backend, name string) *Backend {
	for i := range bs {
		if bs[i].Name == name {
			return &bs[i]
		}
	}
	return nil
}

func backendNames(bs []Backend) []string {
	names := make([]string, len(bs))
	for i, b := range bs {
		names[i] = b.Name
	}
	return names
}

// backendMeta is an agent's metadata with a fake CLI address.
func backendMeta(i int) Meta {
	return Meta{
		Role:            RoleBackend,
		Addr:            fmt.Sprintf("127.0.0.1:%d", 40000+i),
		Weight:          1,
		Healthy:         true,
		ProtocolVersion: 3,
		Version:         "test",
	}
}

var proxyMeta = Meta{Role: RoleProxy, Version: "test"}

// testConfig is a loopback, ephemeral-port config with the given profile.
func testConfig(name string, profile Profile, meta Meta, seeds ...string) Config {
	return Config{
		NodeName:      name,
		BindAddr:      "127.0.0.1:0",
		Join:          seeds,
		JoinTimeout:   3 * time.Second,
		Profile:       profile,
		Meta:          meta,
		Logger:        testLogger(name),
		LeaveTimeout:  2 * time.Second,
		UpdateTimeout: 2 * time.Second,
	}
}

// startNode joins cfg (with rec as its listener, if not nil) and shuts the
// node down when the test ends.
func startNode(tb testing.TB, cfg Config, rec *recorder) *Node {
	tb.Helper()
	if rec != nil {
		cfg.Listener = rec
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := Join(ctx, cfg)
	if err != nil {
		tb.Fatalf("Join(%s): %v", cfg.NodeName, err)
	}
	tb.Cleanup(func() { _ = n.Shutdown() })
	return n
}
