// Command modelstub runs the deterministic OpenAI-compatible model stub used
// by rpcproxy's end-to-end tests and demo. It prints the base URL to give a
// Copilot BYOK provider (http://host:port/v1) on stdout, then serves until
// SIGINT or SIGTERM.
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/rpcproxy/rpcproxy/internal/modelstub"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	model := flag.String("model", modelstub.DefaultModel, "model id to advertise")
	verbose := flag.Bool("v", false, "log every request (never contents)")
	trace := flag.String("trace", "", "append every request's path and body to this file (debugging)")
	flag.Parse()

	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	cfg := modelstub.Config{Model: *model, Logger: logger}
	if *trace != "" {
		f, err := os.OpenFile(*trace, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			fmt.Fprintln(os.Stderr, "modelstub:", err)
			os.Exit(1)
		}
		defer f.Close()
		cfg.Trace = f
	}
	srv := modelstub.New(cfg)
	url, err := srv.Start(*listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(url)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	if err := srv.Close(); err != nil {
		logger.Warn("modelstub: close", "err", err)
	}
}
