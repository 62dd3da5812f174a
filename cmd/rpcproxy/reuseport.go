package main

import (
	"context"
	"net"
	"syscall"
)

// listenReusePort listens on addr with SO_REUSEPORT, so that during a
// SIGUSR2 upgrade the new process binds the admin listener while the old
// one, draining, still holds it (the kernel spreads new admin connections
// over both until the old one exits). The SDK listener needs no such
// option: its socket itself is handed over.
func listenReusePort(addr string) (net.Listener, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, soReusePort, 1)
		}); err != nil {
			return err
		}
		return serr
	}}
	return lc.Listen(context.Background(), "tcp", addr)
}
