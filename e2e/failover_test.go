package e2e

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	copilot "github.com/github/copilot-sdk/go"

	"github.com/rpcproxy/rpcproxy/e2e/harness"
)

// quickHealth is rpcproxy configuration for the failover tests: rise 2 and
// fall 3 at the default interval and timeout of 1s, so that a frozen backend
// is down in about 6 s (a failed check costs interval + timeout) and back up
// in 1–2 s. Tighter settings misfire with real CLI servers on a loaded
// 2-core machine: with 200ms (fall 2), and even with 500ms (fall 3) at load
// average 8, busy but healthy servers missed their pings long enough to be
// marked down; their sessions moved, a turn in progress lost its
// session.idle, and idle sessions hit the bug that
// TestGoSDKBackendBackBeforeNextTurn shows.
const quickHealth = `
health {
  interval = "1s"
  timeout  = "1s"
  rise     = 2
  fall     = 3
}
`

// stateTimeout bounds the wait for the proxy to see a backend go down or
// come back.
const stateTimeout = 20 * time.Second

// TestGoSDKFailoverOnBackendKill: three real CLI servers share one session
// store; the one holding the most sessions is killed with SIGKILL between
// turns. On the same client connection every session's next turn succeeds,
// with its history, and tools registered at create still work.
func TestGoSDKFailoverOnBackendKill(t *testing.T) {
	if harness.Direct() {
		t.Skip("failover needs the proxy (E2E_DIRECT is set)")
	}
	c := harness.StartT(t, harness.Options{SharedHome: true})
	client := newClient(t, c.Target)
	type lookupArgs struct {
		Key string `json:"key"`
	}
	lookup := copilot.DefineTool("e2e_lookup", "Looks a key up (e2e test tool).",
		func(args lookupArgs, inv copilot.ToolInvocation) (string, error) {
			return "VALUE-" + strings.ToUpper(args.Key) + "-" + inv.SessionID, nil
		})

	const n = 6
	sessions := createSessions(t, c, client, "go-failover-%d", n, lookup)
	expectTurns(t, sessions, 1)
	victim, holder, displaced := busiestBackend(t, c, sessions)
	t.Logf("killing %s (%s), holder of %v", victim.Name, victim.Addr, displaced)
	victim.Proc.Kill()

	for _, err := range parallel(n, func(i int) error {
		s := sessions[i]
		if err := turnNo(s, 2); err != nil {
			return fmt.Errorf("%w (session was on %s)", err, holder[s.SessionID])
		}
		got, err := turn(s, "call tool e2e_lookup with after failover")
		if err != nil {
			return err
		}
		if want := "reply #3: tool e2e_lookup returned: VALUE-AFTER FAILOVER-" + s.SessionID; got != want {
			return fmt.Errorf("session %s (was on %s): tool reply %q, want %q", s.SessionID, holder[s.SessionID], got, want)
		}
		return nil
	}) {
		t.Error(err)
	}
	checkFailoverMoves(t, c, c.Proxy.Moves(), holder, victim.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	if last, err := client.GetLastSessionID(ctx); err != nil {
		t.Errorf("session.getLastId with a backend down: %v", err)
	} else if last == nil {
		t.Errorf("session.getLastId with a backend down: none")
	}
	if ids := listIDs(t, client); len(ids) < n {
		t.Errorf("session.list with a backend down lists %d sessions, want at least %d (shared store): %v", len(ids), n, ids)
	}
}

// TestGoSDKFailoverOnBackendFreeze: the backend holding the most sessions is
// frozen with SIGSTOP (its sockets stay open, it answers nothing: a hung
// server, which only the active health checks can tell). A turn sent at
// once waits on it until the proxy marks it down, then fails with the
// proxy's retryable -32030. After that every session's next turn on the
// same SDK session objects (that one's retry included) is answered
// elsewhere with its whole history. Thawed, the backend comes back: new
// sessions land on it again, the sessions that left it move back at their
// next turn, history intact, and no turn ran twice (the thawed server did
// not run the send it held while frozen).
func TestGoSDKFailoverOnBackendFreeze(t *testing.T) {
	if harness.Direct() {
		t.Skip("failover needs the proxy (E2E_DIRECT is set)")
	}
	c := harness.StartT(t, harness.Options{SharedHome: true, Config: quickHealth})
	client := newClient(t, c.Target)
	const n = 12
	sessions := createSessions(t, c, client, "go-freeze-%d", n)
	expectTurns(t, sessions, 1)
	victim, holder, displaced := busiestBackend(t, c, sessions)
	early := sessions[slices.Index(sessionIDs(sessions), displaced[0])]
	completions := c.Stub.Stats().Completions

	since := len(c.Proxy.StateChanges())
	t.Logf("freezing %s (%s), holder of %v", victim.Name, victim.Addr, displaced)
	if err := victim.Proc.Freeze(); err != nil {
		t.Fatal(err)
	}
	// Registered after StartT's cleanup, so it runs first: the CLI is
	// thawed even when the test fails before it does.
	t.Cleanup(victim.Proc.Thaw)
	frozeAt := time.Now()
	// Sent long before the checks can notice (fall × interval): the proxy
	// forwards it to the frozen server.
	earlyErr := make(chan error, 1)
	go func() { earlyErr <- turnNo(early, 2) }()
	waitBackendState(t, c.Proxy, victim, "down", since)
	t.Logf("rpcproxy marked %s down %v after SIGSTOP", victim.Name, time.Since(frozeAt).Round(time.Millisecond))
	select {
	case err := <-earlyErr:
		if err == nil || !strings.Contains(err.Error(), "JSON-RPC Error -32030") {
			t.Fatalf("a turn sent to the frozen %s ended with %v, want the proxy's error -32030 once it is marked down", victim.Name, err)
		}
		t.Logf("turn sent at once: %v", err)
	case <-time.After(callTimeout):
		t.Fatalf("a turn sent to the frozen %s is still waiting %v after it was marked down", victim.Name, callTimeout)
	}

	movesBefore := len(c.Proxy.Moves())
	expectTurns(t, sessions, 2)
	checkFailoverMoves(t, c, c.Proxy.Moves()[movesBefore:], holder, victim.Addr)
	checkHistories(t, sessions, 2)
	if ids := listIDs(t, client); !containsAll(ids, sessionIDs(sessions)...) {
		t.Errorf("session.list with %s frozen lacks some of %v: %v", victim.Name, sessionIDs(sessions), ids)
	}

	since = len(c.Proxy.StateChanges())
	victim.Proc.Thaw()
	thawedAt := time.Now()
	waitBackendState(t, c.Proxy, victim, "up", since)
	t.Logf("rpcproxy marked %s up %v after SIGCONT", victim.Name, time.Since(thawedAt).Round(time.Millisecond))

	added := expectNewSessionsOn(t, c, client, victim, "go-freeze-back-%d")
	movesBefore = len(c.Proxy.Moves())
	expectTurns(t, sessions, 3)
	checkReturnMoves(t, c, c.Proxy.Moves()[movesBefore:], holder, displaced, victim.Addr)
	checkHistories(t, sessions, 3)
	// One completion per turn answered: turns 2 and 3 of each session and
	// the new sessions' first.
	if got, want := c.Stub.Stats().Completions-completions, int64(2*n+added); got != want {
		t.Errorf("model stub answered %d completions since the freeze, want %d: a turn ran twice or not at all", got, want)
	}
}

// TestGoSDKBackendRestartedOnSamePort: the backend holding the most sessions
// is killed; its sessions carry on elsewhere; it is restarted on the same
// port with the same COPILOT_HOME. The proxy sees it up again, new sessions
// land on it, and the sessions that left it move back at their next turn.
func TestGoSDKBackendRestartedOnSamePort(t *testing.T) {
	if harness.Direct() {
		t.Skip("failover needs the proxy (E2E_DIRECT is set)")
	}
	c := harness.StartT(t, harness.Options{SharedHome: true, Config: quickHealth})
	client := newClient(t, c.Target)
	const n = 8
	sessions := createSessions(t, c, client, "go-restart-%d", n)
	expectTurns(t, sessions, 1)
	victim, holder, displaced := busiestBackend(t, c, sessions)

	since := len(c.Proxy.StateChanges())
	t.Logf("killing %s (%s), holder of %v", victim.Name, victim.Addr, displaced)
	victim.Proc.Kill()
	waitBackendState(t, c.Proxy, victim, "down", since)
	movesBefore := len(c.Proxy.Moves())
	expectTurns(t, sessions, 2)
	checkFailoverMoves(t, c, c.Proxy.Moves()[movesBefore:], holder, victim.Addr)

	since = len(c.Proxy.StateChanges())
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	restartAt := time.Now()
	if err := victim.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s listening again on %s %v after restart", victim.Name, victim.Addr, time.Since(restartAt).Round(time.Millisecond))
	waitBackendState(t, c.Proxy, victim, "up", since)
	t.Logf("rpcproxy marked %s up %v after restart", victim.Name, time.Since(restartAt).Round(time.Millisecond))

	expectNewSessionsOn(t, c, client, victim, "go-restart-back-%d")
	movesBefore = len(c.Proxy.Moves())
	expectTurns(t, sessions, 3)
	checkReturnMoves(t, c, c.Proxy.Moves()[movesBefore:], holder, displaced, victim.Addr)
	checkHistories(t, sessions, 3)
}

// createSessions creates n sessions named by format (with %d) on client,
// one after another.
func createSessions(t *testing.T, c *harness.Cluster, client *copilot.Client, format string, n int, tools ...copilot.Tool) []*copilot.Session {
	t.Helper()
	sessions := make([]*copilot.Session, n)
	for i := range n {
		sessions[i] = createSession(t, c, client, fmt.Sprintf(format, i), tools...)
	}
	return sessions
}

// turnPrompt is the prompt of a session's k-th turn in the failover tests;
// the stub answers it with "reply #k: <prompt>".
func turnPrompt(s *copilot.Session, k int) string {
	return fmt.Sprintf("turn %d of %s", k, s.SessionID)
}

// turnNo runs a session's k-th turn and checks its reply exactly: a reply
// #k says the turn carried the session's whole history to the model.
func turnNo(s *copilot.Session, k int) error {
	prompt := turnPrompt(s, k)
	got, err := turn(s, prompt)
	if err != nil {
		return err
	}
	if want := fmt.Sprintf("reply #%d: %s", k, prompt); got != want {
		return fmt.Errorf("session %s: reply %q, want %q", s.SessionID, got, want)
	}
	return nil
}

// expectTurns runs every session's k-th turn at once; any failure fails the
// test now.
func expectTurns(t *testing.T, sessions []*copilot.Session, k int) {
	t.Helper()
	errs := parallel(len(sessions), func(i int) error { return turnNo(sessions[i], k) })
	for _, err := range errs {
		t.Errorf("turn %d: %v", k, err)
	}
	if len(errs) > 0 {
		t.FailNow()
	}
}

// checkHistories checks with session.getMessages that every session holds
// its turns 1…k, prompts and replies.
func checkHistories(t *testing.T, sessions []*copilot.Session, k int) {
	t.Helper()
	for _, s := range sessions {
		user, assistant := eventContents(t, s)
		for j := 1; j <= k; j++ {
			prompt := turnPrompt(s, j)
			if !containsAll(user, prompt) || !containsAll(assistant, fmt.Sprintf("reply #%d: %s", j, prompt)) {
				t.Errorf("session.getMessages %s lacks turn %d: user %s, assistant %s", s.SessionID, j, quoted(user), quoted(assistant))
				break
			}
		}
	}
}

func sessionIDs(sessions []*copilot.Session) []string {
	ids := make([]string, len(sessions))
	for i, s := range sessions {
		ids[i] = s.SessionID
	}
	return ids
}

// busiestBackend returns the backend the proxy placed the most sessions on,
// where each session was placed (from the proxy's log: with one store for
// all, the disk cannot tell), and the sessions on that backend.
func busiestBackend(t *testing.T, c *harness.Cluster, sessions []*copilot.Session) (victim *harness.CLIServer, holder map[string]string, displaced []string) {
	t.Helper()
	holder = map[string]string{}
	count := map[string]int{}
	for _, s := range sessions {
		placed := c.Proxy.PlacedBackends(s.SessionID)
		if len(placed) != 1 {
			t.Fatalf("rpcproxy logged session %s placed on %v, want exactly one backend", s.SessionID, placed)
		}
		holder[s.SessionID] = placed[0]
		count[placed[0]]++
	}
	t.Logf("sessions per backend: %v", count)
	victimAddr := ""
	for _, addr := range slices.Sorted(maps.Keys(count)) {
		if victimAddr == "" || count[addr] > count[victimAddr] {
			victimAddr = addr
		}
	}
	if victim = c.Backend(victimAddr); victim == nil {
		t.Fatalf("rpcproxy placed sessions on %s, which is none of the backends", victimAddr)
	}
	for _, s := range sessions {
		if holder[s.SessionID] == victimAddr {
			displaced = append(displaced, s.SessionID)
		}
	}
	return victim, holder, displaced
}

// waitBackendState waits until the proxy logs backend b in state after its
// first since state changes, failing the test after stateTimeout.
func waitBackendState(t *testing.T, p *harness.Proxy, b *harness.CLIServer, state string, since int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), stateTimeout)
	defer cancel()
	if err := p.WaitBackendState(ctx, b.Addr, state, since); err != nil {
		t.Fatalf("%s (%s): %v", b.Name, b.Addr, err)
	}
}

// checkFailoverMoves checks the proxy's moves after the backend at victim
// was lost: every session that was there moved, because its backend was
// lost, to a live backend; no other session moved for that reason. Others
// may move because their ring owner changed (bounded load can shift a
// partition between the survivors when a member leaves).
func checkFailoverMoves(t *testing.T, c *harness.Cluster, moves []harness.Move, holder map[string]string, victim string) {
	t.Helper()
	moved := map[string][]harness.Move{}
	for _, m := range moves {
		moved[m.Session] = append(moved[m.Session], m)
	}
	for id, addr := range holder {
		ms := moved[id]
		if addr != victim {
			for _, m := range ms {
				if m.Reason != "ring owner changed" || m.To == victim || c.Backend(m.To) == nil {
					t.Errorf("rpcproxy moved %s, whose backend %s is alive: %+v", id, addr, m)
				} else {
					t.Logf("%s moved with the ring: %+v", id, m)
				}
			}
			continue
		}
		if len(ms) == 0 {
			t.Errorf("rpcproxy logged no 'session moved' line for %s, which was on the lost %s", id, victim)
			continue
		}
		if m := ms[0]; m.From != victim || m.Reason != "backend lost" || m.To == victim || c.Backend(m.To) == nil {
			t.Errorf("rpcproxy moved %s, which was on the lost %s, with %+v", id, victim, m)
		}
	}
	for id, ms := range moved {
		if _, ok := holder[id]; !ok {
			t.Errorf("rpcproxy moved %s, no session of this test: %v", id, ms)
		}
	}
}

// checkReturnMoves checks the moves of the turn after the backend at victim
// came back: the sessions displaced from it moved back to it, since the
// ring is the one they were first placed by, and every session is again
// where it was first placed.
func checkReturnMoves(t *testing.T, c *harness.Cluster, moves []harness.Move, holder map[string]string, displaced []string, victim string) {
	t.Helper()
	for _, id := range displaced {
		var back *harness.Move
		for _, m := range moves {
			if m.Session == id && m.To == victim {
				back = &m
			}
		}
		if back == nil {
			t.Errorf("%s, displaced from %s, did not move back when it returned (moves: %+v)", id, victim, moves)
		} else if back.Reason != "ring owner changed" {
			t.Errorf("%s moved back to %s with reason %q, want \"ring owner changed\"", id, victim, back.Reason)
		}
	}
	for id, first := range holder {
		if now := currentBackend(c.Proxy, id); now != first {
			t.Errorf("session %s is on %s, not back on %s where it was placed", id, now, first)
		}
	}
}

// currentBackend is where the proxy's log last put session id: its last
// move, else its placement.
func currentBackend(p *harness.Proxy, id string) string {
	now := ""
	if placed := p.PlacedBackends(id); len(placed) > 0 {
		now = placed[len(placed)-1]
	}
	for _, m := range p.Moves() {
		if m.Session == id {
			now = m.To
		}
	}
	return now
}

// expectNewSessionsOn creates sessions (format with %d) with a turn each on
// client until the proxy has placed at least one on b: 12, then up to 12
// more one at a time (the ring decides; with three backends twelve miss one
// about once in a hundred runs). Every turn is answered. It returns the
// number of sessions created.
func expectNewSessionsOn(t *testing.T, c *harness.Cluster, client *copilot.Client, b *harness.CLIServer, format string) int {
	t.Helper()
	const first, most = 12, 24
	sessions := createSessions(t, c, client, format, first)
	onB := func() (n int) {
		for _, s := range sessions {
			if slices.Contains(c.Proxy.PlacedBackends(s.SessionID), b.Addr) {
				n++
			}
		}
		return n
	}
	for len(sessions) < most && onB() == 0 {
		sessions = append(sessions, createSession(t, c, client, fmt.Sprintf(format, len(sessions))))
	}
	expectTurns(t, sessions, 1)
	count := map[string]int{}
	for _, s := range sessions {
		placed := c.Proxy.PlacedBackends(s.SessionID)
		if len(placed) != 1 {
			t.Errorf("rpcproxy logged new session %s placed on %v, want one backend", s.SessionID, placed)
			continue
		}
		count[placed[0]]++
	}
	t.Logf("%d new sessions per backend: %v", len(sessions), count)
	if count[b.Addr] == 0 {
		t.Errorf("none of %d new sessions was placed on %s (%s), which is up again", len(sessions), b.Name, b.Addr)
	}
	return len(sessions)
}

// TestGoSDKBackendBackBeforeNextTurn: a backend is lost and comes back
// (thawed after SIGSTOP, or restarted on the same port after SIGKILL) while
// its sessions are idle; their next turn must still be answered, on it,
// with their history.
// The proxy closed the client's connection to the backend when it went
// down; back up, the session's next request goes on a new connection, on
// which the proxy must resume it first.
func TestGoSDKBackendBackBeforeNextTurn(t *testing.T) {
	if harness.Direct() {
		t.Skip("failover needs the proxy (E2E_DIRECT is set)")
	}
	for _, tc := range []struct {
		name string
		lose func(t *testing.T, b *harness.CLIServer)
	}{
		{"freeze", func(t *testing.T, b *harness.CLIServer) {
			if err := b.Proc.Freeze(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(b.Proc.Thaw)
		}},
		{"restart", func(t *testing.T, b *harness.CLIServer) { b.Proc.Kill() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := harness.StartT(t, harness.Options{SharedHome: true, Config: quickHealth})
			client := newClient(t, c.Target)
			sessions := createSessions(t, c, client, "go-back-"+tc.name+"-%d", 6)
			expectTurns(t, sessions, 1)
			victim, holder, displaced := busiestBackend(t, c, sessions)
			since := len(c.Proxy.StateChanges())
			t.Logf("losing %s (%s), holder of %v", victim.Name, victim.Addr, displaced)
			tc.lose(t, victim)
			waitBackendState(t, c.Proxy, victim, "down", since)
			since = len(c.Proxy.StateChanges())
			if tc.name == "freeze" {
				victim.Proc.Thaw()
			} else {
				ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
				defer cancel()
				if err := victim.Restart(ctx); err != nil {
					t.Fatal(err)
				}
			}
			waitBackendState(t, c.Proxy, victim, "up", since)
			expectTurns(t, sessions, 2)
			checkHistories(t, sessions, 2)
			for id, first := range holder {
				if now := currentBackend(c.Proxy, id); now != first {
					t.Errorf("session %s is on %s, not on %s where it was placed and which is up", id, now, first)
				}
			}
		})
	}
}
