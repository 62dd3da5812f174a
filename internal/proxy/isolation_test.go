package proxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rpcproxy/rpcproxy/internal/fakecli"
	"github.com/rpcproxy/rpcproxy/internal/frame"
	"github.com/rpcproxy/rpcproxy/internal/health"
	"github.com/rpcproxy/rpcproxy/internal/router"
)

// Failure isolation: whatever one client, or one client's connection to a
// backend, does costs only that client.

// A backend answer over the frame limit fails only the upstream it came
// on: the client that asked gets a retryable error, the backend stays in
// the pool, and another client's session there carries on.
func TestOversizedAnswerFailsOnlyItsUpstream(t *testing.T) {
	c := newCluster(t, clusterOptions{backends: 1, limits: frame.Limits{MaxBody: 64 << 10},
		health: health.Config{Interval: time.Hour, Timeout: time.Second}})
	big, other := c.client(), c.client()
	createSession(t, big, "big-1")
	createSession(t, other, "steady-1")
	// Each prompt fits a frame; the history that repeats both does not.
	for i := 0; i < 2; i++ {
		turn(t, big, "big-1", strings.Repeat("x", 40<<10))
	}
	m := big.call("session.getMessages", map[string]any{"sessionId": "big-1"})
	if m.Error == nil || m.Error.Code != codeBackendUnavailable {
		t.Fatalf("oversized answer: %+v", m)
	}
	if !c.checker.Usable(c.fakes[0].Addr()) {
		t.Fatal("one oversized answer took the backend out of the pool")
	}
	if got := turn(t, other, "steady-1", "still there?"); got == "" {
		t.Fatal("other client's turn got no answer")
	}
	if got := turn(t, big, "big-1", "small again"); got == "" {
		t.Fatal("the session whose answer was oversized did not carry on")
	}
}

// silentBackend accepts connections and reads them, but never answers.
func silentBackend(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
			go func() { _, _ = bytes.NewBuffer(nil).ReadFrom(conn) }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return ln.Addr().String()
}

// sessionOn finds a session id the ring places on backend.
func sessionOn(t *testing.T, ring *router.Ring, prefix, backend string) string {
	t.Helper()
	for i := 0; i < 10000; i++ {
		sid := fmt.Sprintf("%s-%d", prefix, i)
		if b := ring.Lookup([]byte(sid)); b != nil && b.Name == backend {
			return sid
		}
	}
	t.Fatalf("no session id lands on %s", backend)
	return ""
}

// A backend that accepts connections and never answers does not hold up a
// client's sessions on other backends: the session created there waits
// for its handshake off the client's reader, while a turn on a healthy
// backend, sent after it, is answered first.
func TestSilentBackendDoesNotBlockOtherSessions(t *testing.T) {
	c := newCluster(t, clusterOptions{backends: 1, handshake: 3 * time.Second,
		health: health.Config{Interval: time.Hour, Timeout: 5 * time.Second, Fall: 5}})
	cl := c.client()
	createSession(t, cl, "warm-0") // the healthy backend's upstream is open
	silent := silentBackend(t)
	if err := c.checker.Add(&router.Backend{Name: silent, Addr: silent}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "silent backend on the ring", func() bool { return c.table.Ring().Len() == 2 })
	ring := c.table.Ring()
	stuck := sessionOn(t, ring, "stuck", silent)
	fine := sessionOn(t, ring, "fine", c.fakes[0].Addr())
	createSession(t, cl, fine)

	stuckCreate := cl.start("session.create", map[string]any{"sessionId": stuck, "model": "gpt-4.1"})
	send := cl.start("session.send", map[string]any{"sessionId": fine, "prompt": "hello"})
	select {
	case m := <-send:
		if m.Error != nil {
			t.Fatalf("send on the healthy backend: %+v", m.Error)
		}
	case m := <-stuckCreate:
		t.Fatalf("the silent backend's handshake (%+v) held up the healthy backend's session", m.Error)
	case <-time.After(10 * time.Second):
		t.Fatal("no answer")
	}
	if got := cl.waitAssistant(fine); got == "" {
		t.Fatal("turn on the healthy backend got no answer")
	}
	m := wait(t, stuckCreate, "create on the silent backend")
	if m.Error == nil || m.Error.Code != codeBackendUnavailable {
		t.Fatalf("create on the silent backend: %+v", m)
	}
}

// rawSession opens a client that completes connect, creates a session and
// starts a turn, then never reads again: the proxy's writes to it block
// once the socket buffers fill.
func rawSession(t *testing.T, addr, sid string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	w := frame.NewWriter(conn)
	for i, req := range []struct {
		method string
		params any
	}{
		{"connect", map[string]any{}},
		{"session.create", map[string]any{"sessionId": sid, "model": "m"}},
		{"session.send", map[string]any{"sessionId": sid, "prompt": "flood me"}},
	} {
		body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": i + 1, "method": req.method, "params": req.params})
		_ = w.Write(body)
		_ = w.Flush()
		if i == 0 {
			// The connect answer, read so the client is connected.
			r := frame.NewReader(conn, nil, frame.Limits{})
			if _, err := r.Read(); err != nil {
				t.Fatal(err)
			}
		}
	}
	return conn
}

// Clients that do not read do not delay the failover of others: with 20
// clients whose writes are blocked and the backend frozen, a normal
// client's pending request is answered with the retryable error within
// fall × interval + timeout + 1 s of the freeze, every time.
func TestNonReadingClientsDoNotDelayFailover(t *testing.T) {
	hc := health.Config{Interval: time.Second, Timeout: time.Second, Fall: 2}
	c := newCluster(t, clusterOptions{backends: 1, health: hc, writeTimeout: 20 * time.Second,
		fake: fakecli.Config{EventsPerTurn: 400, EventSizes: []int{32 << 10}}})
	normal := c.client()
	createSession(t, normal, "normal-1")
	for i := 0; i < 20; i++ {
		rawSession(t, c.addr, fmt.Sprintf("flood-%d", i))
	}
	// Wait until the floods have filled what the sockets hold: the fake's
	// notification count stops moving.
	last := uint64(0)
	eventually(t, 20*time.Second, "floods blocked", func() bool {
		time.Sleep(300 * time.Millisecond)
		n := c.fakes[0].Stats().Notifications
		stable := n == last && n > 0
		last = n
		return stable
	})
	if !c.checker.Usable(c.fakes[0].Addr()) {
		t.Fatal("backend down before the freeze: the machine is too loaded for this test's probe timeout")
	}
	c.fakes[0].Freeze()
	defer c.fakes[0].Thaw()
	frozen := time.Now()
	m := normal.call("session.getMessages", map[string]any{"sessionId": "normal-1"})
	took := time.Since(frozen)
	if m.Error == nil || m.Error.Code != codeBackendUnavailable {
		t.Fatalf("pending request on the frozen backend: %+v", m)
	}
	bound := time.Duration(hc.Fall)*hc.Interval + hc.Timeout + time.Second
	if took > bound {
		t.Fatalf("retryable error after %v, want within %v", took, bound)
	}
	t.Logf("retryable error %v after the freeze (bound %v)", took, bound)
}

// A panic while handling one client's frame closes that client alone, logs
// the stack once and is counted; every other client is served.
func TestPanicInOneClientLeavesOthersServed(t *testing.T) {
	c := newCluster(t, clusterOptions{backends: 1})
	testHookClientFrame = func(body []byte) {
		if bytes.Contains(body, []byte("boom-panic")) {
			panic("injected")
		}
	}
	t.Cleanup(func() { testHookClientFrame = nil })
	victim, other := c.client(), c.client()
	createSession(t, other, "other-1")
	victim.start("session.create", map[string]any{"sessionId": "boom-panic", "model": "m"})
	if !victim.closedByPeer(5 * time.Second) {
		t.Fatal("the client whose frame panicked was not closed")
	}
	if got := turn(t, other, "other-1", "still served?"); got == "" {
		t.Fatal("other client not served after a panic")
	}
	if n := c.srv.Panics(); n != 1 {
		t.Fatalf("panics counted: %d", n)
	}
	if n := strings.Count(c.logs.String(), "panic while serving client"); n != 1 {
		t.Fatalf("panic logged %d times", n)
	}
	after := c.client()
	createSession(t, after, "after-1")
}
