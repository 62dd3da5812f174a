package membership

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

func TestShutdownIdempotent(t *testing.T) {
	t.Parallel()
	n := startNode(t, testConfig("proxy", ProfileFast, proxyMeta), newRecorder())
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Go(func() { errs[i] = n.Shutdown() })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Shutdown #%d: %v", i, err)
		}
	}
	if err := n.Leave(time.Second); !errors.Is(err, ErrShutdown) {
		t.Fatalf("Leave after Shutdown = %v, want ErrShutdown", err)
	}
	if err := n.UpdateMeta(proxyMeta); !errors.Is(err, ErrShutdown) {
		t.Fatalf("UpdateMeta after Shutdown = %v, want ErrShutdown", err)
	}
	if err := n.Close(); err != nil {
		t.Fatalf("Close after Shutdown = %v", err)
	}
}

func TestUpdateMetaAfterLeave(t *testing.T) {
	t.Parallel()
	n := startNode(t, testConfig("agent", ProfileFast, backendMeta(1)), nil)
	if err := n.Leave(0); err != nil {
		t.Fatal(err)
	}
	if err := n.Leave(0); err != nil {
		t.Fatalf("second Leave: %v", err)
	}
	if err := n.UpdateMeta(backendMeta(2)); !errors.Is(err, ErrLeft) {
		t.Fatalf("UpdateMeta after Leave = %v, want ErrLeft", err)
	}
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestJoinNoSeedReachable(t *testing.T) {
	t.Parallel()
	cfg := testConfig("lonely", ProfileFast, proxyMeta, closedAddr(t))
	cfg.JoinTimeout = 700 * time.Millisecond
	start := time.Now()
	n, err := Join(context.Background(), cfg)
	took := time.Since(start)
	if err == nil {
		n.Shutdown()
		t.Fatal("Join succeeded with no reachable seed")
	}
	if !errors.Is(err, ErrJoin) {
		t.Fatalf("err = %v, want ErrJoin", err)
	}
	// A refused connection fails at once, so the retries end near the timeout.
	if took < cfg.JoinTimeout || took > cfg.JoinTimeout+2*time.Second {
		t.Fatalf("Join gave up after %v, JoinTimeout %v", took, cfg.JoinTimeout)
	}
	// The port is free again: Join shut the failed node down.
	cfg2 := testConfig("again", ProfileFast, proxyMeta)
	startNode(t, cfg2, nil)
}

func TestJoinCanceled(t *testing.T) {
	t.Parallel()
	cfg := testConfig("lonely", ProfileFast, proxyMeta, closedAddr(t))
	cfg.JoinTimeout = time.Minute
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	start := time.Now()
	_, err := Join(ctx, cfg)
	if !errors.Is(err, ErrJoin) {
		t.Fatalf("err = %v, want ErrJoin", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("Join ignored cancellation for %v", took)
	}
}

func TestJoinRejectsInvalidConfig(t *testing.T) {
	t.Parallel()
	_, err := Join(context.Background(), Config{NodeName: "x"})
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("err = %v, want ErrInvalidConfig", err)
	}
}

// futureDelegate advertises metadata in a format this build does not know.
type futureDelegate struct{}

func (futureDelegate) NodeMeta(int) []byte {
	return []byte(`{"v":2,"role":{"kind":"backend"},"addr":["127.0.0.1:1"]}`)
}
func (futureDelegate) NotifyMsg([]byte)                {}
func (futureDelegate) GetBroadcasts(int, int) [][]byte { return nil }
func (futureDelegate) LocalState(bool) []byte          { return nil }
func (futureDelegate) MergeRemoteState([]byte, bool)   {}

func TestPeerWithNewerMetaIsNotABackend(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	p := startNode(t, testConfig("proxy", ProfileFast, proxyMeta), rec)
	startNode(t, testConfig("agent-1", ProfileFast, backendMeta(1), p.Addr()), nil)

	mc := memberlist.DefaultLANConfig()
	mc.Name = "future"
	mc.BindAddr, mc.BindPort = "127.0.0.1", 0
	mc.Delegate = futureDelegate{}
	mc.Logger = log.New(io.Discard, "", 0)
	ml, err := memberlist.Create(mc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ml.Shutdown() })
	if _, err := ml.Join([]string{p.Addr()}); err != nil {
		t.Fatal(err)
	}

	var future Member
	eventually(t, 5*time.Second, "proxy lists the future peer", func() bool {
		for _, m := range p.Members() {
			if m.Name == "future" {
				future = m
				return true
			}
		}
		return false
	})
	if !errors.Is(future.MetaErr, ErrMetaVersion) || future.Meta != (Meta{}) {
		t.Fatalf("future member = %+v, want zero Meta and ErrMetaVersion", future)
	}
	if got := backendNames(p.Backends()); len(got) != 1 || got[0] != "agent-1" {
		t.Fatalf("Backends() = %v, want only agent-1", got)
	}
	if rec.everSaw("future") {
		t.Fatal("listener was told of the future peer as a backend")
	}
}
