package fakecli

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	for _, cfg := range []Config{
		{ProtocolVersion: -1},
		{EventsPerTurn: -1},
		{EventSizes: []int{10, -1}},
		{ReplyTimeout: -time.Second},
		{WriteQueue: -1},
	} {
		if err := cfg.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("Validate(%+v) = %v, want ErrInvalidConfig", cfg, err)
		}
		if _, err := Listen("127.0.0.1:0", cfg); err == nil {
			t.Errorf("Listen accepted %+v", cfg)
		}
	}
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("zero Config: %v", err)
	}
}

// TestFreeze: a frozen server accepts connections but answers nothing;
// after Thaw it answers what it held back.
func TestFreeze(t *testing.T) {
	s := startServer(t, Config{})
	c := connected(t, s)
	create(t, c, "z")
	s.Freeze()
	s.Freeze() // idempotent

	short, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	if err := c.Call(short, "ping", nil, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ping on a frozen server: %v, want a timeout", err)
	}
	late := dial(t, s) // the kernel still accepts
	short2, cancel2 := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel2()
	if err := late.Call(short2, "ping", nil, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ping on a new connection to a frozen server: %v, want a timeout", err)
	}

	s.Thaw()
	s.Thaw()
	call(t, c, "ping", nil)
	call(t, late, "ping", nil)
	turn(t, c, "z", "after thaw")
}

// TestFreezeMidTurn: a turn stalls while frozen and completes after Thaw.
func TestFreezeMidTurn(t *testing.T) {
	s := startServer(t, Config{EventsPerTurn: 20})
	c := connected(t, s)
	create(t, c, "m")
	if _, err := c.Collect(ctx(t), "m", "session.start"); err != nil {
		t.Fatal(err)
	}
	s.Freeze()
	// The send is read before the freeze takes hold or after the thaw;
	// either way nothing may arrive while frozen.
	if err := c.Notify("noop", nil); err != nil {
		t.Fatal(err)
	}
	go c.Call(context.Background(), "session.send", map[string]any{"sessionId": "m", "prompt": "p"}, nil)
	short, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	if m, err := c.Next(short); err == nil {
		t.Fatalf("got %s %s while frozen", m.Method, m.Params)
	}
	s.Thaw()
	if _, err := c.Collect(ctx(t), "m", "session.idle"); err != nil {
		t.Fatal(err)
	}
}

// TestCloseLeavesNoGoroutines closes a server in the middle of everything:
// open connections, a turn waiting for a user answer, a turn waiting for a
// tool result, a frozen state. Every goroutine must end.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	s, err := Listen("127.0.0.1:0", Config{})
	if err != nil {
		t.Fatal(err)
	}
	var clients []*Client
	for range 4 {
		c, err := Dial(s.Addr())
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
		if err := c.Connect(ctx(t), ""); err != nil {
			t.Fatal(err)
		}
	}
	call(t, clients[0], "session.create", map[string]any{"sessionId": "ask", "requestUserInput": true})
	call(t, clients[0], "session.send", map[string]any{"sessionId": "ask", "prompt": "ask: anyone?"})
	create(t, clients[1], "tool", "lookup")
	call(t, clients[1], "session.send", map[string]any{"sessionId": "tool", "prompt": "tool: x"})
	create(t, clients[2], "plain")
	for range 5 {
		call(t, clients[2], "session.send", map[string]any{"sessionId": "plain", "prompt": "queued"})
	}
	waitFor(t, "both waits pending", func() bool { return s.Stats().PendingReplies == 2 })
	s.Freeze()

	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if st := s.Stats(); st.Conns != 0 || st.Sessions != 0 || st.ActiveTurns != 0 || st.PendingReplies != 0 {
		t.Errorf("after Close: %+v", st)
	}
	for _, c := range clients {
		select {
		case <-c.Done():
		case <-ctx(t).Done():
			t.Fatal("client still connected after Close")
		}
		c.Close()
	}
	if _, err := Dial(s.Addr()); err == nil {
		t.Error("a closed server still accepts connections")
	}
	waitFor(t, "goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
}

// TestRestartOnSameAddress: a killed backend comes back on its address with
// the shared store, as a restarted process would.
func TestRestartOnSameAddress(t *testing.T) {
	store := NewStore()
	s := startServer(t, Config{Name: "first", Store: store})
	c := connected(t, s)
	create(t, c, "r")
	turn(t, c, "r", "before")
	addr := s.Addr()
	s.Close()
	s2 := startServer(t, Config{Name: "second", Store: store})
	_ = s2
	s3, err := Listen(addr, Config{Name: "again", Store: store})
	if err != nil {
		t.Fatalf("listen on the old address: %v", err)
	}
	t.Cleanup(func() { s3.Close() })
	c3 := connected(t, s3)
	call(t, c3, "session.resume", map[string]any{"sessionId": "r"})
	if got := content(t, turn(t, c3, "r", "after")); got != Answer("again", "after", 2) {
		t.Errorf("content = %q", got)
	}
}
