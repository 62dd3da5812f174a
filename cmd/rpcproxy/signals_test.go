package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rpcproxy/rpcproxy/internal/fakecli"
)

// startFakes starts n fake CLI servers sharing one session store.
func startFakes(t *testing.T, n int, tokens ...string) []*fakecli.Server {
	t.Helper()
	store := fakecli.NewStore()
	var fakes []*fakecli.Server
	for i := 0; i < n; i++ {
		cfg := fakecli.Config{Name: fmt.Sprintf("cli-%d", i), Store: store}
		if i < len(tokens) {
			cfg.Token = tokens[i]
		}
		f, err := fakecli.Listen("127.0.0.1:0", cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		fakes = append(fakes, f)
	}
	return fakes
}

func writeConfig(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

// SIGHUP (systemctl reload, log rotators) to a proxy started without a
// file reloads nothing and stops nothing: it says so and keeps serving.
func TestServeSurvivesHangupWithoutConfig(t *testing.T) {
	fakes := startFakes(t, 1)
	listen := freeAddr(t)
	p := startProcess(t, "serve", "--backend", fakes[0].Addr(), "--listen", listen)
	p.waitLog(t, "rpcproxy listening", 1)
	for i := 1; i <= 2; i++ {
		p.cmd.Process.Signal(syscall.SIGHUP)
		p.waitLog(t, "SIGHUP: nothing to reload (started without --config)", i)
	}
	p.running(t)
	c := sdkClient(t, listen)
	call(t, c, "session.create", map[string]any{"sessionId": "after-hup"})
	turnOn(t, c, "after-hup", "still serving")
}

// A reload applies what it says it applies: a backend's new token (it was
// refused with the old one) and the log level; it names a changed setting
// it does not apply as needing a restart; a backend removed from the file
// that holds no session is drained at once and forgotten (the proxy closes
// its connections to it).
func TestServeReloadAppliesOrNamesEveryChange(t *testing.T) {
	fakes := startFakes(t, 3, "", "secret-new", "")
	keep, rekeyed, removed := fakes[0].Addr(), fakes[1].Addr(), fakes[2].Addr()
	cfgPath := filepath.Join(t.TempDir(), "rpcproxy.hcl")
	const healthBlock = "health {\n  interval = \"100ms\"\n  timeout = \"100ms\"\n  rise = %d\n}\n"
	writeConfig(t, cfgPath, fmt.Sprintf(healthBlock, 2)+fmt.Sprintf(
		"backend %q {}\nbackend %q { token = \"secret-old\" }\nbackend %q {}\n", keep, rekeyed, removed))
	listen := freeAddr(t)
	p := startProcess(t, "serve", "--config", cfgPath, "--listen", listen)
	p.waitLog(t, "rpcproxy listening", 1)
	p.waitLog(t, "backend down: backend="+rekeyed, 1) // the old token is refused
	waitFor(t, "proxy connected to the backend to remove", func() bool { return fakes[2].Stats().Conns > 0 })

	writeConfig(t, cfgPath, "log_level = \"debug\"\n"+fmt.Sprintf(healthBlock, 3)+fmt.Sprintf(
		"backend %q {}\nbackend %q { token = \"secret-new\" }\n", keep, rekeyed))
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitLog(t, "configuration reloaded", 1)
	for _, want := range []string{
		"backend updated: backend=" + rekeyed + " weight=1 token_changed=true",
		"log level changed: level=debug",
		"changed setting needs a restart; the running value is kept: setting=health.rise",
		"backend removed from the configuration: draining it: backend=" + removed,
		"draining backend holds no sessions: backend=" + removed,
		"backend removed from the configuration holds no sessions: forgotten: backend=" + removed,
	} {
		p.waitLog(t, want, 1)
	}
	if strings.Contains(p.logs(), "secret-") {
		t.Error("a token reached the log")
	}
	p.waitLog(t, "backend="+rekeyed+" from=down to=up", 1)
	waitFor(t, "no connection left to the forgotten backend", func() bool { return fakes[2].Stats().Conns == 0 })
	p.running(t)
}

// A backend removed from the file while it holds sessions is drained: its
// sessions move at their next turn, and it is forgotten once empty.
func TestServeForgetsRemovedBackendOnceEmpty(t *testing.T) {
	fakes := startFakes(t, 2)
	cfgPath := filepath.Join(t.TempDir(), "rpcproxy.hcl")
	writeConfig(t, cfgPath, fmt.Sprintf("backend %q {}\nbackend %q {}\n", fakes[0].Addr(), fakes[1].Addr()))
	listen := freeAddr(t)
	p := startProcess(t, "serve", "--config", cfgPath, "--listen", listen)
	p.waitLog(t, "rpcproxy listening", 1)
	c := sdkClient(t, listen)
	onSecond := sessionsOnSecond(t, c, "removed")
	writeConfig(t, cfgPath, fmt.Sprintf("backend %q {}\n", fakes[0].Addr()))
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitLog(t, "configuration reloaded", 1)
	p.waitLog(t, fmt.Sprintf("draining backend: backend=%s sessions=%d", fakes[1].Addr(), len(onSecond)), 1)
	if strings.Contains(p.logs(), "forgotten") {
		t.Fatal("a backend holding sessions was forgotten")
	}
	for _, sid := range onSecond {
		turnOn(t, c, sid, "after reload")
	}
	p.waitLog(t, "forgotten: backend="+fakes[1].Addr(), 1)
	waitFor(t, "no connection left to the forgotten backend", func() bool { return fakes[1].Stats().Conns == 0 })
}

// With --config and --backend together, the log says what a reload
// applies: the flags replace the file's backend blocks.
func TestServeReloadWithBackendFlagsSaysWhatApplies(t *testing.T) {
	fakes := startFakes(t, 1)
	cfgPath := filepath.Join(t.TempDir(), "rpcproxy.hcl")
	writeConfig(t, cfgPath, fmt.Sprintf("backend %q { weight = 2 }\n", fakes[0].Addr()))
	p := startProcess(t, "serve", "--config", cfgPath, "--backend", fakes[0].Addr(), "--listen", freeAddr(t))
	p.waitLog(t, "rpcproxy listening", 1)
	p.waitLog(t, flagBackendsNote, 1)
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitLog(t, "configuration reloaded", 1)
	p.waitLog(t, flagBackendsNote, 2)
	p.running(t)
}

// SIGHUP to an agent stops nothing; a second SIGTERM while it drains makes
// it leave at once instead of after its drain timeout.
func TestAgentHangupAndSecondTerm(t *testing.T) {
	fakes := startFakes(t, 1)
	p := startProcess(t, "agent", "--cli", fakes[0].Addr(), "--bind", freeAddr(t), "--drain-timeout", "1h")
	p.waitLog(t, "agent joined gossip cluster", 1)
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitLog(t, "SIGHUP: nothing to reload (started without --config)", 1)
	p.running(t)

	p.cmd.Process.Signal(syscall.SIGTERM)
	p.waitLog(t, "draining: timeout=1h0m0s", 1)
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("a second SIGTERM did not end the drain")
	}
	if p.err != nil {
		t.Fatalf("exit: %v", p.err)
	}
	for _, want := range []string{"second signal while draining: leaving now", "agent left the cluster"} {
		if !strings.Contains(p.logs(), want) {
			t.Errorf("log lacks %q", want)
		}
	}
}

// An agent with a file names the settings a SIGHUP found changed: it applies
// none of them without a restart.
func TestAgentHangupNamesChangedSettings(t *testing.T) {
	fakes := startFakes(t, 1)
	cfgPath := filepath.Join(t.TempDir(), "rpcproxy.hcl")
	writeConfig(t, cfgPath, "agent {\n  weight = 1\n}\n")
	p := startProcess(t, "agent", "--config", cfgPath, "--cli", fakes[0].Addr(), "--gossip-bind", freeAddr(t), "--drain-timeout", "0s")
	p.waitLog(t, "agent joined gossip cluster", 1)
	writeConfig(t, cfgPath, "agent {\n  weight = 4\n}\nlisten = \":1\"\n")
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitLog(t, "changed setting needs a restart; the running value is kept: setting=agent.weight", 1)
	p.waitLog(t, "SIGHUP: the agent applies no setting without a restart: changed=1", 1)
	p.running(t)
}

// serve ignores the agent block, so a bad one does not stop it; the agent
// refuses it, naming the file and line.
func TestBadAgentBlockStopsOnlyTheAgent(t *testing.T) {
	cfgPath := filepath.Join(t.TempDir(), "rpcproxy.hcl")
	writeConfig(t, cfgPath, "agent {\n  weight = 0\n}\n")
	src, err := parseServeFlags([]string{"--config", cfgPath, "--backend", "127.0.0.1:1"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.load(); err != nil {
		t.Fatalf("serve refused a bad agent block it ignores: %v", err)
	}
	var out bytes.Buffer
	if code := run([]string{"agent", "--config", cfgPath}, &out, &out); code != 1 {
		t.Fatalf("agent exit code %d, want 1", code)
	}
	if want := cfgPath + ":2:3: agent.weight: must be 1 to 100, got 0"; !strings.Contains(out.String(), want) {
		t.Fatalf("agent said %q, want %q", out.String(), want)
	}
}

// -h shows real defaults only, --bind and --gossip-bind work on both
// commands, and the top-level help names both commands' -h.
func TestFlagsAndHelp(t *testing.T) {
	for _, cmd := range []string{"serve", "agent"} {
		var out bytes.Buffer
		if code := run([]string{cmd, "-h"}, &out, &out); code != 0 {
			t.Fatalf("%s -h: exit %d", cmd, code)
		}
		help := out.String()
		for _, bogus := range []string{"(default -1)", "-1ns", "(default 10s) (default"} {
			if strings.Contains(help, bogus) {
				t.Errorf("%s -h shows %q:\n%s", cmd, bogus, help)
			}
		}
		for _, want := range []string{"-gossip-bind", "-bind", "alias of --gossip-bind"} {
			if !strings.Contains(help, want) {
				t.Errorf("%s -h lacks %q", cmd, want)
			}
		}
	}
	var out bytes.Buffer
	run([]string{"--help"}, &out, &out)
	for _, want := range []string{`"rpcproxy serve -h"`, `"rpcproxy agent -h"`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("rpcproxy --help lacks %s:\n%s", want, out.String())
		}
	}

	for _, name := range []string{"--bind", "--gossip-bind"} {
		src, err := parseServeFlags([]string{name, "127.0.0.1:7000"}, &bytes.Buffer{})
		if err != nil || src.overrides.GossipBind != "127.0.0.1:7000" {
			t.Errorf("serve %s: %v, gossip bind %q", name, err, src.overrides.GossipBind)
		}
		_, o, err := parseAgentFlags([]string{name, "127.0.0.1:7000"}, &bytes.Buffer{})
		if err != nil || o.GossipBind != "127.0.0.1:7000" {
			t.Errorf("agent %s: %v, gossip bind %q", name, err, o.GossipBind)
		}
	}
	if _, err := parseServeFlags([]string{"--bind", "127.0.0.1:1", "--gossip-bind", "127.0.0.1:2"}, &bytes.Buffer{}); err == nil {
		t.Error("serve accepted --bind and --gossip-bind together")
	}
	src, err := parseServeFlags([]string{"--spawn", "0"}, &bytes.Buffer{})
	if err != nil || src.overrides.Spawn == nil || *src.overrides.Spawn != 0 {
		t.Errorf("--spawn 0: %v, %v", err, src.overrides.Spawn)
	}
	_, o, err := parseAgentFlags([]string{"--drain-timeout", "0s"}, &bytes.Buffer{})
	if err != nil || o.AgentDrainTimeout == nil || *o.AgentDrainTimeout != 0 {
		t.Errorf("--drain-timeout 0s: %v, %v", err, o.AgentDrainTimeout)
	}
}
