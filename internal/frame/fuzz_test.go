package frame

import (
	"bytes"
	"errors"
	"io"
	"math"
	"testing"
)

// FuzzScan checks that Scan never panics and, on any valid JSON object, finds
// the id, method and params.sessionId that encoding/json finds. Plain
// `go test` runs only the seeds; explore with
//
//	go test -run x -fuzz FuzzScan -fuzztime 60s ./internal/frame
func FuzzScan(f *testing.F) {
	for _, c := range scanCases {
		f.Add([]byte(c.body))
	}
	f.Add(benchEvent(2 << 10))
	f.Fuzz(func(t *testing.T, body []byte) {
		if err := compareWithJSON(body); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzReader checks that any byte stream gives frames then an error, never
// a panic, and that frames written by Writer read back whole after it.
func FuzzReader(f *testing.F) {
	f.Add([]byte(framed(`{"id":1}`)), uint16(5))
	f.Add([]byte("content-length: 2\n\n{}Content-Length: 3\r\n\r\n[1]"), uint16(1))
	f.Add([]byte("Content-Length: 99999999999\r\n\r\n"), uint16(0))
	f.Add([]byte("X: 1\r\nContent-Length: 4\r\nContent-Type: a\r\n\r\nabcd"), uint16(3))
	f.Fuzz(func(t *testing.T, stream []byte, cut uint16) {
		// Arbitrary bytes: frames then an error, never a panic or a buffer
		// bigger than the limit.
		limits := Limits{MaxBody: 1 << 10, MaxHeaderLine: 256}
		r := NewReader(&splitReader{data: stream, cuts: []int{int(cut)}}, nil, limits)
		// A lending Reader over the same bytes gives the same frames and error.
		lr := NewReader(&splitReader{data: stream, cuts: []int{int(cut)}}, nil, limits)
		lr.Lend()
		for i := 0; ; i++ {
			buf, err := r.Read()
			lbuf, lerr := lr.Read()
			if (err == nil) != (lerr == nil) || err != nil && err.Error() != lerr.Error() {
				t.Fatalf("frame %d: Read error %v, lending Read error %v", i, err, lerr)
			}
			if err != nil {
				break
			}
			if !bytes.Equal(buf.B, lbuf.B) {
				t.Fatalf("frame %d: lending Read gave other bytes", i)
			}
			if len(buf.B) > limits.MaxBody {
				t.Fatalf("frame of %d bytes over MaxBody", len(buf.B))
			}
			buf.Release()
			lbuf.Release()
			if i > len(stream) {
				t.Fatal("more frames than bytes")
			}
		}

		// The same bytes as a body survive a round trip.
		var out bytes.Buffer
		w := NewWriter(&out)
		if err := w.Write(stream); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		framedLen := out.Len()
		r = NewReader(&splitReader{data: out.Bytes(), cuts: []int{int(cut) % (framedLen + 1)}}, nil, Limits{})
		buf, err := r.Read()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.B, stream) {
			t.Fatalf("round trip changed the body")
		}
		buf.Release()
		if _, err := r.Read(); !errors.Is(err, io.EOF) {
			t.Fatalf("after the frame: %v, want io.EOF", err)
		}
	})
}

// FuzzQuickHeader checks the fast header path against the line-by-line
// one: wherever quickHeader answers, readHeader reads the same length and
// stops at the same byte.
func FuzzQuickHeader(f *testing.F) {
	f.Add([]byte("Content-Length: 12\r\n\r\n{}"))
	f.Add([]byte("Content-Length: 0\r\n\r\n"))
	f.Add([]byte("Content-Length: 007\r\n\r\nx"))
	f.Add([]byte("Content-Length: 99999999999999\r\n\r\n"))
	f.Add([]byte("Content-Length: 5\r\nContent-Type: x\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		end, n := quickHeader(data)
		if n < 0 {
			return
		}
		r := NewReader(bytes.NewReader(data), nil, Limits{MaxBody: math.MaxInt}) // capped at MaxBodyCap
		got, err := r.readHeader()
		if n > MaxBodyCap {
			if !errors.Is(err, ErrBodyTooLarge) {
				t.Fatalf("quickHeader(%q) = %d over MaxBodyCap; readHeader = %d, %v", data, n, got, err)
			}
			return
		}
		if err != nil || got != n || r.in.r != end {
			t.Fatalf("quickHeader(%q) = %d, %d; readHeader = %d, %v at %d", data, end, n, got, err, r.in.r)
		}
	})
}
