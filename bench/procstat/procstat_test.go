package procstat

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	line := "4242 (rpc proxy) (x)) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 9 0 100 2000000 500 18446744073709551615\n"
	got, err := parseStat([]byte(line))
	if err != nil || got != 3250*time.Millisecond {
		t.Fatalf("parseStat = %v, %v; want 3.25s", got, err)
	}
	for _, bad := range []string{"", "1 (x) S 1 2", "1 (x) S 1 2 3 4 5 6 7 8 9 10 x 5 6"} {
		if _, err := parseStat([]byte(bad)); !errors.Is(err, ErrFormat) {
			t.Errorf("parseStat(%q) = %v, want ErrFormat", bad, err)
		}
	}
}

func TestParseStatus(t *testing.T) {
	status := "Name:\trpcproxy\nVmPeak:\t  900000 kB\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\nThreads:\t9\n"
	m, err := parseStatus([]byte(status))
	if err != nil || m.RSS != 10<<20 || m.Peak != 20<<20 {
		t.Fatalf("parseStatus = %+v, %v", m, err)
	}
	if _, err := parseStatus([]byte("Name:\tx\nVmRSS:\t1 kB\n")); !errors.Is(err, ErrFormat) {
		t.Errorf("missing VmHWM: %v", err)
	}
	if _, err := parseStatus([]byte("VmRSS:\t1 MB\nVmHWM:\t1 kB\n")); !errors.Is(err, ErrFormat) {
		t.Errorf("bad unit: %v", err)
	}
}

func TestParseMachineStat(t *testing.T) {
	m, err := parseMachineStat([]byte("cpu  100 0 50 800 50 0 0 0 7 0\ncpu0 1 2 3 4\n"))
	if err != nil || m.Busy != 1500*time.Millisecond || m.Idle != 8500*time.Millisecond {
		t.Fatalf("parseMachineStat = %+v, %v", m, err)
	}
	u := Utilization(MachineCPU{}, m)
	if u < 0.149 || u > 0.151 {
		t.Errorf("Utilization = %v, want 0.15", u)
	}
}

// TestSelf reads this very process: it exercises the real /proc files.
func TestSelf(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	pid := os.Getpid()
	before, err := CPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	// Burn some CPU so the reading moves by at least one tick.
	deadline := time.Now().Add(50 * time.Millisecond)
	x := 0
	for time.Now().Before(deadline) {
		x++
	}
	after, err := CPU(pid)
	if err != nil || after < before+10*time.Millisecond {
		t.Fatalf("CPU %v -> %v (%v) after 50ms of work (%d)", before, after, err, x)
	}
	m, err := ReadMemory(pid)
	if err != nil || m.RSS <= 0 || m.Peak < m.RSS {
		t.Fatalf("ReadMemory = %+v, %v", m, err)
	}
	if _, err := ReadMachineCPU(); err != nil {
		t.Fatal(err)
	}
}

func TestParseIO(t *testing.T) {
	got, err := parseIO([]byte("rchar: 6976\nwchar: 12\nsyscr: 10\nsyscw: 3\nread_bytes: 0\nwrite_bytes: 0\ncancelled_write_bytes: 0\n"))
	if err != nil || got != (IO{ReadCalls: 10, WriteCalls: 3, ReadBytes: 6976, WriteBytes: 12}) {
		t.Fatalf("parseIO = %+v, %v", got, err)
	}
	if _, err := parseIO([]byte("rchar: 1\n")); !errors.Is(err, ErrFormat) {
		t.Errorf("partial io: %v", err)
	}
	if _, err := ReadIO(os.Getpid()); err != nil {
		t.Skipf("no /proc/self/io here: %v", err)
	}
}

func TestSockets(t *testing.T) {
	before, err := Sockets(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	after, err := Sockets(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if after-before != 3 { // listener, client end, server end
		t.Fatalf("sockets %d -> %d, want 3 more", before, after)
	}
	if isSocketLink("/dev/null") || isSocketLink("pipe:[12]") || !isSocketLink("socket:[123]") {
		t.Fatal("isSocketLink misclassifies")
	}
}
