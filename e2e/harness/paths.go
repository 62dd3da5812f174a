// Package harness runs the real things rpcproxy sits between, for end-to-end
// tests: the deterministic model stub, a pool of real headless Copilot CLI
// servers (from the pinned npm install under e2e/node), and rpcproxy itself
// built from the root module, all on loopback and all torn down on Close.
//
// Environment:
//
//	E2E_REQUIRED=1     missing pieces (npm install, node) fail instead of skip
//	E2E_DIRECT=1       no proxy: SDKs talk to one CLI server directly
//	E2E_BACKENDS=N     number of CLI servers behind the proxy (default 3)
//	E2E_PROXY_BIN=path use this rpcproxy binary instead of building one
//	E2E_COPILOT_BIN=p  use this copilot binary instead of the npm install's
//	E2E_KEEP=1         keep the work directory (homes, logs) after Close
package harness

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
)

// ErrUnavailable marks a missing prerequisite (the npm install, node): tests
// skip on it unless E2E_REQUIRED is set.
var ErrUnavailable = errors.New("e2e prerequisite missing")

// Required reports whether E2E_REQUIRED asks for missing pieces to fail.
func Required() bool { return envBool("E2E_REQUIRED") }

// Direct reports whether E2E_DIRECT asks for SDKs to talk to one CLI server
// directly instead of through rpcproxy.
func Direct() bool { return envBool("E2E_DIRECT") }

func envBool(name string) bool {
	v, err := strconv.ParseBool(os.Getenv(name))
	return err == nil && v
}

// E2EDir returns the absolute path of the e2e directory (this module's root),
// found from this source file so that it does not depend on the working
// directory of the test binary.
func E2EDir() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("harness: cannot locate source directory")
	}
	dir := filepath.Dir(filepath.Dir(file))
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		return "", fmt.Errorf("harness: e2e module root not found at %s: %w", dir, err)
	}
	return dir, nil
}

// RepoRoot returns the root of the rpcproxy repository (the root module).
func RepoRoot() (string, error) {
	dir, err := E2EDir()
	if err != nil {
		return "", err
	}
	return filepath.Dir(dir), nil
}

// NodeDir returns e2e/node, the Node package with the pinned CLI and SDK.
func NodeDir() (string, error) {
	dir, err := E2EDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "node"), nil
}

// CopilotBinary returns the path of the copilot CLI: $E2E_COPILOT_BIN, else
// the native binary of the npm install (node_modules/@github/copilot-linux-x64
// or the platform's equivalent). The error wraps ErrUnavailable when the npm
// install is missing.
func CopilotBinary() (string, error) {
	if p := os.Getenv("E2E_COPILOT_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("harness: E2E_COPILOT_BIN: %w", err)
		}
		return p, nil
	}
	node, err := NodeDir()
	if err != nil {
		return "", err
	}
	platform := runtime.GOOS + "-" + map[string]string{"amd64": "x64", "arm64": "arm64"}[runtime.GOARCH]
	native := filepath.Join(node, "node_modules", "@github", "copilot-"+platform, "copilot")
	if _, err := os.Stat(native); err == nil {
		return native, nil
	}
	return "", fmt.Errorf("%w: no copilot CLI at %s (run e2e/install.sh)", ErrUnavailable, native)
}

// NodeBinary returns the node executable, or an error wrapping ErrUnavailable.
func NodeBinary() (string, error) {
	p, err := exec.LookPath("node")
	if err != nil {
		return "", fmt.Errorf("%w: node not on PATH", ErrUnavailable)
	}
	return p, nil
}

// NodeSDKInstalled reports an error wrapping ErrUnavailable when the Node SDK
// is not installed under e2e/node/node_modules.
func NodeSDKInstalled() error {
	node, err := NodeDir()
	if err != nil {
		return err
	}
	p := filepath.Join(node, "node_modules", "@github", "copilot-sdk", "package.json")
	if _, err := os.Stat(p); err != nil {
		return fmt.Errorf("%w: Node SDK not installed at %s (run e2e/install.sh)", ErrUnavailable, p)
	}
	return nil
}
