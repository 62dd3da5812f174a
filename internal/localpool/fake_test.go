//go:build unix

package localpool

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as a fake `copilot --headless --port N` and as a
// fake rpcproxy, selected by environment variables, so the pool is tested on
// real processes without the real CLI.
const (
	envFakeCLI    = "LOCALPOOL_FAKE_CLI"    // "1": act as the CLI; "sleep": act as something the CLI started
	envFakeParent = "LOCALPOOL_FAKE_PARENT" // "1": run a pool of fake CLIs and print their pids
	// Knobs of the fake CLI.
	envMode        = "FAKE_MODE"        // "": listen; "never-ready": never listen; "fail": exit 1 at once
	envIgnoreTerm  = "FAKE_IGNORE_TERM" // "1": ignore SIGTERM
	envExitAfter   = "FAKE_EXIT_AFTER"  // exit 3 this long after the first connection (a time.Duration)
	envGrandchild  = "FAKE_GRANDCHILD"  // "1": start a sleeping child in the same process group
	envEcho        = "FAKE_ECHO"        // written to the state file, to check Env reaches children
	fakeStateDir   = "fake-cli"         // under COPILOT_HOME: one file per fake CLI process
	grandchildFile = "grandchild"       // suffix of the file holding a grandchild's pid
)

func TestMain(m *testing.M) {
	switch {
	case os.Getenv(envFakeCLI) == "1":
		os.Exit(fakeCLI(os.Args[1:]))
	case os.Getenv(envFakeCLI) == "sleep":
		time.Sleep(time.Minute)
		os.Exit(0)
	case os.Getenv(envFakeParent) == "1":
		os.Exit(fakeParent())
	}
	os.Exit(m.Run())
}

// fakeCLI behaves like the CLI as far as the pool can tell: it takes
// --headless --port N, listens on 127.0.0.1:N, holds connections, and exits
// on SIGTERM. It records its pid, port, args and FAKE_ECHO in
// $COPILOT_HOME/fake-cli/<pid> before it listens.
func fakeCLI(args []string) int {
	if len(args) < 3 || args[0] != "--headless" || args[1] != "--port" {
		fmt.Fprintf(os.Stderr, "fake cli: bad args %q\n", args)
		return 2
	}
	port, err := strconv.Atoi(args[2])
	if err != nil {
		fmt.Fprintf(os.Stderr, "fake cli: bad port %q\n", args[2])
		return 2
	}
	terms := make(chan os.Signal, 1)
	if os.Getenv(envIgnoreTerm) == "1" {
		signal.Ignore(syscall.SIGTERM)
	} else {
		signal.Notify(terms, syscall.SIGTERM)
	}
	if home := os.Getenv("COPILOT_HOME"); home != "" {
		dir := filepath.Join(home, fakeStateDir)
		record := fmt.Sprintf("port=%d args=%s echo=%s\n", port, strings.Join(args[3:], ","), os.Getenv(envEcho))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return 4
		}
		if err := os.WriteFile(filepath.Join(dir, strconv.Itoa(os.Getpid())), []byte(record), 0o600); err != nil {
			return 4
		}
		if os.Getenv(envGrandchild) == "1" {
			gc := exec.Command(os.Args[0])
			gc.Env = append(os.Environ(), envFakeCLI+"=sleep")
			if err := gc.Start(); err != nil {
				return 4
			}
			name := filepath.Join(dir, strconv.Itoa(os.Getpid())+"."+grandchildFile)
			if err := os.WriteFile(name, []byte(strconv.Itoa(gc.Process.Pid)), 0o600); err != nil {
				return 4
			}
		}
	}
	fmt.Printf("fake cli pid %d port %d\n", os.Getpid(), port)
	switch os.Getenv(envMode) {
	case "fail":
		fmt.Fprintln(os.Stderr, "boom: cannot start")
		return 1
	case "never-ready":
		<-terms
		return 0
	}
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		fmt.Fprintf(os.Stderr, "fake cli: %v\n", err)
		return 1
	}
	// The exit timer starts at the first connection, the pool's readiness
	// probe, so the pool always sees the child up before it dies.
	firstConn := make(chan struct{})
	go func() {
		for n := 0; ; n++ {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			if n == 0 {
				close(firstConn)
			}
			go func() { // hold the connection until the peer closes it
				buf := make([]byte, 512)
				for {
					if _, err := conn.Read(buf); err != nil {
						conn.Close()
						return
					}
				}
			}()
		}
	}()
	var exitAfter <-chan time.Time
	if d, err := time.ParseDuration(os.Getenv(envExitAfter)); err == nil {
		select {
		case <-firstConn:
		case <-terms:
			return 0
		}
		exitAfter = time.After(d)
	}
	select {
	case <-terms:
		return 0
	case <-exitAfter:
		return 3
	}
}

// fakeParent plays rpcproxy for the parent-death test: it starts a pool of
// two fake CLIs, prints their pids on one line, and waits to be killed.
func fakeParent() int {
	self, err := os.Executable()
	if err != nil {
		return 1
	}
	p, err := Start(context.Background(), Config{
		Count:  2,
		Binary: self,
		Env:    []string{envFakeCLI + "=1", envFakeParent + "="},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var pids []string
	for _, ev := range p.Status() {
		pids = append(pids, strconv.Itoa(ev.PID))
	}
	fmt.Println(strings.Join(pids, " "))
	time.Sleep(time.Minute)
	return 0
}
