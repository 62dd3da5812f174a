//go:build unix

package localpool

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// envRealCLI names a real copilot binary to run TestRealCLI against, e.g.
// e2e/node/node_modules/@github/copilot-linux-x64/copilot. Unset, the test
// is skipped.
const envRealCLI = "LOCALPOOL_REAL_CLI"

// TestRealCLI runs a pool of two real CLIs: both answer `connect`, a
// SIGKILLed one comes back on its address, and Close leaves no process of
// either group behind.
func TestRealCLI(t *testing.T) {
	bin := os.Getenv(envRealCLI)
	if bin == "" {
		t.Skip("set " + envRealCLI + " to a copilot binary to run")
	}
	cfg := Config{
		Count:        2,
		Binary:       bin,
		Home:         t.TempDir(),
		ReadyTimeout: 2 * time.Minute,
		MinBackoff:   200 * time.Millisecond,
		Logger:       testLogger(t),
	}
	began := time.Now()
	p := startPool(t, cfg)
	t.Logf("2 real CLIs ready in %v", time.Since(began))
	for _, addr := range p.Addrs() {
		rpcConnect(t, addr)
	}

	victim := p.Status()[0]
	killed := time.Now()
	if err := syscall.Kill(victim.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	up := nextEvent(t, p, time.Minute, func(ev Event) bool { return ev.Child == 0 && ev.Up && ev.Restarts == 1 })
	t.Logf("SIGKILLed CLI back on %s in %v", up.Addr, time.Since(killed))
	if up.Addr != victim.Addr {
		t.Errorf("restarted on %s, want %s", up.Addr, victim.Addr)
	}
	rpcConnect(t, up.Addr)

	pids := []int{p.Status()[0].PID, p.Status()[1].PID}
	began = time.Now()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("Close took %v", time.Since(began))
	for _, pid := range pids {
		if err := syscall.Kill(-pid, 0); err != syscall.ESRCH {
			t.Errorf("process group %d still has members after Close (kill: %v)", pid, err)
		}
	}
}

// rpcConnect sends the SDK's `connect` request to addr and checks the answer.
func rpcConnect(t testing.TB, addr string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	body := `{"jsonrpc":"2.0","id":1,"method":"connect","params":{}}`
	if _, err := fmt.Fprintf(conn, "Content-Length: %d\r\n\r\n%s", len(body), body); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	length := -1
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("read header from %s: %v", addr, err)
		}
		line = strings.TrimSpace(line)
		if line == "" {
			break
		}
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, "Content-Length") {
			length, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	if length < 0 || length > 1<<20 {
		t.Fatalf("bad Content-Length %d from %s", length, addr)
	}
	resp := make([]byte, length)
	if _, err := io.ReadFull(br, resp); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(resp), `"protocolVersion"`) {
		t.Fatalf("connect to %s answered %s", addr, resp)
	}
	t.Logf("%s: %s", addr, resp)
}
