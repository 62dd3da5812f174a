package frame

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"
)

// framed returns body with a standard Content-Length header.
func framed(body string) string {
	return fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(body), body)
}

// splitReader returns data in chunks cut at the given offsets, one chunk per
// Read, so a frame can be split at any position.
type splitReader struct {
	data []byte
	cuts []int // ascending offsets into data
	off  int
}

func (r *splitReader) Read(p []byte) (int, error) {
	if r.off >= len(r.data) {
		return 0, io.EOF
	}
	end := len(r.data)
	for len(r.cuts) > 0 && r.cuts[0] <= r.off {
		r.cuts = r.cuts[1:]
	}
	if len(r.cuts) > 0 && r.cuts[0] < end {
		end = r.cuts[0]
	}
	n := copy(p, r.data[r.off:end])
	r.off += n
	return n, nil
}

// readAll reads frames until an error and returns the bodies and that error.
// Every body is copied and its Buffer released, as a forwarder would.
func readAll(tb testing.TB, r *Reader) ([]string, error) {
	tb.Helper()
	var bodies []string
	for i := 0; i < 1000; i++ {
		buf, err := r.Read()
		if err != nil {
			if buf != nil {
				tb.Errorf("Read returned a buffer with error %v", err)
			}
			return bodies, err
		}
		bodies = append(bodies, string(buf.B))
		buf.Release()
	}
	tb.Fatal("readAll: no error after 1000 frames")
	return nil, nil
}

func TestReaderFrames(t *testing.T) {
	longLine := "X-Pad: " + strings.Repeat("a", 100) + "\r\n"
	tests := []struct {
		name    string
		in      string
		limits  Limits
		want    []string
		wantErr error
		noSplit bool // input too large to re-read split at every position
	}{
		{name: "empty stream", in: "", wantErr: io.EOF},
		{name: "one frame", in: framed(`{"id":1}`), want: []string{`{"id":1}`}, wantErr: io.EOF},
		{name: "empty body", in: "Content-Length: 0\r\n\r\n" + framed("x"), want: []string{"", "x"}, wantErr: io.EOF},
		{
			name:    "several frames",
			in:      framed(`{"a":1}`) + framed(`{"bb":22}`) + framed(`{}`),
			want:    []string{`{"a":1}`, `{"bb":22}`, `{}`},
			wantErr: io.EOF,
		},
		{name: "lower case name", in: "content-length: 2\r\n\r\n{}", want: []string{"{}"}, wantErr: io.EOF},
		{name: "upper case name", in: "CONTENT-LENGTH: 2\r\n\r\n{}", want: []string{"{}"}, wantErr: io.EOF},
		{name: "mixed case name", in: "cOnTeNt-LeNgTh: 2\r\n\r\n{}", want: []string{"{}"}, wantErr: io.EOF},
		{name: "no space after colon", in: "Content-Length:2\r\n\r\n{}", want: []string{"{}"}, wantErr: io.EOF},
		{name: "spaces around value", in: "Content-Length: \t 2 \t\r\n\r\n{}", want: []string{"{}"}, wantErr: io.EOF},
		{
			name:    "content type before",
			in:      "Content-Type: application/vscode-jsonrpc; charset=utf-8\r\nContent-Length: 2\r\n\r\n{}",
			want:    []string{"{}"},
			wantErr: io.EOF,
		},
		{
			name:    "content type after",
			in:      "Content-Length: 2\r\nContent-Type: application/vscode-jsonrpc; charset=utf-8\r\n\r\n{}",
			want:    []string{"{}"},
			wantErr: io.EOF,
		},
		{
			name:    "LF line endings",
			in:      "Content-Length: 2\nContent-Type: x\n\n{}" + "Content-Length: 3\n\n[1]",
			want:    []string{"{}", "[1]"},
			wantErr: io.EOF,
		},
		{
			name:    "body holds header-like bytes",
			in:      framed("Content-Length: 99\r\n\r\n"),
			want:    []string{"Content-Length: 99\r\n\r\n"},
			wantErr: io.EOF,
		},
		{name: "missing Content-Length", in: "Content-Type: x\r\n\r\n{}", wantErr: ErrNoLength},
		{name: "blank line first", in: "\r\n" + framed("{}"), wantErr: ErrNoLength},
		{name: "non-numeric length", in: "Content-Length: abc\r\n\r\n{}", wantErr: ErrMalformedHeader},
		{name: "hex length", in: "Content-Length: 0x2\r\n\r\n{}", wantErr: ErrMalformedHeader},
		{name: "negative length", in: "Content-Length: -2\r\n\r\n{}", wantErr: ErrMalformedHeader},
		{name: "plus sign", in: "Content-Length: +2\r\n\r\n{}", wantErr: ErrMalformedHeader},
		{name: "empty length", in: "Content-Length: \r\n\r\n{}", wantErr: ErrMalformedHeader},
		{name: "two numbers", in: "Content-Length: 1 2\r\n\r\n{}", wantErr: ErrMalformedHeader},
		{name: "huge length 12 digits", in: "Content-Length: 999999999999\r\n\r\n{}", wantErr: ErrBodyTooLarge},
		// 2^32-1 and 2^64-ish values must not wrap into small or negative lengths.
		{name: "length 2^32-1", in: "Content-Length: 4294967295\r\n\r\n{}", wantErr: ErrBodyTooLarge},
		{name: "length 2^32+2", in: "Content-Length: 4294967298\r\n\r\n{}", wantErr: ErrBodyTooLarge},
		{name: "huge length 20 digits", in: "Content-Length: 18446744073709551617\r\n\r\n{}", wantErr: ErrMalformedHeader},
		{name: "header without colon", in: "Content-Length 2\r\n\r\n{}", wantErr: ErrMalformedHeader},
		{name: "header with empty name", in: ": 2\r\n\r\n{}", wantErr: ErrMalformedHeader},
		{
			name:    "length at MaxBody",
			in:      framed("0123456789"),
			limits:  Limits{MaxBody: 10},
			want:    []string{"0123456789"},
			wantErr: io.EOF,
		},
		{name: "length over MaxBody", in: framed("0123456789x"), limits: Limits{MaxBody: 10}, wantErr: ErrBodyTooLarge},
		{
			name:    "header line at MaxHeaderLine",
			in:      longLine + framed("{}"),
			limits:  Limits{MaxHeaderLine: len(longLine)},
			want:    []string{"{}"},
			wantErr: io.EOF,
		},
		{
			name:    "header line over MaxHeaderLine",
			in:      longLine + framed("{}"),
			limits:  Limits{MaxHeaderLine: len(longLine) - 1},
			wantErr: ErrHeaderTooLong,
		},
		{
			name:    "header line over the default limit",
			in:      "X-Pad: " + strings.Repeat("a", DefaultMaxHeaderLine) + "\r\n" + framed("{}"),
			wantErr: ErrHeaderTooLong,
			noSplit: true,
		},
		{
			// No line end within the read buffer: the reader must give up, not grow.
			name:    "header line with no end",
			in:      "X-Pad: " + strings.Repeat("a", 64<<10),
			wantErr: ErrHeaderTooLong,
			noSplit: true,
		},
		{
			name:    "max header lines",
			in:      strings.Repeat("X-A: b\r\n", DefaultMaxHeaders-2) + framed("{}"),
			want:    []string{"{}"},
			wantErr: io.EOF,
		},
		{
			name:    "too many header lines",
			in:      strings.Repeat("X-A: b\r\n", DefaultMaxHeaders) + framed("{}"),
			wantErr: ErrTooManyHeaders,
		},
		{
			name:    "endless header lines",
			in:      strings.Repeat("X-A: b\r\n", 10000),
			wantErr: ErrTooManyHeaders,
			noSplit: true,
		},
		{name: "EOF in header name", in: "Content-Len", wantErr: io.ErrUnexpectedEOF},
		{name: "EOF after header line", in: "Content-Length: 2\r\n", wantErr: io.ErrUnexpectedEOF},
		{name: "EOF after CR of blank line", in: "Content-Length: 2\r\n\r", wantErr: io.ErrUnexpectedEOF},
		{name: "EOF before body", in: "Content-Length: 2\r\n\r\n", wantErr: io.ErrUnexpectedEOF},
		{name: "EOF inside body", in: "Content-Length: 5\r\n\r\n{}", wantErr: io.ErrUnexpectedEOF},
		{
			name:    "EOF inside second frame",
			in:      framed("{}") + "Content-Length: 5\r\n\r\n{",
			want:    []string{"{}"},
			wantErr: io.ErrUnexpectedEOF,
		},
		{
			// Without a Deadliner the timeout is ignored, whatever the read pattern.
			name:    "frame timeout without deadliner",
			in:      framed(`{"a":1}`) + framed(`{}`),
			limits:  Limits{FrameTimeout: time.Nanosecond},
			want:    []string{`{"a":1}`, `{}`},
			wantErr: io.EOF,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check := func(t *testing.T, how string, src io.Reader) {
				t.Helper()
				got, err := readAll(t, NewReader(src, nil, tt.limits))
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("%s: error %v, want %v", how, err, tt.wantErr)
				}
				if !equalStrings(got, tt.want) {
					t.Fatalf("%s: bodies %q, want %q", how, got, tt.want)
				}
			}
			check(t, "whole", strings.NewReader(tt.in))
			check(t, "data with EOF", iotest.DataErrReader(strings.NewReader(tt.in)))
			if tt.noSplit {
				return
			}
			check(t, "one byte reads", iotest.OneByteReader(strings.NewReader(tt.in)))
			for cut := 1; cut < len(tt.in); cut++ {
				check(t, fmt.Sprintf("cut at %d", cut), &splitReader{data: []byte(tt.in), cuts: []int{cut}})
			}
		})
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// A body must not alias the reader's buffer: it stays intact while later
// frames are read.
func TestReaderBodiesAreOwned(t *testing.T) {
	var in strings.Builder
	for i := range 100 {
		in.WriteString(framed(fmt.Sprintf(`{"n":%d}`, i)))
	}
	r := NewReader(strings.NewReader(in.String()), nil, Limits{})
	var kept []*Buffer
	for {
		buf, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		kept = append(kept, buf)
	}
	if len(kept) != 100 {
		t.Fatalf("read %d frames, want 100", len(kept))
	}
	for i, buf := range kept {
		if want := fmt.Sprintf(`{"n":%d}`, i); string(buf.B) != want {
			t.Errorf("frame %d = %q, want %q", i, buf.B, want)
		}
		buf.Release()
	}
}

// Bodies larger than the read buffer and of every pool class come through
// whole, however the bytes arrive.
func TestReaderLargeBodies(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	sizes := []int{511, 512, 513, 4 << 10, 4<<10 + 1, 32<<10 - 1, 32 << 10, 32<<10 + 1, 100 << 10, 256<<10 + 1}
	var in bytes.Buffer
	var want []string
	for _, n := range sizes {
		body := make([]byte, n)
		for i := range body {
			body[i] = byte(rng.UintN(256))
		}
		fmt.Fprintf(&in, "Content-Length: %d\r\n\r\n", n)
		in.Write(body)
		want = append(want, string(body))
	}
	sources := map[string]func() io.Reader{
		"whole":    func() io.Reader { return bytes.NewReader(in.Bytes()) },
		"half":     func() io.Reader { return iotest.HalfReader(bytes.NewReader(in.Bytes())) },
		"random":   func() io.Reader { return &splitReader{data: in.Bytes(), cuts: randomCuts(rng, in.Len(), 200)} },
		"one byte": func() io.Reader { return iotest.OneByteReader(bytes.NewReader(in.Bytes())) },
	}
	for name, src := range sources {
		got, err := readAll(t, NewReader(src(), nil, Limits{}))
		if err != io.EOF {
			t.Fatalf("%s: error %v, want io.EOF", name, err)
		}
		if !equalStrings(got, want) {
			t.Fatalf("%s: bodies differ", name)
		}
	}
}

func randomCuts(rng *rand.Rand, n, count int) []int {
	cuts := make([]int, count)
	for i := range cuts {
		cuts[i] = 1 + rng.IntN(n-1)
	}
	// ascending order, duplicates harmless
	for i := 1; i < len(cuts); i++ {
		for j := i; j > 0 && cuts[j] < cuts[j-1]; j-- {
			cuts[j], cuts[j-1] = cuts[j-1], cuts[j]
		}
	}
	return cuts
}

// tcpPair returns both ends of a real loopback TCP connection.
func tcpPair(tb testing.TB) (client, server net.Conn) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		c   net.Conn
		err error
	}
	accepted := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		accepted <- result{c, err}
	}()
	client, err = net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { client.Close() })
	select {
	case res := <-accepted:
		if res.err != nil {
			tb.Fatal(res.err)
		}
		tb.Cleanup(func() { res.c.Close() })
		return client, res.c
	case <-time.After(5 * time.Second):
		tb.Fatal("accept timed out")
	}
	return nil, nil
}

// deadlineLog wraps a conn (or nothing) and records each SetReadDeadline
// call, so a test knows when the reader has armed or cleared its deadline.
type deadlineLog struct {
	net.Conn
	mu    sync.Mutex
	calls []time.Time
	armed chan struct{} // receives when a non-zero deadline is set
}

func newDeadlineLog(c net.Conn) *deadlineLog {
	return &deadlineLog{Conn: c, armed: make(chan struct{}, 16)}
}

func (d *deadlineLog) SetReadDeadline(t time.Time) error {
	d.mu.Lock()
	d.calls = append(d.calls, t)
	d.mu.Unlock()
	if !t.IsZero() {
		select {
		case d.armed <- struct{}{}:
		default:
		}
	}
	if d.Conn == nil {
		return nil
	}
	return d.Conn.SetReadDeadline(t)
}

func (d *deadlineLog) log() []time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]time.Time(nil), d.calls...)
}

type readResult struct {
	buf *Buffer
	err error
	at  time.Time
}

// readAsync runs one Read in the background.
func readAsync(r *Reader) <-chan readResult {
	ch := make(chan readResult, 1)
	go func() {
		buf, err := r.Read()
		ch <- readResult{buf, err, time.Now()}
	}()
	return ch
}

func waitRead(tb testing.TB, ch <-chan readResult, within time.Duration) readResult {
	tb.Helper()
	select {
	case res := <-ch:
		return res
	case <-time.After(within):
		tb.Fatalf("Read did not return within %v", within)
		return readResult{}
	}
}

const testFrameTimeout = 100 * time.Millisecond

func TestReaderStalledPeer(t *testing.T) {
	tests := []struct {
		name string
		sent string // the part of a frame the peer sends before it stalls
	}{
		{"inside first header line", "Content-Len"},
		{"after a header line", "Content-Length: 10\r\n"},
		{"before blank line ends", "Content-Length: 10\r\n\r"},
		{"before body", "Content-Length: 10\r\n\r\n"},
		{"inside body", "Content-Length: 10\r\n\r\n{\"a\":"},
		{"inside second frame", framed(`{}`) + "Content-Length: 10\r\n\r\n{"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			client, server := tcpPair(t)
			r := NewReader(server, server, Limits{FrameTimeout: testFrameTimeout})
			start := time.Now()
			if _, err := io.WriteString(client, tt.sent); err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(tt.sent, framed(`{}`)) {
				res := waitRead(t, readAsync(r), 5*time.Second)
				if res.err != nil || string(res.buf.B) != `{}` {
					t.Fatalf("first frame: %v %v", res.buf, res.err)
				}
				res.buf.Release()
			}
			res := waitRead(t, readAsync(r), 5*time.Second)
			if !errors.Is(res.err, ErrStalled) {
				t.Fatalf("error %v, want ErrStalled", res.err)
			}
			if took := res.at.Sub(start); took < testFrameTimeout-10*time.Millisecond || took > 20*testFrameTimeout {
				t.Fatalf("stalled after %v, want about %v", took, testFrameTimeout)
			}
		})
	}
}

// A peer that trickles a frame, each byte well within the timeout, still gets
// ErrStalled: the timeout bounds the whole frame, not each read.
func TestReaderTricklingPeer(t *testing.T) {
	body := `{"jsonrpc":"2.0","method":"session.send","params":{}}`
	tests := []struct {
		name     string
		at, rest string // sent at once, then trickled a byte at a time
	}{
		{"header", "", framed(body)},
		{"body", fmt.Sprintf("Content-Length: %d\r\n\r\n", len(body)), body},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			client, server := tcpPair(t)
			r := NewReader(server, server, Limits{FrameTimeout: testFrameTimeout})
			stop := make(chan struct{})
			defer close(stop)
			start := time.Now()
			if _, err := io.WriteString(client, tt.at); err != nil {
				t.Fatal(err)
			}
			go trickle(client, tt.rest, testFrameTimeout/10, stop)
			res := waitRead(t, readAsync(r), 5*time.Second)
			if !errors.Is(res.err, ErrStalled) {
				t.Fatalf("error %v, want ErrStalled", res.err)
			}
			if took := res.at.Sub(start); took > 20*testFrameTimeout {
				t.Fatalf("stalled after %v, want about %v", took, testFrameTimeout)
			}
		})
	}
}

// trickle writes s to w one byte per interval until done or stopped.
func trickle(w io.Writer, s string, interval time.Duration, stop <-chan struct{}) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for i := range len(s) {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		if _, err := w.Write([]byte{s[i]}); err != nil {
			return
		}
	}
}

// An idle peer, before its first frame or between frames, is never timed
// out, and a frame that needed the deadline leaves the conn with none.
func TestReaderIdlePeer(t *testing.T) {
	t.Parallel()
	client, server := tcpPair(t)
	dl := newDeadlineLog(server)
	r := NewReader(server, dl, Limits{FrameTimeout: testFrameTimeout})

	// Idle before any frame.
	pending := readAsync(r)
	select {
	case res := <-pending:
		t.Fatalf("idle Read returned %v, %v", res.buf, res.err)
	case <-time.After(3 * testFrameTimeout):
	}
	if calls := dl.log(); len(calls) != 0 {
		t.Fatalf("deadline set on an idle conn: %v", calls)
	}

	// A frame split in two: the reader arms the deadline while it waits for
	// the rest, then clears it.
	if _, err := io.WriteString(client, "Content-Length: 7\r\n\r\n{\"a\""); err != nil {
		t.Fatal(err)
	}
	select {
	case <-dl.armed:
	case <-time.After(5 * time.Second):
		t.Fatal("no deadline armed for a partial frame")
	}
	if _, err := io.WriteString(client, ":1}"); err != nil {
		t.Fatal(err)
	}
	res := waitRead(t, pending, 5*time.Second)
	if res.err != nil || string(res.buf.B) != `{"a":1}` {
		t.Fatalf("got %v, %v", res.buf, res.err)
	}
	res.buf.Release()
	calls := dl.log()
	if len(calls) != 2 || calls[0].IsZero() || !calls[1].IsZero() {
		t.Fatalf("deadline calls %v, want one set then one clear", calls)
	}

	// Idle between frames, then another frame arrives whole.
	pending = readAsync(r)
	select {
	case res := <-pending:
		t.Fatalf("idle Read returned %v, %v", res.buf, res.err)
	case <-time.After(3 * testFrameTimeout):
	}
	if _, err := io.WriteString(client, framed(`{"b":2}`)); err != nil {
		t.Fatal(err)
	}
	res = waitRead(t, pending, 5*time.Second)
	if res.err != nil || string(res.buf.B) != `{"b":2}` {
		t.Fatalf("got %v, %v", res.buf, res.err)
	}
	res.buf.Release()

	// A clean close between frames is io.EOF, not a stall.
	pending = readAsync(r)
	client.Close()
	if res := waitRead(t, pending, 5*time.Second); res.err != io.EOF {
		t.Fatalf("after close: %v, want io.EOF", res.err)
	}
}

// Frames already buffered never touch the deadline (no syscalls on the fast
// path); a frame that must wait for more bytes arms it once and clears it once.
func TestReaderDeadlineCalls(t *testing.T) {
	in := framed(`{"a":1}`) + framed(`{"b":2}`) + framed(`{"c":3}`)
	tests := []struct {
		name      string
		src       io.Reader
		wantCalls int
	}{
		{"whole", strings.NewReader(in), 0},
		{"one byte reads", iotest.OneByteReader(strings.NewReader(in)), 6},
		{"cut inside second body", &splitReader{data: []byte(in), cuts: []int{len(framed(`{"a":1}`)) + 25}}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dl := newDeadlineLog(nil)
			got, err := readAll(t, NewReader(tt.src, dl, Limits{FrameTimeout: time.Hour}))
			if err != io.EOF || len(got) != 3 {
				t.Fatalf("got %q, %v", got, err)
			}
			calls := dl.log()
			if len(calls) != tt.wantCalls {
				t.Fatalf("%d deadline calls, want %d", len(calls), tt.wantCalls)
			}
			for i, c := range calls {
				if c.IsZero() != (i%2 == 1) {
					t.Fatalf("deadline calls %v: want set/clear pairs", calls)
				}
			}
		})
	}
}

func TestReaderReady(t *testing.T) {
	frame := "Content-Length: 2\r\n\r\n{}"
	tests := []struct {
		buffered string
		want     bool
	}{
		{"", false},
		{"Content-Len", false},
		{"Content-Length: 2\r\n\r\n", false},
		{"Content-Length: 2\r\n\r\n{", false},
		{frame, true},
		{"content-type: x\ncontent-length: 2\n\n{}", true},
	}
	for _, tt := range tests {
		// Read one whole frame first so the rest stays buffered.
		r := NewReader(strings.NewReader(frame+tt.buffered), nil, Limits{})
		b, err := r.Read()
		if err != nil {
			t.Fatal(err)
		}
		b.Release()
		if got := r.Ready(); got != tt.want {
			t.Errorf("buffered %q: Ready() = %v, want %v", tt.buffered, got, tt.want)
		}
	}
}

// TestLend: with Lend, a body already buffered comes back in place (no copy)
// and stays intact until the next Read; bodies that are not whole in the
// buffer still come back in a Buffer of their own; the stream reads the same.
func TestLend(t *testing.T) {
	var stream bytes.Buffer
	w := NewWriter(&stream)
	bodies := [][]byte{[]byte(`{"a":1}`), bytes.Repeat([]byte("x"), 300<<10), []byte(`{"b":2}`), []byte(`{}`)}
	for _, b := range bodies {
		if err := w.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	r := NewReader(&splitReader{data: stream.Bytes(), cuts: []int{40, 70000}}, nil, Limits{})
	r.Lend()
	lent := 0
	for i, want := range bodies {
		buf, err := r.Read()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if !bytes.Equal(buf.B, want) {
			t.Fatalf("frame %d: %d bytes, want %d", i, len(buf.B), len(want))
		}
		if buf == &r.view {
			lent++
		}
		// Ready looks ahead without disturbing the lent body.
		_ = r.Ready()
		if !bytes.Equal(buf.B, want) {
			t.Fatalf("frame %d changed before the next Read", i)
		}
		buf.Release()
	}
	if lent == 0 || lent == len(bodies) {
		t.Errorf("%d of %d bodies lent: want some lent, the 300 KiB one copied", lent, len(bodies))
	}
	if _, err := r.Read(); err != io.EOF {
		t.Fatalf("end: %v", err)
	}
	if r.in.big != nil {
		t.Error("the large buffer is held after the stream drained")
	}
}
