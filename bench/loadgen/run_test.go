package loadgen

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/rpcproxy/rpcproxy/internal/fakecli"
)

func startFake(tb testing.TB, cfg fakecli.Config) *fakecli.Server {
	tb.Helper()
	s, err := fakecli.Listen("127.0.0.1:0", cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRunTurnBounded(t *testing.T) {
	store := fakecli.NewStore()
	cfg := fakecli.Config{EventsPerTurn: 10, EventSizes: []int{300, 4096, 40 << 10}, Store: store}
	a, b := startFake(t, cfg), startFake(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := Run(ctx, Config{
		Targets:          []string{a.Addr(), b.Addr()},
		Conns:            4,
		SessionsPerConn:  3,
		Turns:            5,
		Warmup:           -1,
		PingsPerTurn:     1,
		GetMessagesEvery: 2,
		ExpectEvents:     10,
		DeleteSessions:   true,
		RunID:            "t1",
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Failures) > 0 {
		t.Fatalf("failures: %v", res.Failures)
	}
	const sessions, turns = 12, 60
	if res.Sessions != sessions || res.Turns != turns || res.BadTurns != 0 {
		t.Fatalf("sessions %d turns %d bad %d, want %d %d 0", res.Sessions, res.Turns, res.BadTurns, sessions, turns)
	}
	// Per session: 5 sends, 5 pings, 2 getMessages; deletes come after the window.
	if want := uint64(sessions * 12); res.Requests != want {
		t.Errorf("requests %d, want %d", res.Requests, want)
	}
	if res.TurnLatency.Count() != turns || res.RequestLatency.Count() != res.Requests {
		t.Errorf("latency counts %d %d", res.TurnLatency.Count(), res.RequestLatency.Count())
	}
	// With no warm-up the window opens before the first turn: every
	// request is in it. A session's session.start, which the server sends
	// after answering session.create, may land in it too.
	if res.Traffic.Events < turns*10 || res.Traffic.Events > turns*10+sessions || res.Traffic.FramesOut != res.Requests {
		t.Errorf("traffic %+v", res.Traffic)
	}
	if got := a.Stats().Turns + b.Stats().Turns; got != turns {
		t.Errorf("servers played %d turns, want %d", got, turns)
	}
	if a.Stats().Turns == 0 || b.Stats().Turns == 0 {
		t.Errorf("connections not spread: %d and %d turns", a.Stats().Turns, b.Stats().Turns)
	}
	if ids := store.IDs(); len(ids) != 0 {
		t.Errorf("sessions left in the store: %v", ids)
	}
	if res.TurnLatency.Percentile(50) <= 0 || res.Window <= 0 {
		t.Errorf("p50 %v window %v", res.TurnLatency.Percentile(50), res.Window)
	}
}

func TestRunTimedWindowAndThink(t *testing.T) {
	s := startFake(t, fakecli.Config{EventsPerTurn: 8})
	var edges []bool
	res, err := Run(context.Background(), Config{
		Targets:         []string{s.Addr()},
		Conns:           2,
		SessionsPerConn: 5,
		Warmup:          100 * time.Millisecond,
		Duration:        400 * time.Millisecond,
		Think:           20 * time.Millisecond,
		ExpectEvents:    8,
		OnWindow:        func(start bool) { edges = append(edges, start) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(edges) != 2 || !edges[0] || edges[1] {
		t.Fatalf("OnWindow calls %v, want [true false]", edges)
	}
	if res.Window < 390*time.Millisecond || res.Window > 600*time.Millisecond {
		t.Errorf("window %v, want about 400ms", res.Window)
	}
	// 10 sessions, a turn every ~20 ms of think plus the turn: well over 50.
	if res.Turns < 50 || res.BadTurns != 0 || len(res.Failures) > 0 {
		t.Fatalf("turns %d bad %d failures %v", res.Turns, res.BadTurns, res.Failures)
	}
	if s.Stats().Turns < res.Turns {
		t.Errorf("server played %d turns, client counted %d in the window", s.Stats().Turns, res.Turns)
	}
	waitFor(t, "sessions to stop", func() bool { return s.Stats().ActiveTurns == 0 })
}

func TestRunFailsOnUnreachableTarget(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, err = Run(context.Background(), Config{Targets: []string{addr}, Conns: 2, SessionsPerConn: 1, Turns: 1})
	if err == nil {
		t.Fatal("Run against a closed port succeeded")
	}
}

func TestRunFailsOnRefusedHandshake(t *testing.T) {
	s := startFake(t, fakecli.Config{Token: "secret"})
	_, err := Run(context.Background(), Config{Targets: []string{s.Addr()}, Conns: 1, SessionsPerConn: 1, Turns: 1, Token: "wrong"})
	if err == nil {
		t.Fatal("Run with a wrong token succeeded")
	}
	res, err := Run(context.Background(), Config{Targets: []string{s.Addr()}, Conns: 1, SessionsPerConn: 1, Turns: 2, Token: "secret", Warmup: -1})
	if err != nil || res.Turns != 2 {
		t.Fatalf("with the right token: %v, %+v", err, res)
	}
}

func TestValidate(t *testing.T) {
	ok := Config{Targets: []string{"x:1"}, Conns: 1, SessionsPerConn: 1, Turns: 1}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*Config){
		"no targets":   func(c *Config) { c.Targets = nil },
		"no conns":     func(c *Config) { c.Conns = 0 },
		"too many":     func(c *Config) { c.SessionsPerConn = 1 << 16 },
		"unbounded":    func(c *Config) { c.Turns = 0 },
		"negative":     func(c *Config) { c.Think = -1 },
		"neg pings":    func(c *Config) { c.PingsPerTurn = -1 },
		"neg sessions": func(c *Config) { c.SessionsPerConn = -1 },
	} {
		c := ok
		mut(&c)
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: Validate = %v", name, err)
		}
	}
}

func TestOpenIdle(t *testing.T) {
	a, b := startFake(t, fakecli.Config{}), startFake(t, fakecli.Config{})
	set, err := OpenIdle(context.Background(), Config{Targets: []string{a.Addr(), b.Addr()}, Conns: 20, RunID: "idle"})
	if err != nil {
		t.Fatal(err)
	}
	if set.Len() != 20 || set.Alive() != 20 {
		t.Fatalf("len %d alive %d", set.Len(), set.Alive())
	}
	if got := a.Stats().Sessions + b.Stats().Sessions; got != 20 {
		t.Fatalf("%d sessions loaded, want 20", got)
	}
	// Every create is announced to every connection of its server.
	waitFor(t, "lifecycle notifications", func() bool { return set.Received().Lifecycle >= 20 })
	set.Close()
	set.Close()
	waitFor(t, "servers to drop the connections", func() bool { return a.Stats().Conns+b.Stats().Conns == 0 })
}
