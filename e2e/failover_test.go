package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"

	copilot "github.com/github/copilot-sdk/go"

	"github.com/rpcproxy/rpcproxy/e2e/harness"
)

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
	sessions := make([]*copilot.Session, n)
	for i := range n {
		sessions[i] = createSession(t, c, client, fmt.Sprintf("go-failover-%d", i), lookup)
	}
	for _, err := range parallel(n, func(i int) error {
		prompt := "first turn of " + sessions[i].SessionID
		got, err := turn(sessions[i], prompt)
		if err == nil && got != "reply #1: "+prompt {
			err = fmt.Errorf("session %s: reply %q", sessions[i].SessionID, got)
		}
		return err
	}) {
		t.Fatal(err)
	}

	// Where each session is, from the proxy's own log (one store for all,
	// so the disk cannot tell).
	holder := map[string]string{}
	count := map[string]int{}
	for _, s := range sessions {
		placed := c.Proxy.PlacedBackends(s.SessionID)
		if len(placed) != 1 {
			t.Fatalf("rpcproxy logged session %s placed on %v, want exactly one backend", s.SessionID, placed)
		}
		holder[s.SessionID] = placed[0]
		count[placed[0]]++
	}
	victimAddr := ""
	for addr, k := range count {
		if victimAddr == "" || k > count[victimAddr] {
			victimAddr = addr
		}
	}
	victim := c.Backend(victimAddr)
	if victim == nil {
		t.Fatalf("rpcproxy placed sessions on %s, which is none of the backends", victimAddr)
	}
	var displaced []string
	for id, addr := range holder {
		if addr == victimAddr {
			displaced = append(displaced, id)
		}
	}
	t.Logf("killing %s (%s), holder of %v", victim.Name, victimAddr, displaced)
	victim.Proc.Kill()

	for _, err := range parallel(n, func(i int) error {
		s := sessions[i]
		prompt := "second turn of " + s.SessionID
		got, err := turn(s, prompt)
		if err != nil {
			return err
		}
		if want := "reply #2: " + prompt; got != want {
			return fmt.Errorf("session %s (was on %s): reply %q, want %q", s.SessionID, holder[s.SessionID], got, want)
		}
		got, err = turn(s, "call tool e2e_lookup with after failover")
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
	// The proxy's log tells where the displaced sessions went: somewhere
	// alive, and only they moved.
	moved := map[string][]harness.Move{}
	for _, m := range c.Proxy.Moves() {
		moved[m.Session] = append(moved[m.Session], m)
	}
	for _, id := range displaced {
		ms := moved[id]
		if len(ms) == 0 {
			t.Errorf("rpcproxy logged no 'session moved' line for %s, which was on the killed %s", id, victimAddr)
			continue
		}
		if to := ms[len(ms)-1].To; to == victimAddr || c.Backend(to) == nil {
			t.Errorf("rpcproxy moved %s to %s (killed: %s)", id, to, victimAddr)
		}
	}
	for id, ms := range moved {
		if holder[id] != victimAddr {
			t.Errorf("rpcproxy moved %s, whose backend %s is alive: %v", id, holder[id], ms)
		}
	}
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
