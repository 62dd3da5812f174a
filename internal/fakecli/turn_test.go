package fakecli

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestTurnEvents(t *testing.T) {
	s := startServer(t, Config{Name: "b1"})
	c := connected(t, s)
	bystander := connected(t, s)
	create(t, c, "s-1")
	evs, err := c.Collect(ctx(t), "s-1", "session.start")
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 {
		t.Fatalf("before session.start: %v", types(evs))
	}

	var sent struct {
		MessageID string `json:"messageId"`
	}
	if err := c.Call(ctx(t), "session.send", map[string]any{"sessionId": "s-1", "prompt": "hello"}, &sent); err != nil {
		t.Fatal(err)
	}
	if len(sent.MessageID) != 36 {
		t.Errorf("messageId %q is not a UUID", sent.MessageID)
	}
	// Read raw messages to see the lifecycle notification and check the
	// envelope member by member.
	var evs1 []Event
	sawUpdated := false
	for len(evs1) == 0 || evs1[len(evs1)-1].Type != "session.idle" {
		m, err := c.Next(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		if m.Method == "session.lifecycle" {
			var p struct {
				Type      string `json:"type"`
				SessionID string `json:"sessionId"`
				Metadata  struct {
					StartTime    string `json:"startTime"`
					ModifiedTime string `json:"modifiedTime"`
				} `json:"metadata"`
			}
			if err := json.Unmarshal(m.Params, &p); err != nil {
				t.Fatal(err)
			}
			if p.Type == "session.updated" {
				if p.SessionID != "s-1" || p.Metadata.StartTime == "" || p.Metadata.ModifiedTime < p.Metadata.StartTime {
					t.Errorf("lifecycle = %s", m.Params)
				}
				sawUpdated = true
			}
			continue
		}
		ev, ok := m.Event()
		if !ok {
			t.Fatalf("unexpected message %+v", m)
		}
		var env struct {
			SessionID string                     `json:"sessionId"`
			Event     map[string]json.RawMessage `json:"event"`
		}
		if err := json.Unmarshal(m.Params, &env); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"type", "data", "id", "timestamp", "parentId"} {
			if _, ok := env.Event[k]; !ok {
				t.Errorf("%s event lacks %q: %s", ev.Type, k, m.Params)
			}
		}
		if ev.ParentID == "" && len(evs1) > 0 {
			t.Errorf("%s has no parentId", ev.Type)
		}
		evs1 = append(evs1, ev)
	}
	want := []string{"user.message", "assistant.turn_start", "assistant.message_delta", "assistant.message_delta",
		"assistant.message", "assistant.turn_end", "assistant.idle", "session.idle"}
	if got := types(evs1); !reflect.DeepEqual(got, want) {
		t.Errorf("turn events = %v, want %v", got, want)
	}
	if !sawUpdated {
		t.Error("no session.lifecycle session.updated before session.idle")
	}
	if got, want := content(t, evs1), "echo from b1: hello (turn 1)"; got != want {
		t.Errorf("content = %q, want %q", got, want)
	}
	if got := content(t, turn(t, c, "s-1", "again")); got != Answer("b1", "again", 2) {
		t.Errorf("second turn content = %q", got)
	}

	// The bystander sees lifecycle notifications only.
	for range 3 {
		m, err := bystander.Next(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		if m.Method != "session.lifecycle" {
			t.Errorf("bystander got %s", m.Method)
		}
	}

	// History: persisted events only, no deltas or idle events.
	var hist struct {
		Events []struct {
			Type string `json:"type"`
		} `json:"events"`
	}
	if err := json.Unmarshal(call(t, c, "session.getMessages", map[string]any{"sessionId": "s-1"}), &hist); err != nil {
		t.Fatal(err)
	}
	var htypes []string
	for _, e := range hist.Events {
		htypes = append(htypes, e.Type)
	}
	turnTypes := []string{"user.message", "assistant.turn_start", "assistant.message", "assistant.turn_end"}
	if want := append(append([]string{"session.start"}, turnTypes...), turnTypes...); !reflect.DeepEqual(htypes, want) {
		t.Errorf("history = %v, want %v", htypes, want)
	}
	if st := s.Stats(); st.Turns != 2 || st.Sessions != 1 || st.Conns != 2 {
		t.Errorf("stats = %+v", st)
	}
}

func TestEventSizes(t *testing.T) {
	sizes := []int{300, 4 << 10, 40 << 10}
	s := startServer(t, Config{EventsPerTurn: 30, EventSizes: sizes})
	c := connected(t, s)
	create(t, c, "big")
	evs := turn(t, c, "big", "x")
	var deltas []int
	for _, ev := range evs {
		if ev.Type == "assistant.message_delta" {
			var d struct {
				DeltaContent string `json:"deltaContent"`
			}
			if err := json.Unmarshal(ev.Data, &d); err != nil {
				t.Fatal(err)
			}
			deltas = append(deltas, len(d.DeltaContent))
		}
	}
	if len(deltas) != 30-fixedTurnEvents {
		t.Fatalf("%d deltas, want %d", len(deltas), 30-fixedTurnEvents)
	}
	for i, n := range deltas {
		if n != sizes[i%len(sizes)] {
			t.Fatalf("delta %d has %d bytes, want %d", i, n, sizes[i%len(sizes)])
		}
	}
}

// TestUserInputRoundTrip checks the server→client request of an ask: turn:
// ids start at 1 on every connection of every server, the request goes to
// the connection that registered requestUserInput, and the answer is echoed.
func TestUserInputRoundTrip(t *testing.T) {
	store := NewStore()
	for _, name := range []string{"a", "b"} {
		s := startServer(t, Config{Name: name, Store: store})
		c := connected(t, s)
		other := connected(t, s)
		id := "ask-" + name
		call(t, c, "session.create", map[string]any{"sessionId": id, "requestUserInput": true})
		call(t, other, "session.resume", map[string]any{"sessionId": id})
		for i := 1; i <= 2; i++ {
			prompt := fmt.Sprintf("ask: color %d?", i)
			call(t, other, "session.send", map[string]any{"sessionId": id, "prompt": prompt})
			var req *Message
			for req == nil {
				m, err := c.Next(ctx(t))
				if err != nil {
					t.Fatal(err)
				}
				if m.IsRequest() {
					req = m
				}
			}
			var p struct {
				SessionID string `json:"sessionId"`
				Question  string `json:"question"`
			}
			if err := json.Unmarshal(req.Params, &p); err != nil {
				t.Fatal(err)
			}
			if req.Method != "userInput.request" || string(req.ID) != fmt.Sprint(i) || p.SessionID != id || p.Question != fmt.Sprintf("color %d?", i) {
				t.Fatalf("server request = %s id %s params %s", req.Method, req.ID, req.Params)
			}
			if err := c.Reply(req.ID, map[string]any{"answer": "blue", "wasFreeform": true}); err != nil {
				t.Fatal(err)
			}
			evs, err := other.Collect(ctx(t), id, "session.idle")
			if err != nil {
				t.Fatal(err)
			}
			if got, want := content(t, evs), Answer(name, prompt, i)+" [answer: blue]"; got != want {
				t.Errorf("content = %q, want %q", got, want)
			}
			if !slices.Contains(types(evs), "user_input.completed") {
				t.Errorf("no user_input.completed in %v", types(evs))
			}
		}
		if n := s.Stats().PendingReplies; n != 0 {
			t.Errorf("PendingReplies = %d after answered turns", n)
		}
	}
}

// TestUserInputErrorAndClose: an error answer is echoed, and a turn whose
// only asked connection closes finishes instead of waiting out the timeout.
func TestUserInputErrorAndClose(t *testing.T) {
	s := startServer(t, Config{})
	asked := connected(t, s)
	watcher := connected(t, s)
	call(t, asked, "session.create", map[string]any{"sessionId": "q", "requestUserInput": true})
	call(t, watcher, "session.resume", map[string]any{"sessionId": "q"})
	asked.SetRequestHandler(func(method string, params json.RawMessage) (any, *RPCError) {
		return nil, &RPCError{Code: 1, Message: "no idea"}
	})
	call(t, watcher, "session.send", map[string]any{"sessionId": "q", "prompt": "ask: why?"})
	evs, err := watcher.Collect(ctx(t), "q", "session.idle")
	if err != nil {
		t.Fatal(err)
	}
	if got := content(t, evs); !strings.HasSuffix(got, "[answer: (error: no idea)]") {
		t.Errorf("content = %q", got)
	}

	asked.SetRequestHandler(func(string, json.RawMessage) (any, *RPCError) {
		asked.conn.NetConn().Close() // the client goes away instead of answering
		return nil, nil
	})
	call(t, watcher, "session.send", map[string]any{"sessionId": "q", "prompt": "ask: still there?"})
	evs, err = watcher.Collect(ctx(t), "q", "session.idle")
	if err != nil {
		t.Fatal(err)
	}
	if got := content(t, evs); !strings.HasSuffix(got, "[answer: (error: connection closed)]") {
		t.Errorf("content = %q", got)
	}
}

func TestToolCall(t *testing.T) {
	s := startServer(t, Config{Name: "t"})
	c := connected(t, s)
	other := connected(t, s)
	create(t, c, "tl", "lookup", "second")
	call(t, c, "session.send", map[string]any{"sessionId": "tl", "prompt": "tool: 6*7"})
	evs, err := c.Collect(ctx(t), "tl", "external_tool.requested")
	if err != nil {
		t.Fatal(err)
	}
	var req struct {
		RequestID string            `json:"requestId"`
		SessionID string            `json:"sessionId"`
		ToolName  string            `json:"toolName"`
		Arguments map[string]string `json:"arguments"`
	}
	if err := json.Unmarshal(evs[len(evs)-1].Data, &req); err != nil {
		t.Fatal(err)
	}
	if req.SessionID != "tl" || req.ToolName != "lookup" || req.Arguments["input"] != "6*7" || req.RequestID == "" {
		t.Fatalf("external_tool.requested data = %s", evs[len(evs)-1].Data)
	}
	var ok struct {
		Success bool `json:"success"`
	}
	answer := map[string]any{"sessionId": "tl", "requestId": req.RequestID, "result": map[string]any{"textResultForLlm": "42"}}
	// Any connection on the server may answer; the second answer is refused.
	if err := other.Call(ctx(t), "session.tools.handlePendingToolCall", answer, &ok); err != nil || !ok.Success {
		t.Fatalf("handlePendingToolCall = %v, %v", ok, err)
	}
	if err := c.Call(ctx(t), "session.tools.handlePendingToolCall", answer, &ok); err != nil || ok.Success {
		t.Fatalf("second handlePendingToolCall = %v, %v; want success false", ok, err)
	}
	evs, err = c.Collect(ctx(t), "tl", "session.idle")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := content(t, evs), Answer("t", "tool: 6*7", 1)+" [tool lookup: 42]"; got != want {
		t.Errorf("content = %q, want %q", got, want)
	}
	if types(evs)[0] != "external_tool.completed" {
		t.Errorf("events after the answer = %v", types(evs))
	}
	callErr(t, c, "session.tools.handlePendingToolCall", map[string]any{"sessionId": "nope", "requestId": "r"},
		CodeInternal, "Session not found for sessionId: nope")

	// Without tools, a tool: prompt is answered plainly.
	create(t, other, "plain")
	if got := content(t, turn(t, other, "plain", "tool: x")); !strings.HasSuffix(got, "[no tools]") {
		t.Errorf("content without tools = %q", got)
	}
}

// TestConcurrentTurns runs turns on many sessions over one connection at
// once; turns of one session stay in order.
func TestConcurrentTurns(t *testing.T) {
	s := startServer(t, Config{EventsPerTurn: 12})
	c := connected(t, s)
	const sessions, turns = 8, 5
	for i := range sessions {
		create(t, c, fmt.Sprint("c", i))
	}
	for i := range sessions {
		for j := range turns {
			call(t, c, "session.send", map[string]any{"sessionId": fmt.Sprint("c", i), "prompt": fmt.Sprint("p", j)})
		}
	}
	next := make(map[string]int)
	for done := 0; done < sessions*turns; {
		m, err := c.Next(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		ev, ok := m.Event()
		if !ok || ev.Type != "assistant.message" {
			continue
		}
		var d struct {
			Content string `json:"content"`
		}
		json.Unmarshal(ev.Data, &d)
		n := next[ev.SessionID]
		if want := Answer("fakecli", fmt.Sprint("p", n), n+1); d.Content != want {
			t.Fatalf("%s: content %q, want %q", ev.SessionID, d.Content, want)
		}
		next[ev.SessionID] = n + 1
		done++
	}
	waitFor(t, "turns counted", func() bool { return s.Stats().Turns == sessions*turns })
}

// TestNoLifecycle checks the bench's switch: no session.lifecycle at all,
// the turn itself unchanged.
func TestNoLifecycle(t *testing.T) {
	s := startServer(t, Config{Name: "b1", NoLifecycle: true})
	c := connected(t, s)
	create(t, c, "s-1")
	var sent struct {
		MessageID string `json:"messageId"`
	}
	if err := c.Call(ctx(t), "session.send", map[string]any{"sessionId": "s-1", "prompt": "hello"}, &sent); err != nil {
		t.Fatal(err)
	}
	for {
		m, err := c.Next(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		if m.Method == "session.lifecycle" {
			t.Fatalf("lifecycle sent: %s", m.Params)
		}
		if ev, ok := m.Event(); ok && ev.Type == "session.idle" {
			return
		}
	}
}
