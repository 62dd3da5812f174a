package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/rpcproxy/rpcproxy/internal/config"
)

// validate checks a configuration file as serve would load it (with the
// environment) and prints each problem with its line.
func validate(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "HCL configuration file to check (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("validate: unexpected argument %q", fs.Arg(0))
	}
	if *path == "" {
		return errors.New("validate: --config FILE is required")
	}
	if err := config.Check(*path); err != nil {
		return err
	}
	_, err := fmt.Fprintf(stdout, "%s: ok\n", *path)
	return err
}
