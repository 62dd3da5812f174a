package fakecli

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// testTimeout bounds every wait in these tests.
const testTimeout = 10 * time.Second

func startServer(t testing.TB, cfg Config) *Server {
	t.Helper()
	s, err := Listen("127.0.0.1:0", cfg)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func dial(t testing.TB, s *Server) *Client {
	t.Helper()
	c, err := Dial(s.Addr())
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// connected dials s and completes the handshake.
func connected(t testing.TB, s *Server) *Client {
	t.Helper()
	c := dial(t, s)
	if err := c.Connect(ctx(t), s.cfg.Token); err != nil {
		t.Fatalf("connect: %v", err)
	}
	return c
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return c
}

// call makes a request that must succeed and returns its raw result.
func call(t testing.TB, c *Client, method string, params any) json.RawMessage {
	t.Helper()
	var res json.RawMessage
	if err := c.Call(ctx(t), method, params, &res); err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	return res
}

// callErr makes a request that must fail with code and a message holding substr.
func callErr(t testing.TB, c *Client, method string, params any, code int, substr string) {
	t.Helper()
	err := c.Call(ctx(t), method, params, nil)
	var re *RPCError
	if !errors.As(err, &re) {
		t.Fatalf("%s: got %v, want RPC error %d", method, err, code)
	}
	if re.Code != code || !strings.Contains(re.Message, substr) {
		t.Fatalf("%s: got error %d %q, want %d containing %q", method, re.Code, re.Message, code, substr)
	}
}

// waitFor polls cond until it holds or the test timeout passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func create(t testing.TB, c *Client, id string, tools ...string) {
	t.Helper()
	params := map[string]any{"sessionId": id, "model": "fake-small"}
	if len(tools) > 0 {
		var ts []map[string]any
		for _, n := range tools {
			ts = append(ts, map[string]any{"name": n, "description": "d", "parameters": map[string]any{"type": "object"}})
		}
		params["tools"] = ts
	}
	call(t, c, "session.create", params)
}

// turn sends prompt and returns the session's events up to session.idle.
func turn(t testing.TB, c *Client, id, prompt string) []Event {
	t.Helper()
	call(t, c, "session.send", map[string]any{"sessionId": id, "prompt": prompt})
	evs, err := c.Collect(ctx(t), id, "session.idle")
	if err != nil {
		t.Fatalf("collecting turn of %s: %v", id, err)
	}
	return evs
}

// content returns the content of the assistant.message among evs.
func content(t testing.TB, evs []Event) string {
	t.Helper()
	for _, ev := range evs {
		if ev.Type == "assistant.message" {
			var d struct {
				Content string `json:"content"`
			}
			if err := json.Unmarshal(ev.Data, &d); err != nil {
				t.Fatalf("assistant.message data: %v", err)
			}
			return d.Content
		}
	}
	t.Fatalf("no assistant.message in %d events", len(evs))
	return ""
}

func types(evs []Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.Type
	}
	return out
}
