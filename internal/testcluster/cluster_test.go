package testcluster

import (
	"context"
	"testing"
	"time"
)

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A session made through the cluster's proxy lands on one fake; killing
// that fake takes it out of the ring, and with a shared store the session
// is served by the one left.
func TestClusterKillMovesSession(t *testing.T) {
	c := Start(t, Options{Backends: 2, SharedStore: true})
	eventually(t, "both fakes in the ring", func() bool { return c.Table.Ring().Len() == 2 })
	cl := c.Client(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cl.Call(ctx, "session.create", map[string]any{"sessionId": "s1", "model": "gpt-4.1"}); err != nil {
		t.Fatal(err)
	}
	holder := c.Holder("s1")
	if holder == nil {
		t.Fatal("no fake holds the new session")
	}
	for i, f := range c.Fakes() {
		if f == holder {
			c.Kill(i)
		}
	}
	eventually(t, "the killed fake out of the ring", func() bool { return c.Table.Ring().Len() == 1 })
	eventually(t, "the session served again", func() bool {
		_, err := cl.Call(ctx, "session.getMessages", map[string]any{"sessionId": "s1"})
		return err == nil
	})
	if h := c.Holder("s1"); h == nil || h == holder {
		t.Fatalf("session held by %v after its fake was killed", h)
	}
}

// A frozen fake is taken out of the ring by the health checker and comes
// back when thawed.
func TestClusterFreezeThaw(t *testing.T) {
	c := Start(t, Options{Backends: 2})
	eventually(t, "both fakes in the ring", func() bool { return c.Table.Ring().Len() == 2 })
	c.Freeze(0)
	eventually(t, "the frozen fake out of the ring", func() bool { return c.Table.Ring().Len() == 1 })
	c.Thaw(0)
	eventually(t, "the thawed fake back", func() bool { return c.Table.Ring().Len() == 2 })
}
