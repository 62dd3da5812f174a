package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	copilot "github.com/github/copilot-sdk/go"
)

// TestGoSDKSessionsAcrossBackends: one connection, eight sessions with a turn
// each, all at once. Every reply is exact, every session lives on exactly one
// backend, and behind the proxy they spread over at least two.
func TestGoSDKSessionsAcrossBackends(t *testing.T) {
	c := cluster(t)
	client := newClient(t, c.Target)
	const n = 8
	before := c.Stub.Stats()

	sessions := make([]*copilot.Session, n)
	errs := parallel(n, func(i int) error {
		id := fmt.Sprintf("go-spread-%d", i)
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		cfg := sessionConfig(c, id)
		// Half the sessions stream: many small delta events interleaved
		// with the other sessions' traffic on the one connection.
		cfg.Streaming = ptr(i%2 == 1)
		s, err := client.CreateSession(ctx, cfg)
		if err != nil {
			return fmt.Errorf("session.create %s: %w", id, err)
		}
		sessions[i] = s
		prompt := "hello from " + id
		got, err := turn(s, prompt)
		if err != nil {
			return err
		}
		if want := "reply #1: " + prompt; got != want {
			return fmt.Errorf("session %s: reply %q, want %q", id, got, want)
		}
		return nil
	})
	for _, err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}

	perBackend := map[string][]string{}
	for _, s := range sessions {
		b := checkPlacement(t, c, s.SessionID)
		perBackend[b.Name] = append(perBackend[b.Name], s.SessionID)
	}
	t.Logf("placement: %v", perBackend)
	if !c.Direct() && len(perBackend) < 2 {
		t.Errorf("all %d sessions landed on one backend: %v", n, perBackend)
	}
	after := c.Stub.Stats()
	if got := after.Completions - before.Completions; got < n {
		t.Errorf("model stub answered %d completions, want at least %d", got, n)
	}
	if got := after.Streamed - before.Streamed; got < n/2 {
		t.Errorf("model stub streamed %d completions, want at least %d", got, n/2)
	}
}

// TestGoSDKTwoClientsAtOnce: two connections run sessions at the same time;
// each gets its own replies and the lifecycle notifications of its sessions.
func TestGoSDKTwoClientsAtOnce(t *testing.T) {
	c := cluster(t)
	const perClient = 3
	type seen struct {
		mu      sync.Mutex
		created map[string]bool
	}
	clients := make([]*copilot.Client, 2)
	lifecycle := make([]*seen, 2)
	for k := range clients {
		clients[k] = newClient(t, c.Target)
		lifecycle[k] = &seen{created: map[string]bool{}}
		l := lifecycle[k]
		clients[k].On(func(ev copilot.SessionLifecycleEvent) {
			if ev.Type == copilot.SessionLifecycleCreated {
				l.mu.Lock()
				l.created[ev.SessionID] = true
				l.mu.Unlock()
			}
		})
	}
	errs := parallel(2*perClient, func(i int) error {
		k := i % 2
		id := fmt.Sprintf("go-two-%c-%d", 'a'+k, i/2)
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		s, err := clients[k].CreateSession(ctx, sessionConfig(c, id))
		if err != nil {
			return fmt.Errorf("session.create %s: %w", id, err)
		}
		for turnNo := 1; turnNo <= 2; turnNo++ {
			prompt := fmt.Sprintf("turn %d of %s", turnNo, id)
			got, err := turn(s, prompt)
			if err != nil {
				return err
			}
			if want := fmt.Sprintf("reply #%d: %s", turnNo, prompt); got != want {
				return fmt.Errorf("session %s: reply %q, want %q", id, got, want)
			}
		}
		return nil
	})
	for _, err := range errs {
		t.Error(err)
	}
	for k, l := range lifecycle {
		l.mu.Lock()
		for i := range perClient {
			id := fmt.Sprintf("go-two-%c-%d", 'a'+k, i)
			checkPlacement(t, c, id)
			if !l.created[id] {
				t.Errorf("client %d got no session.lifecycle session.created for its session %s", k, id)
			}
		}
		l.mu.Unlock()
	}
}

func ptr[T any](v T) *T { return &v }

// TestGoSDKToolRoundTrip: sessions on several backends each ask the client to
// run a tool; the handler runs in this process and the model's reply carries
// its result.
func TestGoSDKToolRoundTrip(t *testing.T) {
	c := cluster(t)
	client := newClient(t, c.Target)
	type lookupArgs struct {
		Key string `json:"key"`
	}
	var mu sync.Mutex
	calls := map[string][]string{} // session id -> keys the handler saw
	lookup := copilot.DefineTool("e2e_lookup", "Looks a key up (e2e test tool).",
		func(args lookupArgs, inv copilot.ToolInvocation) (string, error) {
			mu.Lock()
			calls[inv.SessionID] = append(calls[inv.SessionID], args.Key)
			mu.Unlock()
			return "VALUE-" + strings.ToUpper(args.Key) + "-" + inv.SessionID, nil
		})

	const n = 3
	errs := parallel(n, func(i int) error {
		id := fmt.Sprintf("go-tool-%d", i)
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		s, err := client.CreateSession(ctx, sessionConfig(c, id, lookup))
		if err != nil {
			return fmt.Errorf("session.create %s: %w", id, err)
		}
		key := fmt.Sprintf("key %d", i)
		got, err := turn(s, "call tool e2e_lookup with "+key)
		if err != nil {
			return err
		}
		want := fmt.Sprintf("reply #1: tool e2e_lookup returned: VALUE-%s-%s", strings.ToUpper(key), id)
		if got != want {
			return fmt.Errorf("session %s: reply %q, want %q", id, got, want)
		}
		return nil
	})
	for _, err := range errs {
		t.Error(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for i := range n {
		id := fmt.Sprintf("go-tool-%d", i)
		if want := []string{fmt.Sprintf("key %d", i)}; !slices.Equal(calls[id], want) {
			t.Errorf("tool handler calls for %s = %q, want %q", id, calls[id], want)
		}
		checkPlacement(t, c, id)
	}
}

// TestGoSDKListAndLastID: session.list through the proxy is the union of
// every backend's own list, and session.getLastId names the most recently
// active session whichever backend holds it.
func TestGoSDKListAndLastID(t *testing.T) {
	c := cluster(t)
	client := newClient(t, c.Target)
	const n = 4
	sessions := make([]*copilot.Session, n)
	for i := range n {
		sessions[i] = createSession(t, c, client, fmt.Sprintf("go-list-%d", i))
	}
	errs := parallel(n, func(i int) error {
		prompt := "list me " + sessions[i].SessionID
		got, err := turn(sessions[i], prompt)
		if err == nil && got != "reply #1: "+prompt {
			err = fmt.Errorf("session %s: reply %q", sessions[i].SessionID, got)
		}
		return err
	})
	for _, err := range errs {
		t.Fatal(err)
	}

	// The same questions asked of each backend directly.
	direct := map[string]copilot.SessionMetadata{}
	owner := map[string]string{}
	for _, b := range c.Backends {
		bc := newClient(t, b.Addr)
		for id, m := range listMetadata(t, bc) {
			if prev, dup := owner[id]; dup {
				t.Errorf("session %s listed by both %s and %s", id, prev, b.Name)
			}
			owner[id] = b.Name
			direct[id] = m
		}
	}
	proxied := listMetadata(t, client)
	for id, m := range direct {
		pm, ok := proxied[id]
		if !ok {
			t.Errorf("session.list through %s lacks %s (listed by %s)", c.Target, id, owner[id])
			continue
		}
		if !pm.ModifiedTime.Equal(m.ModifiedTime) || !pm.StartTime.Equal(m.StartTime) {
			t.Errorf("session.list entry for %s differs: proxied %+v, direct %+v", id, pm, m)
		}
	}
	for id := range proxied {
		if _, ok := direct[id]; !ok {
			t.Errorf("session.list through %s has %s, which no backend lists", c.Target, id)
		}
	}
	backendsListed := map[string]bool{}
	for _, s := range sessions {
		if _, ok := proxied[s.SessionID]; !ok {
			t.Errorf("session.list lacks %s", s.SessionID)
		}
		backendsListed[owner[s.SessionID]] = true
	}
	t.Logf("session.list: %d sessions; this test's on %d backends", len(proxied), len(backendsListed))

	// Make one session the most recent, then ask.
	latest := sessions[1]
	expectTurn(t, latest, "once more", "reply #2: once more")
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	last, err := client.GetLastSessionID(ctx)
	if err != nil {
		t.Fatalf("session.getLastId: %v", err)
	}
	if last == nil || *last != latest.SessionID {
		t.Errorf("session.getLastId = %v, want %s", deref(last), latest.SessionID)
	}
	ownerOfLatest, err := c.BackendOf(latest.SessionID)
	if err != nil {
		t.Fatal(err)
	}
	bc := newClient(t, ownerOfLatest.Addr)
	if dl, err := bc.GetLastSessionID(ctx); err != nil || dl == nil || *dl != latest.SessionID {
		t.Errorf("session.getLastId on %s directly = %v, %v; want %s", ownerOfLatest.Name, deref(dl), err, latest.SessionID)
	}
}

// TestGoSDKResumeOnSecondConnection: a session created on one connection is
// resumed, after that client stopped, by a second connection: same backend,
// history intact, tools registered again.
func TestGoSDKResumeOnSecondConnection(t *testing.T) {
	c := cluster(t)
	const id = "go-resume-0"
	type lookupArgs struct {
		Key string `json:"key"`
	}
	lookup := copilot.DefineTool("e2e_lookup", "Looks a key up (e2e test tool).",
		func(args lookupArgs, inv copilot.ToolInvocation) (string, error) {
			return "VALUE-" + strings.ToUpper(args.Key), nil
		})

	first := copilot.NewClient(&copilot.ClientOptions{Connection: copilot.URIConnection{URL: c.Target}})
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := first.Start(ctx); err != nil {
		t.Fatal(err)
	}
	s1, err := first.CreateSession(ctx, sessionConfig(c, id, lookup))
	if err != nil {
		stopClient(first)
		t.Fatal(err)
	}
	expectTurn(t, s1, "first turn", "reply #1: first turn")
	home := checkPlacement(t, c, id)
	if err := stopClient(first); err != nil {
		t.Fatalf("first client stop: %v", err)
	}

	second := newClient(t, c.Target)
	s2, err := second.ResumeSession(ctx, id, &copilot.ResumeSessionConfig{
		Provider:            provider(c),
		Tools:               []copilot.Tool{lookup},
		OnPermissionRequest: copilot.PermissionHandler.ApproveAll,
	})
	if err != nil {
		t.Fatalf("session.resume %s on a second connection: %v", id, err)
	}
	expectTurn(t, s2, "second turn", "reply #2: second turn")
	expectTurn(t, s2, "call tool e2e_lookup with resumed", "reply #3: tool e2e_lookup returned: VALUE-RESUMED")

	user, assistant := eventContents(t, s2)
	if !containsAll(user, "first turn", "second turn") || !containsAll(assistant, "reply #1: first turn", "reply #2: second turn") {
		t.Errorf("session.getMessages after resume: user %s, assistant %s", quoted(user), quoted(assistant))
	}
	if now := checkPlacement(t, c, id); now != home {
		t.Errorf("resumed session moved from %s to %s", home.Name, now.Name)
	}
}

// TestGoSDKDeleteSession: deleting through the proxy removes the session from
// its backend and from the merged list, and leaves the others alone.
func TestGoSDKDeleteSession(t *testing.T) {
	c := cluster(t)
	client := newClient(t, c.Target)
	doomed := createSession(t, c, client, "go-delete-0")
	kept := createSession(t, c, client, "go-delete-keep")
	expectTurn(t, doomed, "soon gone", "reply #1: soon gone")
	expectTurn(t, kept, "still here", "reply #1: still here")
	b := checkPlacement(t, c, doomed.SessionID)
	if ids := listIDs(t, client); !slices.Contains(ids, doomed.SessionID) {
		t.Fatalf("session.list lacks %s before delete: %v", doomed.SessionID, ids)
	}

	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	if err := doomed.Disconnect(); err != nil {
		t.Fatalf("session.detach: %v", err)
	}
	if err := client.DeleteSession(ctx, doomed.SessionID); err != nil {
		t.Fatalf("session.delete: %v", err)
	}
	ids := listIDs(t, client)
	if slices.Contains(ids, doomed.SessionID) {
		t.Errorf("session.list still has %s after delete", doomed.SessionID)
	}
	if !slices.Contains(ids, kept.SessionID) {
		t.Errorf("session.list lost %s when %s was deleted", kept.SessionID, doomed.SessionID)
	}
	if b.HasSession(doomed.SessionID) {
		t.Errorf("%s still has %s on disk after delete", b.Name, b.SessionDir(doomed.SessionID))
	}
	if ids := listIDs(t, newClient(t, b.Addr)); slices.Contains(ids, doomed.SessionID) {
		t.Errorf("%s still lists %s after delete", b.Name, doomed.SessionID)
	}
}

func deref(p *string) string {
	if p == nil {
		return "<none>"
	}
	return *p
}
