// Command loadgen plays SDK-like load against a CLI server, a pool of them,
// or rpcproxy in front of them, and prints what it measured:
//
//	loadgen --target 127.0.0.1:4321 --conns 16 --sessions 8 --duration 20s
//	loadgen --backends 3 --conns 16 --sessions 8     # in-process fake CLI servers
//
// Each connection does the connect handshake and a session.create per
// session; each session then plays turns like sendAndWait (session.send,
// then session.event notifications up to session.idle), with pings and
// session.getMessages between turns. With several --target addresses the
// connections are spread round robin. Without --target, --backends fake CLI
// servers are started in this process with --events and --event-sizes
// (handy for trying the generator; the bench runs them as processes).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rpcproxy/rpcproxy/bench/loadgen"
	"github.com/rpcproxy/rpcproxy/internal/fakecli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
		}
		os.Exit(1)
	}
}

type targets []string

func (t *targets) String() string     { return strings.Join(*t, ",") }
func (t *targets) Set(v string) error { *t = append(*t, v); return nil }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg loadgen.Config
	var tg targets
	fs.Var(&tg, "target", "host:port to load (repeatable: connections are spread round robin)")
	backends := fs.Int("backends", 3, "without --target: in-process fake CLI servers to start")
	events := fs.Int("events", loadgen.DefaultEventsPerTurn, "with --backends: session.event notifications per turn")
	sizes := fs.String("event-sizes", loadgen.FormatSizes(loadgen.DefaultEventSizes), "with --backends: delta sizes in bytes, cycled")
	fs.IntVar(&cfg.Conns, "conns", 16, "client connections (C)")
	fs.IntVar(&cfg.SessionsPerConn, "sessions", 8, "sessions per connection (S)")
	fs.IntVar(&cfg.Turns, "turns", 0, "turns per session; 0 plays for --duration")
	fs.DurationVar(&cfg.Duration, "duration", 20*time.Second, "measured window (0 with --turns: until the turns are played)")
	fs.DurationVar(&cfg.Warmup, "warmup", loadgen.DefaultWarmup, "load played before the window, not counted (negative: none)")
	fs.DurationVar(&cfg.Think, "think", 0, "mean pause before each turn (uniform in [think/2, 3*think/2])")
	fs.IntVar(&cfg.PingsPerTurn, "pings", 1, "pings after each turn")
	fs.IntVar(&cfg.GetMessagesEvery, "get-messages-every", 8, "session.getMessages after every Nth turn (0: never)")
	fs.IntVar(&cfg.ExpectEvents, "expect-events", -1, "events a turn must bring (-1: --events when the backends are in-process, else unchecked)")
	fs.StringVar(&cfg.Token, "token", "", "connect token")
	fs.StringVar(&cfg.RunID, "run-id", "", "session ID prefix (default: loadgen-<unix time>)")
	fs.BoolVar(&cfg.DeleteSessions, "delete", true, "delete every session at the end")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if cfg.RunID == "" {
		cfg.RunID = "loadgen-" + strconv.FormatInt(time.Now().Unix(), 10)
	}
	cfg.Targets = tg
	if len(tg) == 0 {
		sz, err := loadgen.ParseSizes(*sizes)
		if err != nil {
			return err
		}
		for range *backends {
			s, err := fakecli.Listen("127.0.0.1:0", fakecli.Config{EventsPerTurn: *events, EventSizes: sz})
			if err != nil {
				return err
			}
			defer s.Close()
			cfg.Targets = append(cfg.Targets, s.Addr())
		}
		if cfg.ExpectEvents < 0 {
			cfg.ExpectEvents = *events
		}
	}
	cfg.ExpectEvents = max(cfg.ExpectEvents, 0)

	res, err := loadgen.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(summarize(res))
	}
	printText(stdout, res)
	if len(res.Failures) > 0 {
		return fmt.Errorf("%d failures, first: %s", len(res.Failures), res.Failures[0])
	}
	return nil
}

// summary is the JSON form of a result.
type summary struct {
	WindowSec     float64  `json:"window_sec"`
	SetupSec      float64  `json:"setup_sec"`
	Conns         int      `json:"conns"`
	Sessions      int      `json:"sessions"`
	Turns         uint64   `json:"turns"`
	TurnsPerSec   float64  `json:"turns_per_sec"`
	Requests      uint64   `json:"requests"`
	FramesPerSec  float64  `json:"frames_per_sec"`
	MBPerSec      float64  `json:"mb_per_sec"`
	ReqP50us      float64  `json:"req_p50_us"`
	ReqP99us      float64  `json:"req_p99_us"`
	ReqP999us     float64  `json:"req_p999_us"`
	TurnP50us     float64  `json:"turn_p50_us"`
	TurnP99us     float64  `json:"turn_p99_us"`
	BadTurns      uint64   `json:"bad_turns"`
	ErrorAnswers  uint64   `json:"error_answers"`
	Lifecycle     uint64   `json:"lifecycle_notifications"`
	Failures      []string `json:"failures,omitempty"`
	EventsPerTurn float64  `json:"events_per_turn"`
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func summarize(r *loadgen.Result) summary {
	s := summary{
		WindowSec: r.Window.Seconds(), SetupSec: r.Setup.Seconds(), Conns: r.Conns, Sessions: r.Sessions,
		Turns: r.Turns, TurnsPerSec: r.Rate(r.Turns), Requests: r.Requests,
		FramesPerSec: r.Rate(r.Frames()), MBPerSec: r.Rate(r.Bytes()) / 1e6,
		ReqP50us: us(r.RequestLatency.Percentile(50)), ReqP99us: us(r.RequestLatency.Percentile(99)),
		ReqP999us: us(r.RequestLatency.Percentile(99.9)),
		TurnP50us: us(r.TurnLatency.Percentile(50)), TurnP99us: us(r.TurnLatency.Percentile(99)),
		BadTurns: r.BadTurns, ErrorAnswers: r.Traffic.ErrorResponses, Lifecycle: r.Traffic.Lifecycle, Failures: r.Failures,
	}
	if r.Turns > 0 {
		s.EventsPerTurn = float64(r.Traffic.Events) / float64(r.Turns)
	}
	return s
}

func printText(w io.Writer, r *loadgen.Result) {
	s := summarize(r)
	fmt.Fprintf(w, "%d conns x %d sessions, window %.1fs (setup %.2fs)\n", r.Conns, r.Sessions/max(r.Conns, 1), s.WindowSec, s.SetupSec)
	fmt.Fprintf(w, "turns      %d (%.0f/s), %.1f events/turn, %d bad\n", s.Turns, s.TurnsPerSec, s.EventsPerTurn, s.BadTurns)
	fmt.Fprintf(w, "traffic    %.0f frames/s, %.1f MB/s, %d error answers, %d lifecycle\n", s.FramesPerSec, s.MBPerSec, s.ErrorAnswers, s.Lifecycle)
	fmt.Fprintf(w, "request    p50 %.0fµs  p99 %.0fµs  p99.9 %.0fµs  (n=%d)\n", s.ReqP50us, s.ReqP99us, s.ReqP999us, r.RequestLatency.Count())
	fmt.Fprintf(w, "turn       p50 %.0fµs  p99 %.0fµs  (n=%d)\n", s.TurnP50us, s.TurnP99us, r.TurnLatency.Count())
	for _, f := range r.Failures {
		fmt.Fprintln(w, "failure   ", f)
	}
}
