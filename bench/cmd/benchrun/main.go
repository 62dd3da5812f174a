// Command benchrun is the load bench of rpcproxy (make bench runs it through
// bench/run.sh). It starts fake CLI servers as processes, plays the same
// SDK-like load directly against them, through rpcproxy and through HAProxy
// in TCP mode, alternating modes over several repetitions, measures the
// proxy process from /proc, and writes bench/results/<timestamp>.{md,json,svg}
// and bench/results/latest.md.
//
//	benchrun [--bin bin] [--haproxy PATH] [--reps 3] [--scale 1] [--scenarios LIST] [--micro FILE]
//
// `benchrun stub-backend` is the minimal backend used for the idle
// measurement.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/rpcproxy/rpcproxy/bench/loadgen"
	"github.com/rpcproxy/rpcproxy/bench/report"
	"github.com/rpcproxy/rpcproxy/internal/config"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "stub-backend" {
		os.Exit(stubMain(os.Args[2:]))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "benchrun:", err)
		}
		os.Exit(1)
	}
}

// bench is one bench run's settings and scratch space.
type bench struct {
	rpcproxy, fakecli, haproxy string
	backends, reps             int
	events                     int
	sizes                      []int
	noLifecycle                bool // backends send no session.lifecycle
	modes                      []string
	scratch                    string // logs and generated configs
	nofile                     uint64 // open files limit
	profileDir                 string // proxyprof profiles, when set
	// proxyArgs are added to every `rpcproxy serve` command line
	// (--rpcproxy-config, --rpcproxy-arg, --connections-per-backend).
	proxyArgs []string
	// connsPerBackend is the upstream.connections_per_backend rpcproxy is
	// run with: the one given, else the proxy's default.
	connsPerBackend int
	log             io.Writer
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.log, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// Scenario names accepted by --scenarios, besides the report's.
const (
	scenarioIdle = "idle"
	scenarioHeld = "sessions"
	// scenarioSpread: connections each with a session on every backend.
	scenarioSpread = "spread"
)

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, " ") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("benchrun", flag.ContinueOnError)
	bin := fs.String("bin", "bin", "directory holding the rpcproxy and fakecli binaries")
	haproxy := fs.String("haproxy", "haproxy", `HAProxy executable ("" skips the haproxy mode)`)
	out := fs.String("out", "bench/results", "directory for the results")
	backends := fs.Int("backends", 3, "fake CLI server processes")
	reps := fs.Int("reps", 3, "repetitions of every mode in every scenario")
	scale := fs.Float64("scale", 1, "multiplies every window and warm-up (0.2 for a quick look)")
	scenarios := fs.String("scenarios", strings.Join([]string{report.ScenarioThroughput, report.ScenarioLone, report.ScenarioConcurrent, scenarioIdle, scenarioSpread, scenarioHeld}, ","),
		"scenarios to run, in order")
	events := fs.Int("events", loadgen.DefaultEventsPerTurn, "session.event notifications per turn")
	sizes := fs.String("event-sizes", loadgen.FormatSizes(loadgen.DefaultEventSizes), "delta sizes in bytes, cycled")
	noLifecycle := fs.Bool("no-lifecycle", false, "backends send no session.lifecycle (a diagnosis: the CLI always sends them)")
	idleConns := fs.Int("idle-conns", 10000, "idle client connections (lowered to fit the open files limit)")
	heldSessions := fs.Int("held-sessions", report.HeldSessions, "sessions held at once in the sessions scenario")
	heldConns := fs.Int("held-conns", 2000, "connections the held sessions are spread over")
	think := fs.Duration("think", 2*time.Second, "mean think time of the 1,000-session scenario")
	loneThink := fs.Duration("lone-think", 0, "mean think time of the lone session")
	micro := fs.String("micro", "", "`go test -bench -benchmem` output to include")
	proxyBin := fs.String("rpcproxy", "", "proxy binary to test (default: <bin>/rpcproxy; bin/proxyprof for profiles)")
	profileDir := fs.String("profile-dir", "", "with --rpcproxy bin/proxyprof: write CPU and heap profiles of every proxy run here")
	modes := fs.String("modes", "", "modes to run, in order (default: direct,rpcproxy,haproxy)")
	proxyConfig := fs.String("rpcproxy-config", "", "HCL `file` passed to every `rpcproxy serve` as --config (backends still come from --backend flags)")
	var proxyExtra stringList
	fs.Var(&proxyExtra, "rpcproxy-arg", "extra `argument` for every `rpcproxy serve` (repeatable), e.g. --rpcproxy-arg=--max-connections=0")
	connsPerBackend := fs.Int("connections-per-backend", -1, "run rpcproxy with upstream.connections_per_backend = `N` "+
		"(a generated config file; 0: every client's upstreams its own; -1: not given, the proxy's default)")
	spreadConns := fs.Int("spread-conns", report.HeldConns, "connections of the spread scenario, each with a session on every backend "+
		"(lowered to fit the open files limit)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	sz, err := loadgen.ParseSizes(*sizes)
	if err != nil {
		return err
	}
	b := &bench{
		rpcproxy: filepath.Join(*bin, "rpcproxy"), fakecli: filepath.Join(*bin, "fakecli"),
		backends: *backends, reps: *reps, events: *events, sizes: sz, noLifecycle: *noLifecycle, log: os.Stderr,
		modes: []string{report.ModeDirect, report.ModeRPCProxy},
	}
	if *proxyBin != "" {
		b.rpcproxy = *proxyBin
	}
	b.profileDir = *profileDir
	if *connsPerBackend < -1 {
		return fmt.Errorf("--connections-per-backend %d: must be >= 0 (or -1: the proxy's default)", *connsPerBackend)
	}
	if *connsPerBackend >= 0 && *proxyConfig != "" {
		return errors.New("--connections-per-backend and --rpcproxy-config together: put upstream.connections_per_backend in the config file")
	}
	b.connsPerBackend = *connsPerBackend
	if b.connsPerBackend < 0 {
		b.connsPerBackend = config.Default().Upstream.ConnectionsPerBackend
	}
	if *proxyConfig != "" {
		if _, err := os.Stat(*proxyConfig); err != nil {
			return fmt.Errorf("--rpcproxy-config: %w", err)
		}
		b.proxyArgs = append(b.proxyArgs, "--config", *proxyConfig)
	}
	b.proxyArgs = append(b.proxyArgs, proxyExtra...)
	for _, p := range []string{b.rpcproxy, b.fakecli} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%w (build it first: make build)", err)
		}
	}
	if *haproxy != "" {
		path, err := exec.LookPath(*haproxy)
		if err != nil {
			b.logf("HAProxy not found (%v): the haproxy mode is skipped", err)
		} else {
			b.haproxy = path
			b.modes = append(b.modes, report.ModeHAProxy)
		}
	}
	if *modes != "" {
		var chosen []string
		for _, m := range strings.Split(*modes, ",") {
			m = strings.TrimSpace(m)
			if m == report.ModeHAProxy && b.haproxy == "" {
				return errors.New("haproxy mode asked for but HAProxy is not installed")
			}
			if m != report.ModeDirect && m != report.ModeRPCProxy && m != report.ModeHAProxy {
				return fmt.Errorf("unknown mode %q", m)
			}
			chosen = append(chosen, m)
		}
		b.modes = chosen
	}

	stamp := time.Now().UTC().Format("20060102T150405Z")
	b.scratch = filepath.Join(*out, "tmp", stamp)
	if err := os.MkdirAll(b.scratch, 0o755); err != nil {
		return err
	}
	if *connsPerBackend >= 0 {
		cfgPath := filepath.Join(b.scratch, "rpcproxy-upstream.hcl")
		hcl := fmt.Sprintf("# written by benchrun --connections-per-backend\nupstream {\n  connections_per_backend = %d\n}\n", b.connsPerBackend)
		if err := os.WriteFile(cfgPath, []byte(hcl), 0o644); err != nil {
			return err
		}
		b.proxyArgs = append(b.proxyArgs, "--config", cfgPath)
	}
	machine := machineInfo(b.haproxy)
	b.nofile = machine.NoFile
	rep := &report.Report{
		Timestamp: stamp,
		Machine:   machine,
		Settings: report.Settings{Backends: b.backends, Reps: b.reps, EventsPerTurn: b.events, EventSizes: b.sizes, NoLifecycle: b.noLifecycle,
			ConnsPerBackend: b.connsPerBackend, Commit: gitCommit(), Scale: *scale,
			ProxyCommand: strings.Join(append([]string{b.rpcproxy, "serve --listen 127.0.0.1:PORT --backend … --log-level warn"}, b.proxyArgs...), " ")},
	}
	b.logf("bench %s: modes %v, %d repetitions, %d backends; logs in %s", stamp, b.modes, b.reps, b.backends, b.scratch)

	dur := func(d time.Duration) time.Duration { return time.Duration(float64(d) * *scale).Round(time.Millisecond) }
	all := map[string]scenario{
		report.ScenarioThroughput: {
			name: report.ScenarioThroughput, title: "saturating throughput (16 connections × 8 sessions, no think time)",
			desc:  "Every session plays turns back to back: the machine is saturated and the figures are capacity.",
			conns: 16, sessions: 8, window: dur(12 * time.Second), warmup: dur(2 * time.Second), pings: 1, getMsgs: 25,
		},
		report.ScenarioLone: {
			name: report.ScenarioLone, title: "a lone session doing sequential turns",
			desc:  "One connection, one session, turns back to back: the latency a proxy adds to one turn when nothing queues.",
			conns: 1, sessions: 1, think: *loneThink, window: dur(5 * time.Second), warmup: dur(time.Second), pings: 1, getMsgs: 25,
		},
		report.ScenarioConcurrent: {
			name: report.ScenarioConcurrent, title: fmt.Sprintf("1,000 concurrent sessions (100 connections × 10 sessions, think time %v)", *think),
			desc:  "Many sessions at a moderate rate (the machine is not saturated): the tail latency a proxy adds.",
			conns: 100, sessions: 10, think: *think, window: dur(10 * time.Second), warmup: dur(3 * time.Second), pings: 1, getMsgs: 25,
		},
	}
	for _, name := range strings.Split(*scenarios, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if name == scenarioIdle {
			fds := 2
			if b.connsPerBackend > 0 {
				fds = 1
			}
			n := idleCount(*idleConns, rep.Machine.NoFile, fds)
			if n < *idleConns {
				rep.Notes = append(rep.Notes, fmt.Sprintf("idle connections lowered from %d to %d: the open files limit is %d "+
					"and the proxy holds %d descriptors per idle client", *idleConns, n, rep.Machine.NoFile, fds))
			}
			b.logf("idle: %d connections", n)
			idle, err := b.runIdle(ctx, n)
			if err != nil {
				return fmt.Errorf("idle: %w", err)
			}
			b.logf("  idle: RSS %s -> %s, %.1f KiB per connection", report.MiB(idle.RSSBefore), report.MiB(idle.RSSAfter), idle.PerConnBytes/1024)
			if n < *idleConns && connectOnlyFits(*idleConns, rep.Machine.NoFile) {
				b.logf("idle: %d connections after connect only", *idleConns)
				co, err := b.runConnectOnly(ctx, *idleConns)
				if err != nil {
					return fmt.Errorf("idle, connect only: %w", err)
				}
				b.logf("  connect only: %d open, %.1f KiB per connection", co.Alive, co.PerConnBytes/1024)
				idle.ConnectOnly = co
			}
			rep.Idle = idle
			continue
		}
		if name == scenarioSpread {
			sp, err := b.runSpread(ctx, *spreadConns, rep.Machine.NoFile)
			if err != nil {
				return fmt.Errorf("spread: %w", err)
			}
			if sp.Conns < sp.Want {
				rep.Notes = append(rep.Notes, fmt.Sprintf("spread: %d connections with a session on every backend asked for, %d opened: "+
					"the proxy holds %d descriptors per such client and the open files limit is %d", sp.Want, sp.Conns, sp.FDsPerClient, sp.NoFile))
			}
			rep.Spread = sp
			continue
		}
		if name == scenarioHeld {
			if *heldConns <= 0 || *heldSessions < *heldConns {
				return fmt.Errorf("sessions: --held-sessions %d over --held-conns %d", *heldSessions, *heldConns)
			}
			per := (*heldSessions + *heldConns - 1) / *heldConns
			b.logf("sessions: %d connections × %d sessions", *heldConns, per)
			h, err := b.runHeld(ctx, *heldConns, per)
			if err != nil {
				return fmt.Errorf("sessions: %w", err)
			}
			b.logf("  sessions: %d held, RSS %s -> %s, %.2f KiB per session", h.Sessions, report.MiB(h.RSSBefore), report.MiB(h.RSSAfter), h.PerSessionBytes/1024)
			rep.Held = h
			continue
		}
		s, ok := all[name]
		if !ok {
			return fmt.Errorf("unknown scenario %q", name)
		}
		b.logf("scenario %s: %s", s.name, s.title)
		res, err := b.runScenario(ctx, s)
		if err != nil {
			return err
		}
		rep.Scenarios = append(rep.Scenarios, res)
	}
	if *micro != "" {
		f, err := os.Open(*micro)
		if err != nil {
			return err
		}
		rep.Micro, err = report.ParseMicro(f)
		f.Close()
		if err != nil {
			return err
		}
	}
	rep.Evaluate()
	return writeReport(rep, *out, b)
}

// connectOnlyFits reports whether n connect-only clients (one descriptor
// each in the proxy) fit the open files limit.
func connectOnlyFits(n int, nofile uint64) bool {
	return nofile == 0 || uint64(n)+512 <= nofile
}

// idleCount fits the idle connections to the open files limit: the proxy
// needs fds descriptors per client (2 with an upstream of its own per
// client, 1 with shared upstreams), plus a margin.
func idleCount(want int, nofile uint64, fds int) int {
	if nofile == 0 {
		return want
	}
	return max(0, min(want, (int(min(nofile, 1<<30))-512)/fds))
}

// writeReport replaces latest.md, latest.json and latest.svg in dir with
// this run's report and appends its headline figures to history.md (one row
// per run): dir keeps the newest full results and the history, not every
// run's JSON.
func writeReport(rep *report.Report, dir string, b *bench) error {
	const svgName = "latest.svg"
	var md strings.Builder
	if err := rep.WriteMarkdown(&md, svgName); err != nil {
		return err
	}
	var svg strings.Builder
	if err := rep.WriteSVG(&svg); err != nil {
		return err
	}
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	for name, data := range map[string][]byte{
		"latest.md": []byte(md.String()), svgName: []byte(svg.String()), "latest.json": append(js, '\n'),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return err
		}
	}
	hist := filepath.Join(dir, "history.md")
	if err := report.AppendHistory(hist, rep); err != nil {
		return err
	}
	b.logf("wrote %s/latest.{md,json,svg}, a row in %s", dir, hist)
	fmt.Println(md.String())
	return nil
}

// gitCommit is the short commit of the working tree ("+dirty" when it has
// changes), or "" outside git.
func gitCommit() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return ""
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(strings.TrimSpace(string(st))) > 0 {
		c += "+dirty"
	}
	return c
}
