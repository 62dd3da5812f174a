// Command rpcproxy is a session-aware JSON-RPC proxy in front of a pool of
// headless Copilot CLI servers.
//
//	rpcproxy serve [--config FILE] [--listen ADDR] [--admin ADDR] [--backend ADDR]... [--spawn N] [--join ADDR]... [--gossip-bind ADDR] [--log-level LEVEL]
//	rpcproxy agent [--config FILE] [--cli ADDR] [--advertise ADDR] [--gossip-bind ADDR] [--join ADDR]... [--name NAME] [--drain-timeout D] [--log-level LEVEL]
//	rpcproxy status [--admin ADDR] [--token TOKEN]
//	rpcproxy keygen
//	rpcproxy validate --config FILE
//
// --bind is an alias of --gossip-bind in both commands.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

const usage = `rpcproxy: a session-aware proxy in front of headless Copilot CLI servers

Usage:
  rpcproxy serve [flags]   accept SDK connections and route sessions over the pool
  rpcproxy agent [flags]   announce the CLI server beside it to the gossip cluster
  rpcproxy status [flags]  print a running proxy's backends (from its admin listener)
  rpcproxy keygen          print a new gossip encryption key
  rpcproxy validate --config FILE
                           check a configuration file
  rpcproxy version         print the version

Run "rpcproxy serve -h", "rpcproxy agent -h" or any command with -h for its flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(args[1:], stderr)
	case "agent":
		err = agent(args[1:], stderr)
	case "status":
		err = status(args[1:], stdout, stderr)
	case "keygen":
		err = keygen(args[1:], stdout)
	case "validate":
		err = validate(args[1:], stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, versionLine())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "rpcproxy: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "rpcproxy:", err)
		return 1
	}
	return 0
}

// listFlag is a repeatable string flag.
type listFlag struct {
	values []string
	set    bool
}

func (l *listFlag) String() string { return strings.Join(l.values, ",") }

func (l *listFlag) Set(v string) error {
	l.values = append(l.values, v)
	l.set = true
	return nil
}

// intFlag is an int flag that knows whether it was given, so that "not
// given" needs no sentinel default (which -h would print as the default).
type intFlag struct {
	value int
	set   bool
}

func (f *intFlag) String() string {
	if f == nil || !f.set {
		return ""
	}
	return strconv.Itoa(f.value)
}

func (f *intFlag) Set(v string) error {
	n, err := strconv.Atoi(v)
	if err != nil {
		return errors.New("not a whole number")
	}
	f.value, f.set = n, true
	return nil
}

// durationFlag is intFlag for a duration.
type durationFlag struct {
	value time.Duration
	set   bool
}

func (f *durationFlag) String() string {
	if f == nil || !f.set {
		return ""
	}
	return f.value.String()
}

func (f *durationFlag) Set(v string) error {
	d, err := time.ParseDuration(v)
	if err != nil {
		return errors.New(`not a duration such as "30s" or "2m"`)
	}
	f.value, f.set = d, true
	return nil
}

// gossipBindFlags defines --gossip-bind and its alias --bind on fs, both
// stored in the string returned; checkGossipBind refuses the two together.
func gossipBindFlags(fs *flag.FlagSet, usage string) *string {
	bind := new(string)
	fs.StringVar(bind, "gossip-bind", "", usage)
	fs.StringVar(bind, "bind", "", "alias of --gossip-bind")
	return bind
}

// checkGossipBind refuses --gossip-bind and --bind given together: one would
// silently win.
func checkGossipBind(fs *flag.FlagSet) error {
	given := 0
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "gossip-bind" || f.Name == "bind" {
			given++
		}
	})
	if given > 1 {
		return errors.New("--bind is an alias of --gossip-bind: give one of them")
	}
	return nil
}
