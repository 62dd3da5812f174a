package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	copilot "github.com/github/copilot-sdk/go"

	"github.com/rpcproxy/rpcproxy/e2e/harness"
)

const (
	startTimeout = 30 * time.Second
	turnTimeout  = 90 * time.Second
	callTimeout  = 30 * time.Second
	stopTimeout  = 20 * time.Second
)

// newClient connects a Go SDK client to addr and stops it at cleanup.
func newClient(t *testing.T, addr string) *copilot.Client {
	t.Helper()
	client := copilot.NewClient(&copilot.ClientOptions{Connection: copilot.URIConnection{URL: addr}})
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := client.Start(ctx); err != nil {
		t.Fatalf("client start against %s: %v", addr, err)
	}
	t.Cleanup(func() {
		if err := stopClient(client); err != nil {
			t.Errorf("client stop: %v", err)
		}
	})
	return client
}

// stopClient stops a client within stopTimeout: Stop detaches each session
// with no deadline of its own, so a proxy that never answers would hang it.
func stopClient(client *copilot.Client) error {
	done := make(chan error, 1)
	go func() { done <- client.Stop() }()
	select {
	case err := <-done:
		return err
	case <-time.After(stopTimeout):
		client.ForceStop()
		return fmt.Errorf("Stop did not finish within %v (session.detach unanswered?)", stopTimeout)
	}
}

func provider(c *harness.Cluster) *copilot.ProviderConfig {
	return &copilot.ProviderConfig{Type: "openai", BaseURL: c.StubURL, APIKey: "e2e-placeholder"}
}

func sessionConfig(c *harness.Cluster, id string, tools ...copilot.Tool) *copilot.SessionConfig {
	return &copilot.SessionConfig{
		SessionID:           id,
		Model:               "stub-model",
		Provider:            provider(c),
		Tools:               tools,
		OnPermissionRequest: copilot.PermissionHandler.ApproveAll,
	}
}

func createSession(t *testing.T, c *harness.Cluster, client *copilot.Client, id string, tools ...copilot.Tool) *copilot.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	s, err := client.CreateSession(ctx, sessionConfig(c, id, tools...))
	if err != nil {
		t.Fatalf("session.create %s: %v", id, err)
	}
	if s.SessionID != id {
		t.Fatalf("session.create %s: got session id %q", id, s.SessionID)
	}
	return s
}

// turn sends prompt and returns the text of the turn's last assistant message.
func turn(s *copilot.Session, prompt string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), turnTimeout)
	defer cancel()
	ev, err := s.SendAndWait(ctx, copilot.MessageOptions{Prompt: prompt})
	if err != nil {
		return "", fmt.Errorf("session %s: send %q: %w", s.SessionID, prompt, err)
	}
	if ev == nil {
		return "", fmt.Errorf("session %s: send %q: turn ended with no assistant message", s.SessionID, prompt)
	}
	msg, ok := ev.Data.(*copilot.AssistantMessageData)
	if !ok {
		return "", fmt.Errorf("session %s: last event data is %T", s.SessionID, ev.Data)
	}
	return msg.Content, nil
}

// expectTurn runs a turn and checks its reply exactly.
func expectTurn(t *testing.T, s *copilot.Session, prompt, want string) {
	t.Helper()
	got, err := turn(s, prompt)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("session %s: reply to %q = %q, want %q", s.SessionID, prompt, got, want)
	}
}

// parallel runs f(i) for i in [0,n) concurrently and returns the errors.
func parallel(n int, f func(i int) error) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f(i)
		}()
	}
	wg.Wait()
	return slices.DeleteFunc(errs, func(err error) bool { return err == nil })
}

func listIDs(t *testing.T, client *copilot.Client) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	list, err := client.ListSessions(ctx, nil)
	if err != nil {
		t.Fatalf("session.list: %v", err)
	}
	ids := make([]string, len(list))
	for i, m := range list {
		ids[i] = m.SessionID
	}
	return ids
}

func listMetadata(t *testing.T, client *copilot.Client) map[string]copilot.SessionMetadata {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	list, err := client.ListSessions(ctx, nil)
	if err != nil {
		t.Fatalf("session.list: %v", err)
	}
	out := make(map[string]copilot.SessionMetadata, len(list))
	for _, m := range list {
		if _, dup := out[m.SessionID]; dup {
			t.Errorf("session.list has %s twice", m.SessionID)
		}
		out[m.SessionID] = m
	}
	return out
}

// checkPlacement checks that session id lives in exactly one backend's store
// and, behind the proxy, that the proxy logged placing it there and nowhere
// else. It returns that backend.
func checkPlacement(t *testing.T, c *harness.Cluster, id string) *harness.CLIServer {
	t.Helper()
	if c.Proxy != nil {
		return checkPlacementBy(t, c, c.Proxy, id)
	}
	b, err := c.BackendOf(id)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkPlacementBy checks that session id lives in exactly one backend's
// store and that proxy p logged placing it there and nowhere else. It
// returns that backend.
func checkPlacementBy(t *testing.T, c *harness.Cluster, p *harness.Proxy, id string) *harness.CLIServer {
	t.Helper()
	b, err := c.BackendOf(id)
	if err != nil {
		t.Fatal(err)
	}
	placed := p.PlacedBackends(id)
	if len(placed) == 0 {
		t.Errorf("%s logged no 'session placed … session=%s backend=…' line; the session is on %s (%s)", p.Proc.Name, id, b.Name, b.Addr)
	} else if len(placed) != 1 || placed[0] != b.Addr {
		t.Errorf("%s logged session %s placed on %v, but its state is on %s (%s)", p.Proc.Name, id, placed, b.Name, b.Addr)
	}
	return b
}

func eventContents(t *testing.T, s *copilot.Session) (user, assistant []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	events, err := s.GetEvents(ctx)
	if err != nil {
		t.Fatalf("session.getMessages %s: %v", s.SessionID, err)
	}
	for _, ev := range events {
		switch d := ev.Data.(type) {
		case *copilot.UserMessageData:
			user = append(user, d.Content)
		case *copilot.AssistantMessageData:
			assistant = append(assistant, d.Content)
		}
	}
	return user, assistant
}

func containsAll(have []string, want ...string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

func quoted(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
