package localpool

import (
	"errors"
	"fmt"
	"net"
	"strconv"
)

// loopback is the host every child listens on: the CLI's default.
const loopback = "127.0.0.1"

// addrOf returns the address a child on port listens at.
func addrOf(port int) string { return net.JoinHostPort(loopback, strconv.Itoa(port)) }

// reservePorts returns n distinct free loopback ports. It holds all of them
// open until it has them all, so no two children get the same port; another
// process may still take one before a child binds it, which the child's
// start-up then reports.
func reservePorts(n int) (ports []int, err error) {
	listeners := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range listeners {
			err = errors.Join(err, l.Close())
		}
		if err != nil {
			ports = nil
		}
	}()
	for range n {
		l, err := net.Listen("tcp", net.JoinHostPort(loopback, "0"))
		if err != nil {
			return nil, fmt.Errorf("localpool: find a free port: %w", err)
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// portFree reports whether port can be bound on loopback right now.
func portFree(port int) bool {
	l, err := net.Listen("tcp", addrOf(port))
	if err != nil {
		return false
	}
	l.Close()
	return true
}
