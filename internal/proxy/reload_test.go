package proxy

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/rpcproxy/rpcproxy/internal/fakecli"
	"github.com/rpcproxy/rpcproxy/internal/health"
	"github.com/rpcproxy/rpcproxy/internal/router"
)

// A backend that holds no session when its drain starts is drained
// already: the line an operator waits for comes at once, not never.
func TestDrainingEmptyBackendSaysSoAtOnce(t *testing.T) {
	c := newCluster(t, clusterOptions{backends: 2})
	idle := c.fakes[1].Addr()
	if err := c.checker.SetDraining(idle, true); err != nil {
		t.Fatal(err)
	}
	if want := "draining backend holds no sessions: backend=" + idle; !strings.Contains(c.logs.String(), want) {
		t.Fatalf("log lacks %q:\n%s", want, c.logs.String())
	}
}

// The sessions placed on a backend dropping to zero is told to OnEmpty
// (the owner of a removed backend forgets it then).
func TestOnEmptyWhenLastSessionLeaves(t *testing.T) {
	emptied := make(chan string, 4)
	c := newCluster(t, clusterOptions{backends: 1, onEmpty: func(b string) { emptied <- b }})
	cl := c.client()
	createSession(t, cl, "only")
	cl.mustCall("session.delete", map[string]any{"sessionId": "only"}, nil)
	select {
	case b := <-emptied:
		if b != c.fakes[0].Addr() {
			t.Fatalf("OnEmpty(%q), want %q", b, c.fakes[0].Addr())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("OnEmpty not called when the last session was deleted")
	}
}

// A backend updated in place (a reload changed its weight or token) is the
// same server: a session placed on it after the update, on the client's
// existing connection, still gets its own session.lifecycle.
func TestUpdatedBackendKeepsLifecycle(t *testing.T) {
	c := newCluster(t, clusterOptions{backends: 1})
	cl := c.client()
	createSession(t, cl, "before")
	turn(t, cl, "before", "hi")
	addr := c.fakes[0].Addr()
	if err := c.checker.Update(&router.Backend{Name: addr, Addr: addr, Weight: 2}); err != nil {
		t.Fatal(err)
	}
	createSession(t, cl, "after")
	turn(t, cl, "after", "hi")
	deadline := time.After(5 * time.Second)
	for {
		select {
		case m := <-cl.notes:
			var p struct {
				SessionID string `json:"sessionId"`
			}
			json.Unmarshal(m.Params, &p)
			if m.Method == "session.lifecycle" && p.SessionID == "after" {
				return
			}
		case <-deadline:
			t.Fatal("no session.lifecycle for the session placed after the update")
		}
	}
}

// A session placed before its backend's token changed reconnects with the
// new token: the CLI was restarted with it and the old one is refused.
func TestUpdatedBackendTokenUsedOnReconnect(t *testing.T) {
	c := newCluster(t, clusterOptions{backends: 1, sharedStore: true, backendToken: "old"})
	cl := c.client()
	createSession(t, cl, "kept")
	turn(t, cl, "kept", "before the restart")
	old := c.fakes[0]
	addr := old.Addr()
	old.Close()
	eventually(t, 5*time.Second, "backend down", func() bool {
		st, _ := c.checker.State(addr)
		return st == health.StateDown
	})
	restarted, err := fakecli.Listen(addr, fakecli.Config{Name: "fake-0", Store: c.store, Token: "new"})
	if err != nil {
		t.Fatal(err)
	}
	c.fakes = append(c.fakes, restarted)
	if err := c.checker.Update(&router.Backend{Name: addr, Addr: addr, Token: "new"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "backend up with the new token", func() bool {
		st, _ := c.checker.State(addr)
		return st == health.StateUp
	})
	turn(t, cl, "kept", "after the restart")
}
