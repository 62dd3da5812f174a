// Package scripts holds tests of the shell scripts beside it.
package scripts

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// shellTools are the commands demo-cli.sh and e2e/install.sh run; the tests
// give the scripts a PATH with only these (and the fakes), so a copilot or
// npm installed on the machine cannot interfere.
var shellTools = []string{"bash", "sed", "grep", "head", "sha256sum", "uname", "cut", "dirname", "mktemp", "cat", "rm", "cp", "cmp"}

// demoTree copies what demo-cli.sh needs into a fresh directory laid out like
// the repository, without any npm install, and returns its root.
func demoTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for _, f := range []string{"scripts/demo-cli.sh", "e2e/install.sh", "e2e/node/package.json", "e2e/node/package-lock.json"} {
		b, err := os.ReadFile(filepath.Join("..", f))
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(root, f)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// fakeBin returns a directory for PATH holding links to shellTools, an npm
// that records its arguments in npmLog and fails, and, when copilotVersion
// is not empty, a copilot that prints that version as the CLI does.
func fakeBin(t *testing.T, copilotVersion string) (dir, npmLog string) {
	t.Helper()
	dir = t.TempDir()
	for _, tool := range shellTools {
		path, err := exec.LookPath(tool)
		if err != nil {
			t.Skipf("%s not found", tool)
		}
		if err := os.Symlink(path, filepath.Join(dir, tool)); err != nil {
			t.Fatal(err)
		}
	}
	npmLog = filepath.Join(t.TempDir(), "npm.log")
	script := "#!/bin/sh\necho \"npm $*\" >> '" + npmLog + "'\necho 'npm stub: no registry in this test' >&2\nexit 1\n"
	if err := os.WriteFile(filepath.Join(dir, "npm"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if copilotVersion != "" {
		script := "#!/bin/sh\n[ \"$1\" = --version ] && echo 'GitHub Copilot CLI " + copilotVersion + ".' && exit 0\nexit 2\n"
		if err := os.WriteFile(filepath.Join(dir, "copilot"), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir, npmLog
}

// pinnedCLI is the @github/copilot version e2e/node/package.json pins.
func pinnedCLI(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../e2e/node/package.json")
	if err != nil {
		t.Fatal(err)
	}
	var pkg struct {
		Dependencies map[string]string `json:"dependencies"`
	}
	if err := json.Unmarshal(b, &pkg); err != nil {
		t.Fatal(err)
	}
	v := pkg.Dependencies["@github/copilot"]
	if v == "" {
		t.Fatal("e2e/node/package.json pins no @github/copilot")
	}
	return v
}

// runScript runs a script of the tree with PATH=bin and returns its stdout,
// stderr and error.
func runScript(t *testing.T, bin, script string, args ...string) (string, string, error) {
	t.Helper()
	cmd := exec.Command(filepath.Join(bin, "bash"), append([]string{script}, args...)...)
	cmd.Env = []string{"PATH=" + bin, "HOME=" + t.TempDir()}
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

func npmCalls(t *testing.T, npmLog string) string {
	t.Helper()
	b, err := os.ReadFile(npmLog)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

// make demo with a copilot of the pinned version on PATH runs that one and
// never asks npm for the CLI.
func TestDemoUsesPinnedCopilotFromPath(t *testing.T) {
	root := demoTree(t)
	bin, npmLog := fakeBin(t, pinnedCLI(t))
	stdout, stderr, err := runScript(t, bin, filepath.Join(root, "scripts/demo-cli.sh"))
	if err != nil {
		t.Fatalf("demo-cli.sh: %v\n%s", err, stderr)
	}
	if got, want := strings.TrimSpace(stdout), filepath.Join(bin, "copilot"); got != want {
		t.Errorf("demo-cli.sh chose %q, want the copilot on PATH %q", got, want)
	}
	if calls := npmCalls(t, npmLog); calls != "" {
		t.Errorf("npm called although copilot %s is on PATH:\n%s", pinnedCLI(t), calls)
	}
}

// Without copilot on PATH, or with another version, the pinned CLI is
// installed from npm (here the npm stub fails, so the script does too).
func TestDemoInstallsCopilotOtherwise(t *testing.T) {
	for _, tc := range []struct{ name, version string }{
		{"none on PATH", ""},
		{"another version on PATH", "0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := demoTree(t)
			bin, npmLog := fakeBin(t, tc.version)
			_, stderr, err := runScript(t, bin, filepath.Join(root, "scripts/demo-cli.sh"))
			if err == nil {
				t.Fatalf("demo-cli.sh succeeded with a failing npm; stderr:\n%s", stderr)
			}
			calls := npmCalls(t, npmLog)
			if !strings.Contains(calls, "npm ci") || strings.Contains(calls, "--omit=optional") {
				t.Errorf("npm calls %q, want a full npm ci (CLI included)", calls)
			}
			if tc.version != "" && !strings.Contains(stderr, "pinned with CLI "+pinnedCLI(t)) {
				t.Errorf("stderr does not say why the copilot on PATH is not used:\n%s", stderr)
			}
		})
	}
}

// install.sh --sdk-only (what the demo runs for its Node client) asks npm
// for no optional package: not the CLI's native binary.
func TestInstallSDKOnlyOmitsCLI(t *testing.T) {
	root := demoTree(t)
	bin, npmLog := fakeBin(t, "")
	if _, stderr, err := runScript(t, bin, filepath.Join(root, "e2e/install.sh"), "--sdk-only"); err == nil {
		t.Fatalf("install.sh --sdk-only succeeded with a failing npm; stderr:\n%s", stderr)
	}
	if calls := npmCalls(t, npmLog); !strings.Contains(calls, "npm ci") || !strings.Contains(calls, "--omit=optional") {
		t.Errorf("npm calls %q, want npm ci --omit=optional", calls)
	}
}

// make demo does not run the full e2e install itself (scripts/demo.sh
// decides), so a copilot on PATH spares the CLI download.
func TestMakeDemoDoesNotInstallCLI(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make not found")
	}
	out, err := exec.Command("make", "--no-print-directory", "-n", "-C", "..", "demo").CombinedOutput()
	if err != nil {
		t.Fatalf("make -n demo: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "e2e/install.sh") {
			t.Errorf("make demo runs %q before scripts/demo.sh looks for copilot on PATH", line)
		}
	}
	if !strings.Contains(string(out), "scripts/demo.sh") {
		t.Errorf("make -n demo does not run scripts/demo.sh:\n%s", out)
	}
}
