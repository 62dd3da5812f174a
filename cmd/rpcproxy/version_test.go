package main

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/rpcproxy/rpcproxy/internal/membership"
)

func TestStampFromBuildInfo(t *testing.T) {
	vcs := &debug.BuildInfo{
		Main: debug.Module{Version: "v0.0.0-20261130165746-7e5a381aa3ad+dirty"},
		Settings: []debug.BuildSetting{
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: "7e5a381aa3addbdbb0123c04dec0ab4925a848c0"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	tests := []struct {
		name                string
		version, commit     string
		info                *debug.BuildInfo
		wantVersion, wantCm string
		wantModified        bool
	}{
		{"no build info", "dev", "", nil, "dev", "", false},
		{"build info without vcs", "dev", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "dev", "", false},
		{"go install module@version", "dev", "", &debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}}, "v1.2.3", "", false},
		{"vcs stamping", "dev", "", vcs, "v0.0.0-20261130165746-7e5a381aa3ad+dirty", "7e5a381aa3addbdbb0123c04dec0ab4925a848c0", true},
		{"ldflags win", "v0.3-1-gabc1234", "abc1234def", vcs, "v0.3-1-gabc1234", "abc1234def", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, c, m := stampFromBuildInfo(tt.version, tt.commit, tt.info)
			if v != tt.wantVersion || c != tt.wantCm || m != tt.wantModified {
				t.Errorf("stampFromBuildInfo = %q, %q, %v; want %q, %q, %v", v, c, m, tt.wantVersion, tt.wantCm, tt.wantModified)
			}
		})
	}
}

func TestVersionCommand(t *testing.T) {
	saved := [3]any{version, commit, modified}
	t.Cleanup(func() { version, commit, modified = saved[0].(string), saved[1].(string), saved[2].(bool) })
	version, commit, modified = "v0.3-12-gabc1234", "abc1234def", false
	var out bytes.Buffer
	if code := run([]string{"version"}, &out, &out); code != 0 {
		t.Fatalf("rpcproxy version exited %d: %s", code, out.String())
	}
	if want := "rpcproxy v0.3-12-gabc1234 (commit abc1234def, " + runtime.Version() + ")\n"; out.String() != want {
		t.Errorf("rpcproxy version printed %q, want %q", out.String(), want)
	}
}

// TestMakeStampsVersion builds rpcproxy the way the Makefile does (make
// rpcproxy, which `make build` runs) and checks that `rpcproxy version`
// names the checkout's git describe and commit, not "dev".
func TestMakeStampsVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	for _, tool := range []string{"make", "git"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found", tool)
		}
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	gitOut := func(args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = root
		out, err := cmd.Output()
		if err != nil {
			t.Skipf("not a git checkout (git %s: %v)", strings.Join(args, " "), err)
		}
		return strings.TrimSpace(string(out))
	}
	head := gitOut("rev-parse", "HEAD")
	describe := gitOut("describe", "--tags", "--always", "--dirty")

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bin := t.TempDir()
	build := exec.CommandContext(ctx, "make", "--no-print-directory", "-C", root, "rpcproxy", "BIN="+bin)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("make rpcproxy: %v\n%s", err, out)
	}
	out, err := exec.CommandContext(ctx, filepath.Join(bin, "rpcproxy"), "version").Output()
	if err != nil {
		t.Fatalf("rpcproxy version: %v", err)
	}
	got := strings.TrimSpace(string(out))
	if strings.HasPrefix(got, "rpcproxy dev") {
		t.Errorf("rpcproxy version = %q: not stamped", got)
	}
	if want := "rpcproxy " + describe + " (commit " + head + ", "; !strings.HasPrefix(got, want) {
		t.Errorf("rpcproxy version = %q, want it to start with %q", got, want)
	}
}

// A long git describe (a long tag) must not make the gossip metadata invalid:
// agents would fail to join.
func TestMetaVersionFitsMetadata(t *testing.T) {
	saved := version
	t.Cleanup(func() { version = saved })
	version = strings.Repeat("v", membership.MaxVersionLen+10)
	m := membership.Meta{Role: membership.RoleProxy, Version: metaVersion()}
	if err := m.Validate(); err != nil {
		t.Errorf("metadata with version %q: %v", m.Version, err)
	}
}
