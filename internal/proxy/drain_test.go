package proxy

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

// A drain stops accepting at once, closes an idle client, keeps serving a
// client with a turn running (a new turn it starts meanwhile included), and
// returns once that client's turns ended and it was closed.
func TestShutdownFinishesTurnsInFlight(t *testing.T) {
	c := newCluster(t, clusterOptions{backends: 1})
	busy := c.client()
	createSession(t, busy, "asking")
	busy.mustCall("session.send", map[string]any{"sessionId": "asking", "prompt": "ask:favourite colour"}, nil)
	var question message
	select {
	case question = <-busy.requests:
	case <-time.After(5 * time.Second):
		t.Fatal("no userInput.request")
	}
	idle := c.client()

	done := make(chan error, 1)
	go func() { done <- c.srv.Shutdown(context.Background()) }()
	eventually(t, 5*time.Second, "ShuttingDown", c.srv.ShuttingDown)
	select {
	case <-c.srv.ShutdownStarted():
	default:
		t.Fatal("ShutdownStarted not closed while ShuttingDown")
	}
	if conn, err := net.DialTimeout("tcp", c.addr, time.Second); err == nil {
		conn.Close()
		t.Fatal("a new connection was accepted while shutting down")
	}
	if !idle.closedByPeer(5 * time.Second) {
		t.Fatal("idle client not closed by the drain")
	}

	// The busy client is still served: a new session and a whole turn.
	createSession(t, busy, "late")
	if got := turn(t, busy, "late", "hello"); got == "" {
		t.Fatal("turn started while draining gave no answer")
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned (%v) with a turn in flight", err)
	default:
	}

	busy.respond(question.ID, map[string]any{"answer": "blue"})
	if got := busy.waitAssistant("asking"); !strings.Contains(got, "blue") {
		t.Fatalf("turn in flight ended with %q", got)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return after the last turn ended")
	}
	if !busy.closedByPeer(time.Second) {
		t.Fatal("client still open after Shutdown returned")
	}
}

// A drain past its deadline returns the context's error and leaves the busy
// client open for Close.
func TestShutdownDeadline(t *testing.T) {
	c := newCluster(t, clusterOptions{backends: 1})
	busy := c.client()
	createSession(t, busy, "asking")
	busy.mustCall("session.send", map[string]any{"sessionId": "asking", "prompt": "ask:anyone?"}, nil)
	select {
	case <-busy.requests:
	case <-time.After(5 * time.Second):
		t.Fatal("no userInput.request")
	}
	ctx, cancel := context.WithTimeout(context.Background(), drainQuiet+300*time.Millisecond)
	defer cancel()
	if err := c.srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want the deadline", err)
	}
	if busy.closedByPeer(0) {
		t.Fatal("busy client closed by the drain")
	}
	c.srv.Close()
	if !busy.closedByPeer(5 * time.Second) {
		t.Fatal("Close left the client open")
	}
}
