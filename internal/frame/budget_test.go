package frame

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

// waitFor polls cond until it holds, failing the test after d.
func waitFor(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// A body's buffer grows with the bytes that arrive, not with the length the
// header announces; the bytes held count against the budget until the body
// is whole or the read fails.
func TestReaderMemoryFollowsBytes(t *testing.T) {
	budget := NewBudget(1 << 30)
	client, server := tcpPair(t)
	r := NewReader(server, nil, Limits{Budget: budget})
	const n = 64 << 20
	fmt.Fprintf(client, "Content-Length: %d\r\n\r\n", n)
	client.Write(bytes.Repeat([]byte("a"), 1<<10))
	done := readAsync(r)
	waitFor(t, 5*time.Second, "the first bytes taken", func() bool { return budget.Used() > 0 })
	if used := budget.Used(); used > growFrom {
		t.Fatalf("1 KiB of a 64 MiB frame holds %d bytes", used)
	}
	// 3 MiB more: the buffer doubles up to what has arrived, no further.
	sent := 1<<10 + 3<<20
	client.Write(bytes.Repeat([]byte("b"), 3<<20))
	waitFor(t, 5*time.Second, "the buffer to grow", func() bool { return budget.Used() >= 3<<20 })
	time.Sleep(20 * time.Millisecond) // let the reader take in all that was sent
	if used := budget.Used(); used > int64(4*sent) {
		t.Fatalf("%d bytes of a 64 MiB frame hold %d bytes", sent, used)
	}
	client.Close()
	res := <-done
	if !errors.Is(res.err, io.ErrUnexpectedEOF) {
		t.Fatalf("Read = %v, want io.ErrUnexpectedEOF", res.err)
	}
	if used := budget.Used(); used != 0 {
		t.Fatalf("%d bytes still counted after the read failed", used)
	}
}

// The budget is shared: a reader whose body cannot grow within it fails
// with ErrBudget; another reader's whole frames pass meanwhile, and once the
// first gives its bytes back, large frames read again.
func TestBudgetSharedByReaders(t *testing.T) {
	budget := NewBudget(1 << 20)
	greedyC, greedyS := tcpPair(t)
	greedy := NewReader(greedyS, nil, Limits{Budget: budget})
	fmt.Fprintf(greedyC, "Content-Length: %d\r\n\r\n", 4<<20)
	go greedyC.Write(bytes.Repeat([]byte("g"), 2<<20))
	res := <-readAsync(greedy)
	if !errors.Is(res.err, ErrBudget) {
		t.Fatalf("greedy reader: %v, want ErrBudget", res.err)
	}
	if used := budget.Used(); used != 0 {
		t.Fatalf("%d bytes still counted after ErrBudget", used)
	}

	// Another reader, while a third holds most of the budget.
	holdC, holdS := tcpPair(t)
	hold := readAsync(NewReader(holdS, nil, Limits{Budget: budget}))
	fmt.Fprintf(holdC, "Content-Length: %d\r\n\r\n%s", 8<<20, strings.Repeat("h", 300<<10))
	waitFor(t, 5*time.Second, "the holder to take its share", func() bool { return budget.Used() >= 256<<10 })
	otherC, otherS := tcpPair(t)
	other := NewReader(otherS, nil, Limits{Budget: budget})
	body := `{"jsonrpc":"2.0","method":"ping"}`
	for i := 0; i < 3; i++ {
		otherC.Write([]byte(framed(body)))
		buf, err := other.Read()
		if err != nil || string(buf.B) != body {
			t.Fatalf("other reader: %v", err)
		}
		buf.Release()
	}
	holdC.Close()
	if res := <-hold; res.err == nil {
		t.Fatal("holder read a frame it never finished")
	}
	big := strings.Repeat("x", 400<<10)
	go otherC.Write([]byte(framed(big)))
	buf, err := other.Read()
	if err != nil || len(buf.B) != len(big) {
		t.Fatalf("large frame after the budget came back: %v", err)
	}
	buf.Release()
	if used := budget.Used(); used != 0 {
		t.Fatalf("%d bytes counted with no frame unfinished", used)
	}
}

// MaxBody is capped at MaxBodyCap, and SetMaxBody changes it from the next
// frame on.
func TestMaxBodyCapAndSet(t *testing.T) {
	if got := (Limits{MaxBody: 4 << 30}).withDefaults().MaxBody; got != MaxBodyCap {
		t.Fatalf("MaxBody 4 GiB became %d, want %d", got, MaxBodyCap)
	}
	in := framed(strings.Repeat("a", 100)) + framed(strings.Repeat("b", 100))
	r := NewReader(strings.NewReader(in), nil, Limits{MaxBody: 10})
	if _, err := r.Read(); !errors.Is(err, ErrBodyTooLarge) {
		t.Fatalf("100-byte frame under MaxBody 10: %v", err)
	}
	r = NewReader(strings.NewReader(in), nil, Limits{MaxBody: 100})
	r.SetMaxBody(10)
	if _, err := r.Read(); !errors.Is(err, ErrBodyTooLarge) {
		t.Fatalf("after SetMaxBody(10): %v", err)
	}
	r = NewReader(strings.NewReader(in), nil, Limits{MaxBody: 10})
	r.SetMaxBody(100)
	if buf, err := r.Read(); err != nil || len(buf.B) != 100 {
		t.Fatalf("after SetMaxBody(100): %v", err)
	}
}
