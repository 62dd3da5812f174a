package e2e

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"regexp"
	"testing"
	"time"

	copilot "github.com/github/copilot-sdk/go"

	"github.com/rpcproxy/rpcproxy/e2e/harness"
)

// agentReachedCLI is what an agent logs when its CLI accepts its connect
// (its token is right); agentCLIDown is its health checker giving up on it.
var (
	agentReachedCLI = regexp.MustCompile(`local CLI accepted the agent's connect`)
	agentCLIDown    = regexp.MustCompile(`rpcproxy\.health: backend down`)
)

// TestGoSDKReadmeRecipeWithTokens follows the README's "Several hosts"
// recipe with connection tokens, configured only as the README says: every
// CLI server started with COPILOT_CONNECTION_TOKEN (one token for all, as
// the proxies have one RPCPROXY_BACKEND_TOKEN), an agent beside each with
// the README's flags and nothing but its CLI's environment
// (COPILOT_CONNECTION_TOKEN) and RPCPROXY_GOSSIP_KEYS, and a proxy with
// RPCPROXY_BACKEND_TOKEN and RPCPROXY_GOSSIP_KEYS. No configuration file.
// Each agent must reach its CLI (otherwise it publishes healthy=false and the
// proxy has no backend), and an SDK session completes turns through the proxy.
func TestGoSDKReadmeRecipeWithTokens(t *testing.T) {
	if harness.Direct() {
		t.Skip("the recipe needs the proxy (E2E_DIRECT is set)")
	}
	token, gossipKey := randomHex(t, 24), randomBase64(t, 32)
	cliEnv := []string{"COPILOT_CONNECTION_TOKEN=" + token}
	c := harness.StartT(t, harness.Options{
		Gossip:   true,
		Backends: 3,
		CLIEnv:   cliEnv,
		AgentEnv: append(cliEnv, "RPCPROXY_GOSSIP_KEYS="+gossipKey),
		ProxyEnv: []string{"RPCPROXY_BACKEND_TOKEN=" + token, "RPCPROXY_GOSSIP_KEYS=" + gossipKey},
	})

	// The CLI servers do require the token (else this test proves nothing).
	noToken := copilot.NewClient(&copilot.ClientOptions{Connection: copilot.URIConnection{URL: c.Backends[0].Addr}})
	startCtx, startCancel := context.WithTimeout(context.Background(), startTimeout)
	err := noToken.Start(startCtx)
	startCancel()
	if err == nil {
		stopClient(noToken)
		t.Fatalf("%s accepted a client without its COPILOT_CONNECTION_TOKEN", c.Backends[0].Name)
	}
	noToken.ForceStop()

	// An agent publishes healthy=true until its own checks say otherwise, so
	// wait for each one's verdict before using the pool: its CLI accepting
	// the agent's connect, or the agent's checker taking the CLI down.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, a := range c.Agents {
		either := regexp.MustCompile(agentReachedCLI.String() + "|" + agentCLIDown.String())
		m, err := a.Proc.WaitFor(ctx, either)
		if err != nil {
			t.Fatalf("%s: %v", a.Name, err)
		}
		if !agentReachedCLI.MatchString(m[0]) {
			t.Fatalf("%s cannot check its CLI %s with the CLI's own COPILOT_CONNECTION_TOKEN in its environment:\n%s", a.Name, a.CLI, a.Proc.LogTail(20))
		}
	}
	for _, b := range c.Backends {
		if state := c.Proxy.BackendState(b.Addr); state != "up" {
			t.Errorf("proxy logged backend %s %s", b.Addr, state)
		}
	}

	client := newClient(t, c.Proxy.Addr)
	sessions := createSessions(t, c, client, "go-readme-tokens-%d", 3)
	expectTurns(t, sessions, 1)
	expectTurns(t, sessions, 2)
	for _, s := range sessions {
		checkPlacement(t, c, s.SessionID)
	}
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func randomBase64(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}
