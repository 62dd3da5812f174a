package e2e

import (
	"context"
	"os"
	"sync"
	"testing"

	"github.com/rpcproxy/rpcproxy/e2e/harness"
)

// One cluster (stub, CLI servers, proxy) serves every scenario of a test run:
// starting three CLI servers per test would cost more than the tests. Each
// scenario uses its own session ids.
var shared struct {
	once    sync.Once
	cluster *harness.Cluster
	err     error
}

// cluster returns the shared cluster, starting it on first use. It skips the
// test when the npm install is missing and E2E_REQUIRED is not set.
func cluster(t *testing.T) *harness.Cluster {
	t.Helper()
	shared.once.Do(func() {
		shared.cluster, shared.err = harness.Start(context.Background(), harness.Options{})
	})
	if shared.err != nil {
		harness.SkipOrFatal(t, shared.err)
	}
	c := shared.cluster
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(c.Diagnostics(60))
		}
	})
	return c
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.cluster != nil {
		shared.cluster.Close()
	}
	os.Exit(code)
}
