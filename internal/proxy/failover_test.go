package proxy

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rpcproxy/rpcproxy/internal/fakecli"
	"github.com/rpcproxy/rpcproxy/internal/health"
)

// busiest returns the fake holding the most of sids.
func (c *cluster) busiest(sids []string) *fakecli.Server {
	count := map[*fakecli.Server]int{}
	var best *fakecli.Server
	for _, sid := range sids {
		f := c.holder(sid)
		count[f]++
		if best == nil || count[f] > count[best] {
			best = f
		}
	}
	return best
}

// sessionsWithTurn creates n sessions through cl, one turn each.
func sessionsWithTurn(t *testing.T, cl *testClient, prefix string, n int) []string {
	t.Helper()
	var sids []string
	for i := 0; i < n; i++ {
		sid := fmt.Sprintf("%s-%d", prefix, i)
		createSession(t, cl, sid)
		turn(t, cl, sid, "first turn of "+sid)
		sids = append(sids, sid)
	}
	return sids
}

// A backend dies: every session that lived there carries on elsewhere on
// its next turn, on the same client connection, with its history.
func TestFailoverOnKill(t *testing.T) {
	c := newCluster(t, clusterOptions{sharedStore: true})
	cl := c.client()
	sids := sessionsWithTurn(t, cl, "kill", 12)
	victim := c.busiest(sids)
	var displaced []string
	for _, sid := range sids {
		if c.holder(sid) == victim {
			displaced = append(displaced, sid)
		}
	}
	victim.Close()
	// The proxy notices the loss on its own (the upstream closes; the probes
	// fail) before the application's next turn.
	eventually(t, 5*time.Second, "victim marked down", func() bool { return !c.checker.Usable(victim.Addr()) })
	for _, sid := range sids {
		got := turn(t, cl, sid, "second turn of "+sid)
		if !strings.Contains(got, "second turn of "+sid) {
			t.Fatalf("%s: reply %q", sid, got)
		}
		if h := c.holder(sid); h == nil || h == victim {
			t.Fatalf("%s: not resumed elsewhere", sid)
		}
		if n := c.store.Turns(sid); n != 2 {
			t.Fatalf("%s: %d turns in its history, want 2", sid, n)
		}
	}
	t.Logf("%d of %d sessions displaced from %s and resumed elsewhere", len(displaced), len(sids), victim.Name())
	if len(displaced) == 0 {
		t.Fatal("no session was on the killed backend")
	}
}

// A backend that accepts TCP but answers nothing (SIGSTOP) is marked down by
// the active checks; its pending requests are answered with a retryable
// error, its sessions move; when it thaws it takes new sessions again.
func TestFailoverOnFreezeAndComeBack(t *testing.T) {
	c := newCluster(t, clusterOptions{sharedStore: true})
	cl := c.client()
	sids := sessionsWithTurn(t, cl, "freeze", 12)
	victim := c.busiest(sids)
	var onVictim string
	for _, sid := range sids {
		if c.holder(sid) == victim {
			onVictim = sid
			break
		}
	}
	victim.Freeze()
	pending := cl.start("session.getMessages", map[string]any{"sessionId": onVictim})
	m := wait(t, pending, "request pending on a frozen backend")
	if m.Error == nil || m.Error.Code != codeBackendUnavailable {
		t.Fatalf("pending on frozen backend: %+v", m)
	}
	for _, sid := range sids {
		if got := turn(t, cl, sid, "after freeze "+sid); !strings.Contains(got, "after freeze "+sid) {
			t.Fatalf("%s: reply %q", sid, got)
		}
		if c.store.Turns(sid) != 2 {
			t.Fatalf("%s: history lost", sid)
		}
	}
	victim.Thaw()
	eventually(t, 5*time.Second, "thawed backend back on the ring", func() bool {
		st, _ := c.checker.State(victim.Addr())
		return st == health.StateUp
	})
	landed := 0
	for i := 0; i < 30; i++ {
		sid := fmt.Sprintf("new-after-thaw-%d", i)
		createSession(t, cl, sid)
		if c.holder(sid) == victim {
			landed++
		}
	}
	if landed == 0 {
		t.Fatal("no new session landed on the backend that came back")
	}
}

// Adding a 4th backend to 3 moves about a quarter of the sessions, each at
// its turn boundary and never during a turn.
func TestScaleOutMovesShareAtTurnBoundary(t *testing.T) {
	c := newCluster(t, clusterOptions{sharedStore: true})
	cl := c.client()
	sids := sessionsWithTurn(t, cl, "scale", 40)
	before := map[string]*fakecli.Server{}
	for _, sid := range sids {
		before[sid] = c.holder(sid)
	}
	// Hold one session in a turn: it must not move while the turn is open.
	inTurn := ""
	cl.mustCall("session.send", map[string]any{"sessionId": sids[0], "prompt": "ask:wait"}, nil)
	inTurn = sids[0]
	var req message
	select {
	case req = <-cl.requests:
	case <-time.After(5 * time.Second):
		t.Fatal("no question from the backend")
	}
	added := c.addBackend(fakecli.Config{Name: "fake-3", Store: c.store}, "")
	eventually(t, 5*time.Second, "4th backend on the ring", func() bool { return c.table.Ring().Len() == 4 })
	// During the turn, a session request still goes to the old backend.
	cl.mustCall("session.getMessages", map[string]any{"sessionId": inTurn}, nil)
	if c.holder(inTurn) != before[inTurn] {
		t.Fatal("session moved during a turn")
	}
	cl.respond(req.ID, map[string]any{"answer": "ok"})
	cl.waitIdle(inTurn)

	moved, toNew := 0, 0
	for _, sid := range sids {
		turn(t, cl, sid, "after scale-out")
		if n := c.holders(sid); n != 1 {
			t.Fatalf("%s is loaded on %d backends after the move", sid, n)
		}
		h := c.holder(sid)
		if h != before[sid] {
			moved++
			if h == added {
				toNew++
			}
		}
	}
	// Bounded load may shift a few partitions between the old backends too,
	// but most of what moves goes to the new one.
	if toNew*2 < moved {
		t.Errorf("%d of %d moved sessions went to the new backend", toNew, moved)
	}
	share := float64(moved) / float64(len(sids))
	t.Logf("moved share on adding a 4th backend: %.2f (%d of %d)", share, moved, len(sids))
	if moved == 0 || share > 0.5 {
		t.Fatalf("moved share %.2f, want near 1/4", share)
	}
}

// A draining backend takes no new sessions; its sessions move at their next
// turn and it reports when it holds none.
func TestDraining(t *testing.T) {
	c := newCluster(t, clusterOptions{sharedStore: true})
	cl := c.client()
	sids := sessionsWithTurn(t, cl, "drain", 12)
	victim := c.busiest(sids)
	if c.srv.SessionCount(victim.Addr()) == 0 {
		t.Fatal("victim holds no session")
	}
	if err := c.checker.SetDraining(victim.Addr(), true); err != nil {
		t.Fatal(err)
	}
	for _, sid := range sids {
		turn(t, cl, sid, "while draining")
		if n := c.holders(sid); n != 1 {
			t.Fatalf("%s is loaded on %d backends after the move", sid, n)
		}
		if c.holder(sid) == victim {
			t.Fatalf("%s still on the draining backend", sid)
		}
	}
	if n := c.srv.SessionCount(victim.Addr()); n != 0 {
		t.Fatalf("draining backend still holds %d sessions", n)
	}
	if !strings.Contains(c.logs.String(), "draining backend holds no sessions") {
		t.Fatal("the drained backend was not reported")
	}
	for i := 0; i < 20; i++ {
		sid := fmt.Sprintf("drain-new-%d", i)
		createSession(t, cl, sid)
		if c.holder(sid) == victim {
			t.Fatalf("new session %s landed on a draining backend", sid)
		}
	}
}

// A request past the request timeout fails its own upstream at once: the
// client gets a retryable error, and the backend stays in the pool (only
// the health checker's probes take it out), so another client's session
// there carries on, and the first client's session reattaches.
func TestRequestTimeoutFailsOnlyItsUpstream(t *testing.T) {
	c := newCluster(t, clusterOptions{backends: 1, reqTimeout: 100 * time.Millisecond,
		health: health.Config{Interval: time.Hour, Timeout: time.Second}})
	cl, other := c.client(), c.client()
	createSession(t, cl, "slow-1")
	createSession(t, other, "steady-1")
	c.fakes[0].Freeze()
	start := time.Now()
	m := cl.call("session.getMessages", map[string]any{"sessionId": "slow-1"})
	c.fakes[0].Thaw()
	if m.Error == nil || m.Error.Code != codeBackendUnavailable {
		t.Fatalf("timed-out request: %+v", m)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("answered after %v", took)
	}
	if !c.checker.Usable(c.fakes[0].Addr()) {
		t.Fatal("one request's timeout took the backend out of the pool")
	}
	if got := turn(t, other, "steady-1", "still there?"); got == "" {
		t.Fatal("other client's turn got no answer")
	}
	if got := turn(t, cl, "slow-1", "and you?"); got == "" {
		t.Fatal("timed-out client's next turn got no answer")
	}
}

// A turn running on a backend that dies is ended towards the client with
// session.error and session.idle, so an SDK waiting for the turn's end does
// not wait for ever; the session's next turn runs elsewhere.
func TestTurnInFlightOnLostBackendEnds(t *testing.T) {
	c := newCluster(t, clusterOptions{sharedStore: true})
	cl := c.client()
	sids := sessionsWithTurn(t, cl, "inflight", 6)
	sid := sids[0]
	victim := c.holder(sid)
	// The turn waits for the client's answer: it is in flight when the backend dies.
	cl.mustCall("session.send", map[string]any{"sessionId": sid, "prompt": "ask:anything"}, nil)
	select {
	case <-cl.requests:
	case <-time.After(5 * time.Second):
		t.Fatal("no question from the backend")
	}
	victim.Close()
	types, _ := cl.waitIdle(sid)
	if indexOf(types, "session.error") < 0 {
		t.Fatalf("turn ended without session.error: %v", types)
	}
	if got := turn(t, cl, sid, "next turn"); !strings.Contains(got, "next turn") {
		t.Fatalf("next turn: %q", got)
	}
	if h := c.holder(sid); h == nil || h == victim {
		t.Fatal("session not moved")
	}
}

// A backend that goes down and comes back (restarted on the same address,
// same store) while its sessions are idle: their next turn loads them on the
// new connection instead of failing with "Session not found".
func TestBackendBackBeforeNextTurn(t *testing.T) {
	c := newCluster(t, clusterOptions{sharedStore: true})
	cl := c.client()
	sids := sessionsWithTurn(t, cl, "back", 9)
	victim := c.busiest(sids)
	addr := victim.Addr()
	victim.Close()
	eventually(t, 5*time.Second, "victim down", func() bool { return !c.checker.Usable(addr) })
	restarted, err := fakecli.Listen(addr, fakecli.Config{Name: "restarted", Store: c.store})
	if err != nil {
		t.Fatalf("restart on %s: %v", addr, err)
	}
	c.fakes = append(c.fakes, restarted)
	eventually(t, 5*time.Second, "victim back up", func() bool { return c.checker.Usable(addr) })
	for _, sid := range sids {
		if got := turn(t, cl, sid, "after the restart"); !strings.Contains(got, "after the restart") {
			t.Fatalf("%s: %q", sid, got)
		}
		if c.store.Turns(sid) != 2 {
			t.Fatalf("%s: history lost", sid)
		}
	}
}

// A session.send still unanswered when its backend is lost gets the
// retryable error and nothing else: the turn never started, so the client
// sees no session.error or session.idle, and its retry runs a normal turn.
func TestUnansweredSendIsNotAnEndedTurn(t *testing.T) {
	c := newCluster(t, clusterOptions{sharedStore: true})
	cl := c.client()
	sid := sessionsWithTurn(t, cl, "unsent", 1)[0]
	victim := c.holder(sid)
	victim.Freeze()
	defer victim.Thaw()
	m := cl.call("session.send", map[string]any{"sessionId": sid, "prompt": "retry me"})
	if m.Error == nil || m.Error.Code != codeBackendUnavailable {
		t.Fatalf("send to a frozen backend: %+v", m)
	}
	select {
	case ev := <-cl.sessionEvents(sid):
		t.Fatalf("unexpected event for a turn that never started: %s", ev.Params)
	case <-time.After(100 * time.Millisecond):
	}
	if got := turn(t, cl, sid, "retry me"); !strings.Contains(got, "retry me") {
		t.Fatalf("retried turn: %q", got)
	}
}
