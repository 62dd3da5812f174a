package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rpcproxy/rpcproxy/e2e/harness"
)

// nodeScenarioTimeout bounds the whole Node scenario run; scenario.mjs has its
// own, shorter, watchdog.
const nodeScenarioTimeout = 9 * time.Minute

// TestNodeSDKScenarios runs e2e/node/scenario.mjs, the same scenarios with
// the official Node SDK, against the shared cluster.
func TestNodeSDKScenarios(t *testing.T) {
	node, dir := nodeSetup(t)
	c := cluster(t)
	addrs := make([]string, len(c.Backends))
	homes := make([]string, len(c.Backends))
	for i, b := range c.Backends {
		addrs[i], homes[i] = b.Addr, b.Home
	}
	env := append(os.Environ(),
		"E2E_TARGET="+c.Target,
		"E2E_STUB_URL="+c.StubURL,
		"E2E_BACKENDS="+strings.Join(addrs, ","),
		"E2E_BACKEND_HOMES="+strings.Join(homes, ","),
	)
	if c.Proxy != nil {
		env = append(env, "E2E_PROXY_LOG="+c.Proxy.Proc.LogPath, "E2E_DIRECT=0")
	} else {
		env = append(env, "E2E_PROXY_LOG=", "E2E_DIRECT=1")
	}

	ctx, cancel := context.WithTimeout(context.Background(), nodeScenarioTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(dir, "scenario.mjs"))
	cmd.Dir = dir
	cmd.Env = env
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	for _, line := range strings.Split(strings.TrimRight(out.String(), "\n"), "\n") {
		t.Log(line)
	}
	if err != nil {
		t.Fatalf("scenario.mjs failed: %v", err)
	}
	if !strings.Contains(out.String(), " passed, 0 failed") {
		t.Fatal("scenario.mjs exited 0 without its closing 'N passed, 0 failed' line")
	}
}

var demoReply = regexp.MustCompile(`(?m)^  demo-\S+  reply #1: hello from demo session \d+$`)

// TestNodeDemo runs e2e/node/demo.mjs (the `make demo` client) against the
// shared cluster, so that the demo cannot rot unnoticed.
func TestNodeDemo(t *testing.T) {
	node, dir := nodeSetup(t)
	c := cluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(dir, "demo.mjs"))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PROXY_ADDR="+c.Target, "STUB_URL="+c.StubURL, "DEMO_SESSIONS=6")
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	t.Logf("demo.mjs output:\n%s", out)
	if err != nil {
		t.Fatalf("demo.mjs failed: %v", err)
	}
	if got := len(demoReply.FindAllString(string(out), -1)); got != 6 {
		t.Errorf("demo printed %d session replies, want 6", got)
	}
}

// nodeSetup returns the node binary and the e2e/node folder, skipping (or
// failing, with E2E_REQUIRED) when the Node SDK is not installed.
func nodeSetup(t *testing.T) (node, dir string) {
	t.Helper()
	node, err := harness.NodeBinary()
	if err == nil {
		err = harness.NodeSDKInstalled()
	}
	if err != nil {
		harness.SkipOrFatal(t, err)
	}
	dir, err = harness.NodeDir()
	if err != nil {
		t.Fatal(err)
	}
	return node, dir
}
