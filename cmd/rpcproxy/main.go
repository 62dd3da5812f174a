// Command rpcproxy is a session-aware JSON-RPC proxy in front of a pool of
// headless Copilot CLI servers.
//
//	rpcproxy serve [--config FILE] [--listen ADDR] [--admin ADDR] [--backend ADDR]... [--spawn N] [--join ADDR]... [--gossip-bind ADDR] [--log-level LEVEL]
//	rpcproxy agent [--config FILE] --cli ADDR [--advertise ADDR] [--bind ADDR] [--join ADDR]... [--name NAME]
//	rpcproxy status [--admin ADDR] [--token TOKEN]
//	rpcproxy keygen
//	rpcproxy validate --config FILE
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
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

Run "rpcproxy <command> -h" for the flags.
`

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

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
		fmt.Fprintln(stdout, "rpcproxy", version)
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
