// Command fakecli runs a fake headless Copilot CLI server (internal/fakecli)
// with the real CLI's command line, so rpcproxy's managed pool and
// multi-process tests can start it in place of `copilot --headless --port N`:
//
//	fakecli --headless --port N [--host 127.0.0.1] [--name X] [--events N]
//	        [--event-sizes 300,4096,40960] [--store-dir DIR] [--log-level L]
//	        [--no-lifecycle]
//
// --no-lifecycle (not a CLI flag) sends no session.lifecycle notifications:
// the bench uses it to measure what their broadcast costs.
//
// Flags it does not know are ignored, as are their values. The connection
// token comes from COPILOT_CONNECTION_TOKEN. Sessions are kept in
// --store-dir, else in $COPILOT_HOME, else in memory; processes given the
// same directory share sessions. It prints "CLI server listening on port N"
// like the CLI and serves until SIGINT or SIGTERM.
package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/hashicorp/go-hclog"

	"github.com/rpcproxy/rpcproxy/internal/fakecli"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr, stop))
}

// options are the parsed command line.
type options struct {
	host     string
	port     int
	name     string
	events   int
	sizes    []int
	storeDir string
	logLevel string
	// noLifecycle sends no session.lifecycle notifications.
	noLifecycle bool
	ignored     []string // unknown flags, reported at debug level
}

// errUsage marks a command line that cannot be served.
var errUsage = errors.New("usage")

// parseArgs reads the flags the fake uses and skips the rest. An unknown
// flag followed by a word not starting with "-" is taken to own that word,
// as the real CLI's value flags do (--log-level debug).
func parseArgs(args []string) (options, error) {
	o := options{host: "127.0.0.1"}
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if !strings.HasPrefix(arg, "-") {
			o.ignored = append(o.ignored, arg)
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(arg, "-"), "=")
		takeValue := func() (string, error) {
			if hasValue {
				return value, nil
			}
			if i+1 >= len(args) {
				return "", fmt.Errorf("%w: --%s needs a value", errUsage, name)
			}
			i++
			return args[i], nil
		}
		var err error
		switch name {
		case "headless":
		case "no-lifecycle":
			o.noLifecycle = true
		case "host":
			o.host, err = takeValue()
		case "port", "events":
			var v string
			if v, err = takeValue(); err == nil {
				var n int
				n, err = strconv.Atoi(v)
				if err != nil || n < 0 || (name == "port" && n > 65535) {
					err = fmt.Errorf("%w: bad --%s %q", errUsage, name, v)
				} else if name == "port" {
					o.port = n
				} else {
					o.events = n
				}
			}
		case "name":
			o.name, err = takeValue()
		case "event-sizes":
			var v string
			if v, err = takeValue(); err == nil {
				o.sizes, err = parseSizes(v)
			}
		case "store-dir":
			o.storeDir, err = takeValue()
		case "log-level":
			o.logLevel, err = takeValue()
		default:
			o.ignored = append(o.ignored, arg)
			if !hasValue && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
				i++
				o.ignored = append(o.ignored, args[i])
			}
		}
		if err != nil {
			return o, err
		}
	}
	return o, nil
}

func parseSizes(v string) ([]int, error) {
	var sizes []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%w: bad --event-sizes entry %q", errUsage, f)
		}
		sizes = append(sizes, n)
	}
	return sizes, nil
}

// run serves until stop delivers, and returns the exit code.
func run(args []string, getenv func(string) string, stdout, stderr io.Writer, stop <-chan os.Signal) int {
	o, err := parseArgs(args)
	if err != nil {
		fmt.Fprintln(stderr, "fakecli:", err)
		return 2
	}
	level := hclog.LevelFromString(o.logLevel)
	if level == hclog.NoLevel {
		level = hclog.Warn
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "fakecli", Level: level, Output: stderr})
	if len(o.ignored) > 0 {
		log.Debug("ignoring arguments", "args", o.ignored)
	}

	store := fakecli.NewStore()
	dir := o.storeDir
	if dir == "" {
		dir = getenv("COPILOT_HOME")
	}
	if dir != "" {
		if store, err = fakecli.OpenStore(dir); err != nil {
			fmt.Fprintln(stderr, "fakecli:", err)
			return 1
		}
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(o.host, strconv.Itoa(o.port)))
	if err != nil {
		fmt.Fprintln(stderr, "fakecli:", err)
		return 1
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if o.name == "" {
		o.name = "fakecli-" + strconv.Itoa(port)
	}
	token := getenv("COPILOT_CONNECTION_TOKEN")
	srv, err := fakecli.Serve(ln, fakecli.Config{
		Name:          o.name,
		Token:         token,
		Store:         store,
		EventsPerTurn: o.events,
		EventSizes:    o.sizes,
		Logger:        log,
		NoLifecycle:   o.noLifecycle,
	})
	if err != nil {
		fmt.Fprintln(stderr, "fakecli:", err)
		return 2
	}
	// The CLI's own start-up lines, which the pool logs.
	fmt.Fprintf(stdout, "CLI server listening on port %d\n", port)
	if token == "" {
		fmt.Fprintln(stderr, "Warning: No COPILOT_CONNECTION_TOKEN was set, so connections will be accepted from any client")
	}
	<-stop
	if err := srv.Close(); err != nil {
		log.Warn("close", "error", err)
	}
	return 0
}
