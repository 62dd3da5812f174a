package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	copilot "github.com/github/copilot-sdk/go"

	"github.com/rpcproxy/rpcproxy/e2e/harness"
)

// TestGoSDKLimits shows what the Go SDK sees when it hits the proxy's
// limits, with the real CLI behind: a session past max_sessions_per_client
// fails CreateSession with the proxy's error, a detached one gives its
// place back, and a client past max_connections fails Start.
func TestGoSDKLimits(t *testing.T) {
	if harness.Direct() {
		t.Skip("proxy limits; direct mode has no proxy")
	}
	c := harness.StartT(t, harness.Options{Backends: 1, Config: `
limits {
  max_connections         = 1
  max_sessions_per_client = 2
}
`})

	// The harness's readiness probe may hold the one connection a moment.
	var client *copilot.Client
	deadline := time.Now().Add(startTimeout)
	for client == nil {
		cl := copilot.NewClient(&copilot.ClientOptions{Connection: copilot.URIConnection{URL: c.Target}})
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		err := cl.Start(ctx)
		cancel()
		switch {
		case err == nil:
			client = cl
			t.Cleanup(func() {
				if err := stopClient(cl); err != nil {
					t.Errorf("client stop: %v", err)
				}
			})
		case strings.Contains(err.Error(), "-32036") && time.Now().Before(deadline):
			cl.ForceStop()
			time.Sleep(50 * time.Millisecond)
		default:
			t.Fatalf("client start: %v", err)
		}
	}
	first := createSession(t, c, client, "go-limit-0")
	createSession(t, c, client, "go-limit-1")
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	_, err := client.CreateSession(ctx, sessionConfig(c, "go-limit-2"))
	if err == nil || !strings.Contains(err.Error(), "too many sessions") {
		t.Fatalf("third session: err = %v, want the proxy's too many sessions", err)
	}
	t.Logf("CreateSession past max_sessions_per_client: %v", err)
	if err := first.Disconnect(); err != nil {
		t.Fatalf("session.detach: %v", err)
	}
	expectTurn(t, createSession(t, c, client, "go-limit-2"), "fits now", "reply #1: fits now")

	other := copilot.NewClient(&copilot.ClientOptions{Connection: copilot.URIConnection{URL: c.Target}})
	sctx, scancel := context.WithTimeout(context.Background(), startTimeout)
	defer scancel()
	err = other.Start(sctx)
	if err == nil {
		other.ForceStop()
		t.Fatal("second client started past max_connections = 1")
	}
	other.ForceStop()
	if !strings.Contains(err.Error(), "-32036") || !strings.Contains(err.Error(), "too many connections") {
		t.Fatalf("second client: Start failed with %v, want the proxy's -32036 too many connections", err)
	}
	t.Logf("Start past max_connections: %v", err)
}
