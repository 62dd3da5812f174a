package fakecli

import (
	"context"
	"encoding/json"
	"reflect"
	"slices"
	"testing"
)

type listed struct {
	Sessions []struct {
		SessionID    string `json:"sessionId"`
		StartTime    string `json:"startTime"`
		ModifiedTime string `json:"modifiedTime"`
		Summary      string `json:"summary"`
		IsRemote     *bool  `json:"isRemote"`
	} `json:"sessions"`
}

func list(t testing.TB, c *Client) (ids []string) {
	t.Helper()
	var l listed
	if err := json.Unmarshal(call(t, c, "session.list", map[string]any{}), &l); err != nil {
		t.Fatal(err)
	}
	for _, s := range l.Sessions {
		if s.IsRemote == nil || *s.IsRemote || s.StartTime == "" || s.ModifiedTime < s.StartTime || s.Summary == "" {
			t.Errorf("session.list entry %+v", s)
		}
		ids = append(ids, s.SessionID)
	}
	return ids
}

func lastID(t testing.TB, c *Client) string {
	t.Helper()
	var r map[string]string
	if err := json.Unmarshal(call(t, c, "session.getLastId", map[string]any{}), &r); err != nil {
		t.Fatal(err)
	}
	return r["sessionId"]
}

// TestListLastIDDelete runs the store aggregates on two servers sharing one
// Store: each sees the other's sessions.
func TestListLastIDDelete(t *testing.T) {
	store := NewStore()
	a := connected(t, startServer(t, Config{Name: "a", Store: store}))
	b := connected(t, startServer(t, Config{Name: "b", Store: store}))
	if got := list(t, a); len(got) != 0 {
		t.Fatalf("empty store lists %v", got)
	}
	if got := string(call(t, a, "session.getLastId", nil)); got != "{}" {
		t.Fatalf("getLastId on an empty store = %s", got)
	}
	create(t, a, "one")
	create(t, b, "two")
	create(t, b, "no-turns")
	turn(t, a, "one", "first prompt")
	turn(t, b, "two", "second prompt")
	if got, want := list(t, a), []string{"two", "one"}; !reflect.DeepEqual(got, want) {
		t.Errorf("list = %v, want %v (most recent first, sessions without turns left out)", got, want)
	}
	if got := lastID(t, a); got != "two" {
		t.Errorf("getLastId = %q, want two", got)
	}
	turn(t, a, "one", "again")
	if got := lastID(t, b); got != "one" {
		t.Errorf("getLastId after another turn = %q, want one", got)
	}

	var del struct {
		Success bool   `json:"success"`
		Error   string `json:"error"`
	}
	if err := a.Call(ctx(t), "session.delete", map[string]any{"sessionId": "two"}, &del); err != nil || !del.Success {
		t.Fatalf("delete two = %+v, %v", del, err)
	}
	if got := list(t, b); !reflect.DeepEqual(got, []string{"one"}) {
		t.Errorf("list after delete = %v", got)
	}
	if err := a.Call(ctx(t), "session.delete", map[string]any{"sessionId": "nope"}, &del); err != nil || del.Success || del.Error != "Session file not found for nope" {
		t.Fatalf("delete of an unknown session = %+v, %v", del, err)
	}
	// Deleting from server a unloaded it nowhere else: b still holds "two"
	// loaded, but its history is gone.
	callErr(t, b, "session.getMessages", map[string]any{"sessionId": "two"}, CodeInternal, "Session not found: two")
	// Deleting on the server that holds it unloads it there.
	call(t, a, "session.delete", map[string]any{"sessionId": "one"})
	callErr(t, a, "session.send", map[string]any{"sessionId": "one", "prompt": "x"}, CodeInternal, "Session not found for sessionId: one")
	if got := list(t, a); len(got) != 0 {
		t.Errorf("list after deleting all = %v", got)
	}
	if !slices.Equal(store.IDs(), []string{"no-turns"}) {
		t.Errorf("store holds %v", store.IDs())
	}
}

// TestCreateResume covers create and resume on one server: tool-name
// clashes between connections, re-creating a loaded ID (which the CLI
// allows), and unknown IDs.
func TestCreateResume(t *testing.T) {
	s := startServer(t, Config{Name: "r"})
	a := connected(t, s)
	b := connected(t, s)

	var res struct {
		SessionID     string `json:"sessionId"`
		WorkspacePath string `json:"workspacePath"`
		StartTime     string `json:"startTime"`
		Server        string `json:"server"`
	}
	params := map[string]any{"sessionId": "s", "tools": []map[string]any{{"name": "lookup"}}}
	if err := a.Call(ctx(t), "session.create", params, &res); err != nil {
		t.Fatal(err)
	}
	if res.SessionID != "s" || res.Server != "r" || res.WorkspacePath == "" || res.StartTime == "" {
		t.Errorf("session.create result %+v", res)
	}
	const clash = "External tool name clash: lookup already registered by another connection"
	callErr(t, b, "session.resume", params, CodeInternal, clash)
	callErr(t, b, "session.create", params, CodeInternal, clash)
	// The same connection may register its tools again.
	call(t, a, "session.resume", params)
	call(t, a, "session.create", params)
	// Another connection without that tool name joins.
	call(t, b, "session.resume", map[string]any{"sessionId": "s", "tools": []map[string]any{{"name": "other"}}})
	callErr(t, b, "session.resume", map[string]any{"sessionId": "nope"}, CodeInternal, "Session not found: nope")
	callErr(t, b, "session.send", map[string]any{"sessionId": "nope", "prompt": "x"}, CodeInternal, "Session not found for sessionId: nope")
	if got := s.Sessions(); !reflect.DeepEqual(got, []string{"s"}) {
		t.Errorf("Sessions() = %v", got)
	}

	// Once a has detached, b's tools no longer clash with a new holder's.
	call(t, a, "session.detach", map[string]any{"sessionId": "s"})
	c := connected(t, s)
	call(t, c, "session.resume", params)
}

// TestUnloadOnClose: a session stays loaded while some connection holds it
// and is unloaded when the last one closes or detaches; resume loads it
// again with its history.
func TestUnloadOnClose(t *testing.T) {
	s := startServer(t, Config{Name: "u"})
	a := connected(t, s)
	b := connected(t, s)
	create(t, a, "x")
	turn(t, a, "x", "one")
	call(t, b, "session.resume", map[string]any{"sessionId": "x"})
	a.Close()
	waitFor(t, "a's connection dropped", func() bool { return s.Stats().Conns == 1 })
	if got := s.Sessions(); !reflect.DeepEqual(got, []string{"x"}) {
		t.Fatalf("after the first holder closed, Sessions() = %v", got)
	}
	b.Close()
	waitFor(t, "session unloaded", func() bool { return len(s.Sessions()) == 0 })

	c := connected(t, s)
	callErr(t, c, "session.send", map[string]any{"sessionId": "x", "prompt": "two"}, CodeInternal, "Session not found for sessionId: x")
	call(t, c, "session.resume", map[string]any{"sessionId": "x"})
	if got := content(t, turn(t, c, "x", "two")); got != Answer("u", "two", 2) {
		t.Errorf("content after resume = %q", got)
	}
	call(t, c, "session.detach", map[string]any{"sessionId": "x"})
	call(t, c, "session.detach", map[string]any{"sessionId": "never-there"})
	if n := len(s.Sessions()); n != 0 {
		t.Errorf("after detach %d sessions loaded", n)
	}
}

// TestSendFromOtherConnection: like the CLI, any connection may send to a
// loaded session, but only attached connections get its events.
func TestSendFromOtherConnection(t *testing.T) {
	s := startServer(t, Config{})
	holder := connected(t, s)
	sender := connected(t, s)
	create(t, holder, "h")
	call(t, sender, "session.send", map[string]any{"sessionId": "h", "prompt": "from elsewhere"})
	if _, err := holder.Collect(ctx(t), "h", "session.idle"); err != nil {
		t.Fatal(err)
	}
	call(t, sender, "ping", nil) // the sender's queue now holds all it will get
	drained, cancel := context.WithCancel(context.Background())
	cancel() // Next returns what is queued, then the context's error
	for {
		m, err := sender.Next(drained)
		if err != nil {
			break
		}
		if _, ok := m.Event(); ok {
			t.Fatalf("sender got a session event: %s", m.Params)
		}
	}
}

// TestFailoverSharedStore: a session created on one server is resumed on
// another sharing the Store after the first is killed, with its history.
func TestFailoverSharedStore(t *testing.T) {
	store := NewStore()
	sa := startServer(t, Config{Name: "a", Store: store})
	sb := startServer(t, Config{Name: "b", Store: store})
	ca := connected(t, sa)
	create(t, ca, "f", "lookup")
	turn(t, ca, "f", "on a")
	if err := sa.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ca.Done():
	case <-ctx(t).Done():
		t.Fatal("client of a closed server still connected")
	}
	cb := connected(t, sb)
	call(t, cb, "session.resume", map[string]any{"sessionId": "f", "tools": []map[string]any{{"name": "lookup"}}})
	var hist struct {
		Events []struct {
			Type string `json:"type"`
			Data struct {
				Content string `json:"content"`
			} `json:"data"`
		} `json:"events"`
	}
	if err := json.Unmarshal(call(t, cb, "session.getMessages", map[string]any{"sessionId": "f"}), &hist); err != nil {
		t.Fatal(err)
	}
	var contents []string
	for _, e := range hist.Events {
		if e.Type == "assistant.message" {
			contents = append(contents, e.Data.Content)
		}
	}
	if want := []string{Answer("a", "on a", 1)}; !reflect.DeepEqual(contents, want) {
		t.Errorf("history on b = %v, want %v", contents, want)
	}
	if got := content(t, turn(t, cb, "f", "on b")); got != Answer("b", "on b", 2) {
		t.Errorf("content on b = %q", got)
	}
	if store.Turns("f") != 2 {
		t.Errorf("store turns = %d", store.Turns("f"))
	}
}

// TestProviderExclusivity: the process-wide registrations have one owner
// for the life of the process and are refused while sessions are loaded.
func TestProviderExclusivity(t *testing.T) {
	for _, tt := range []struct{ method, what string }{
		{"sessionFs.setProvider", "session filesystem provider"},
		{"llmInference.setProvider", "LLM inference provider"},
	} {
		t.Run(tt.method, func(t *testing.T) {
			s := startServer(t, Config{})
			owner := connected(t, s)
			other := connected(t, s)
			call(t, owner, tt.method, map[string]any{"initialCwd": "/"})
			call(t, owner, tt.method, map[string]any{"initialCwd": "/"}) // the owner may repeat it
			callErr(t, other, tt.method, nil, CodeInternal, "Another client is already the "+tt.what+".")
			owner.Close()
			waitFor(t, "owner dropped", func() bool { return s.Stats().Conns == 1 })
			callErr(t, other, tt.method, nil, CodeInternal, "Another client is already the "+tt.what+".")

			s2 := startServer(t, Config{})
			c := connected(t, s2)
			create(t, c, "busy")
			callErr(t, c, tt.method, nil, CodeInternal, "Cannot set "+tt.what+" while sessions are active.")
			call(t, c, "session.detach", map[string]any{"sessionId": "busy"})
			call(t, c, tt.method, nil)
		})
	}
}

// TestFsProviderGone: once the connection hosting session storage has
// closed, the CLI can no longer create or resume sessions.
func TestFsProviderGone(t *testing.T) {
	s := startServer(t, Config{})
	owner := connected(t, s)
	c := connected(t, s)
	create(t, c, "before")
	call(t, c, "session.detach", map[string]any{"sessionId": "before"})
	call(t, owner, "sessionFs.setProvider", nil)
	owner.Close()
	waitFor(t, "owner dropped", func() bool { return s.Stats().Conns == 1 })
	callErr(t, c, "session.create", map[string]any{"sessionId": "x"}, CodeInternal, "disconnected")
	callErr(t, c, "session.resume", map[string]any{"sessionId": "before"}, CodeInternal, "disconnected")
}
