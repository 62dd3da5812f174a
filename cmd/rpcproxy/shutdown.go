package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/rpcproxy/rpcproxy/internal/proxy"
)

// stopProxy stops the proxy gracefully, after SIGTERM or SIGINT or once a
// new process took over (SIGUSR2): srv stops accepting at once (new
// connections are refused, or go to the new process) and serves its
// clients on, closing each as soon as nothing is in flight for it (see
// internal/proxy/drain.go), for up to timeout; then the clients left are
// closed. A second SIGTERM or SIGINT meanwhile closes every client at once
// and makes the exit status 1. errc is Serve's result, waited for.
func stopProxy(srv *proxy.Server, errc <-chan error, timeout time.Duration, log hclog.Logger) error {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	log.Info("shutting down: accepting no more connections, finishing turns in flight", "clients", srv.Clients(), "timeout", timeout)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	drained := make(chan error, 1)
	go func() { drained <- srv.Shutdown(ctx) }()
	var err error
	select {
	case derr := <-drained:
		if derr != nil {
			log.Warn("shutdown timeout reached: closing the clients left", "clients", srv.Clients(), "timeout", timeout)
		} else {
			log.Info("every client is gone")
		}
		srv.Close()
	case s := <-sig:
		log.Warn("second signal: closing every client at once", "signal", s.String(), "clients", srv.Clients())
		err = fmt.Errorf("stopped at once by a second %s", s)
		srv.Close() // Shutdown returns
		<-drained
	}
	<-errc
	return err
}
