package proxy

import (
	"bytes"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/rpcproxy/rpcproxy/internal/frame"
)

// dialRaw opens a plain connection to the proxy, closed at the end of the test.
func dialRaw(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// The attack: 160 connections, in 4 waves of 40, each announce a
// 64 MiB frame and send 1 KiB of it. The proxy's memory follows the bytes
// received: the budget it counts and the heap it allocated grow by at most
// 64 MiB in all (on main they grew by 64 MiB per connection), and the bytes
// come back when the peers hang up.
func TestHalfSentFramesHoldLittle(t *testing.T) {
	c := newCluster(t, clusterOptions{backends: 1})
	budget := c.srv.cfg.Limits.Budget
	good := c.client()
	const waves, perWave, limit = 4, 40, 64 << 20
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	head := []byte(fmt.Sprintf("Content-Length: %d\r\n\r\n", 64<<20))
	part := bytes.Repeat([]byte("x"), 1<<10)
	var conns []net.Conn
	for w := 1; w <= waves; w++ {
		for range perWave {
			conn := dialRaw(t, c.addr)
			conn.Write(head)
			conn.Write(part)
			conns = append(conns, conn)
		}
		// Each half-sent frame holds its first buffer (32 KiB) once read.
		n := int64(w * perWave)
		eventually(t, 10*time.Second, "the proxy to read every half-sent frame", func() bool { return budget.Used() >= n*32<<10 })
		var now runtime.MemStats
		runtime.ReadMemStats(&now)
		if used, alloc := budget.Used(), now.TotalAlloc-before.TotalAlloc; used > limit || alloc > limit {
			t.Fatalf("after %d half-sent 64 MiB frames: %d MiB counted, %d MiB allocated; want at most 64 MiB",
				n, used>>20, alloc>>20)
		}
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	t.Logf("%d half-sent frames: %d KiB counted, %d KiB allocated", len(conns), budget.Used()>>10, (after.TotalAlloc-before.TotalAlloc)>>10)
	if got := good.call("ping", nil); got.Error != nil {
		t.Fatalf("ping during the attack: %+v", got.Error)
	}
	for _, conn := range conns {
		conn.Close()
	}
	eventually(t, 10*time.Second, "the budget to come back", func() bool { return budget.Used() == 0 })
}

// A connection whose frame cannot grow within the shared budget is told so
// and closed; other clients go on.
func TestBudgetExhaustedClosesOnlyThatClient(t *testing.T) {
	c := newCluster(t, clusterOptions{backends: 1, limits: frame.Limits{Budget: frame.NewBudget(1 << 20)}})
	good := c.client()
	greedy := dialClient(t, c.addr)
	greedy.conn.Write([]byte(fmt.Sprintf("Content-Length: %d\r\n\r\n", 8<<20)))
	go greedy.conn.Write(bytes.Repeat([]byte("x"), 4<<20))
	ch := greedy.expect("null")
	if m := wait(t, ch, "the budget error"); m.Error == nil || m.Error.Code != codeOverloaded {
		t.Fatalf("greedy client got %+v", m)
	}
	if !greedy.closedByPeer(5 * time.Second) {
		t.Fatal("greedy client not closed")
	}
	if got := good.call("ping", nil); got.Error != nil {
		t.Fatalf("other client: %+v", got.Error)
	}
	if !strings.Contains(c.logs.String(), "budget") {
		t.Error("the close was not logged with its reason")
	}
}

// With a token set, a client's frames are capped small until connect
// succeeds; after it, large frames pass.
func TestFramesCappedBeforeConnect(t *testing.T) {
	c := newCluster(t, clusterOptions{backends: 1, token: "s3cret"})
	big := `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":"` + strings.Repeat("p", 100<<10) + `"}}`

	// A stranger's 100 KiB frame closes its connection unanswered (after it,
	// the frame would be answered "authentication required").
	stranger := dialClient(t, c.addr)
	answer := stranger.expect("1")
	stranger.raw(big)
	if !stranger.closedByPeer(5 * time.Second) {
		t.Fatal("a 100 KiB frame before connect was accepted")
	}
	select {
	case m := <-answer:
		t.Fatalf("a 100 KiB frame before connect was read and answered: %+v", m.Error)
	default:
	}

	cl := dialClient(t, c.addr)
	cl.mustCall("connect", map[string]any{"token": "s3cret"}, nil)
	if m := cl.rawCall("1", big); m.Error != nil {
		t.Fatalf("100 KiB frame after connect: %+v", m.Error)
	}
}
