package frame

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"
)

func TestWriterWrite(t *testing.T) {
	big := strings.Repeat("x", 40<<10) // over the write buffer
	tests := []struct {
		name string
		body string
		want string
	}{
		{"empty", "", "Content-Length: 0\r\n\r\n"},
		{"small", `{"id":1}`, "Content-Length: 8\r\n\r\n{\"id\":1}"},
		{"multi-byte UTF-8 counts bytes", `"é✓"`, "Content-Length: 7\r\n\r\n\"é✓\""},
		{"CRLF inside body", "a\r\n\r\nb", "Content-Length: 6\r\n\r\na\r\n\r\nb"},
		{"over the write buffer", big, "Content-Length: 40960\r\n\r\n" + big},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			w := NewWriter(&out)
			if err := w.Write([]byte(tt.body)); err != nil {
				t.Fatal(err)
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			if w.Buffered() != 0 {
				t.Fatalf("Buffered() = %d after Flush", w.Buffered())
			}
			if out.String() != tt.want {
				t.Fatalf("wrote %q, want %q", clip(out.String()), clip(tt.want))
			}
		})
	}
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + fmt.Sprintf("…(%d bytes)", len(s))
	}
	return s
}

// Writes are batched until Flush; several frames go out in order.
func TestWriterBatches(t *testing.T) {
	var out bytes.Buffer
	w := NewWriter(&out)
	for _, body := range []string{`{"a":1}`, `{}`, `[]`} {
		if err := w.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if out.Len() != 0 {
		t.Fatalf("%d bytes reached the peer before Flush", out.Len())
	}
	want := framed(`{"a":1}`) + framed(`{}`) + framed(`[]`)
	if w.Buffered() != len(want) {
		t.Fatalf("Buffered() = %d, want %d", w.Buffered(), len(want))
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if out.String() != want {
		t.Fatalf("wrote %q, want %q", out.String(), want)
	}
}

func TestWriterWriteWithID(t *testing.T) {
	tests := []struct {
		name string
		body string
		id   string
		want string
	}{
		{"number to longer number", `{"jsonrpc":"2.0","id":7,"method":"ping"}`, `1234567`, `{"jsonrpc":"2.0","id":1234567,"method":"ping"}`},
		{"number to shorter number", `{"id":1234567,"result":{}}`, `9`, `{"id":9,"result":{}}`},
		{"string to number", `{"id":"abc-1","method":"x"}`, `42`, `{"id":42,"method":"x"}`},
		{"number to string", `{"method":"x","id":3}`, `"p:3"`, `{"method":"x","id":"p:3"}`},
		{"null id", `{"id":null,"error":{"code":-32700}}`, `5`, `{"id":5,"error":{"code":-32700}}`},
		{"id last with spaces", `{ "result" : [1,2] , "id" : 18 }`, `19`, `{ "result" : [1,2] , "id" : 19 }`},
		{"same length", `{"id":10}`, `11`, `{"id":11}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := []byte(tt.body)
			var m Meta
			if err := Scan(body, &m); err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			w := NewWriter(&out)
			if err := w.WriteWithID(body, int(m.ID.Start), int(m.ID.End), []byte(tt.id)); err != nil {
				t.Fatal(err)
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			if want := framed(tt.want); out.String() != want {
				t.Fatalf("wrote %q, want %q", out.String(), want)
			}
			if string(body) != tt.body {
				t.Fatalf("body changed to %q", body)
			}
		})
	}
}

// errAfterWriter accepts n bytes, then fails.
type errAfterWriter struct {
	n   int
	err error
}

func (w *errAfterWriter) Write(p []byte) (int, error) {
	if len(p) <= w.n {
		w.n -= len(p)
		return len(p), nil
	}
	n := w.n
	w.n = 0
	return n, w.err
}

// A failing peer's error comes back from Write (when the buffer spills) or
// Flush, and stays: the writer does not pretend later frames went out.
func TestWriterErrors(t *testing.T) {
	boom := errors.New("boom")

	w := NewWriter(&errAfterWriter{n: 10, err: boom})
	if err := w.Write([]byte(`{"id":1}`)); err != nil {
		t.Fatalf("buffered Write: %v", err)
	}
	if err := w.Flush(); !errors.Is(err, boom) {
		t.Fatalf("Flush: %v, want boom", err)
	}
	if err := w.Write([]byte(`{}`)); !errors.Is(err, boom) {
		t.Fatalf("Write after a failed Flush: %v, want boom", err)
	}

	w = NewWriter(&errAfterWriter{n: 100, err: boom})
	big := bytes.Repeat([]byte("y"), 2*writeBufferSize)
	if err := w.Write(big); !errors.Is(err, boom) {
		t.Fatalf("Write of a body over the buffer: %v, want boom", err)
	}

	w = NewWriter(&errAfterWriter{n: 100, err: boom})
	body := append([]byte(`{"id":1,"p":"`), append(big, `"}`...)...)
	if err := w.WriteWithID(body, 6, 7, []byte("2")); !errors.Is(err, boom) {
		t.Fatalf("WriteWithID of a body over the buffer: %v, want boom", err)
	}
}

// Random bodies written with Write and WriteWithID read back exactly, with
// the id replaced, whatever the sizes and however the reads split.
func TestWriterReaderRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var out bytes.Buffer
	w := NewWriter(&out)
	var want []string
	for i := range 300 {
		var n int
		switch rng.IntN(4) {
		case 0:
			n = rng.IntN(64)
		case 1:
			n = rng.IntN(1 << 10)
		case 2:
			n = rng.IntN(40 << 10)
		default:
			n = rng.IntN(300 << 10)
		}
		body := make([]byte, n)
		for j := range body {
			body[j] = byte(rng.UintN(256))
		}
		if i%2 == 0 || n == 0 {
			if err := w.Write(body); err != nil {
				t.Fatal(err)
			}
			want = append(want, string(body))
		} else {
			start := rng.IntN(n + 1)
			end := start + rng.IntN(n-start+1)
			id := fmt.Appendf(nil, "%d", rng.Uint64())
			if err := w.WriteWithID(body, start, end, id); err != nil {
				t.Fatal(err)
			}
			want = append(want, string(body[:start])+string(id)+string(body[end:]))
		}
		if rng.IntN(8) == 0 {
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	for name, src := range map[string]io.Reader{
		"whole":  bytes.NewReader(out.Bytes()),
		"half":   iotest.HalfReader(bytes.NewReader(out.Bytes())),
		"random": &splitReader{data: out.Bytes(), cuts: randomCuts(rng, out.Len(), 2000)},
	} {
		got, err := readAll(t, NewReader(src, nil, Limits{}))
		if err != io.EOF {
			t.Fatalf("%s: error %v after %d frames", name, err, len(got))
		}
		if len(got) != len(want) {
			t.Fatalf("%s: read %d frames, want %d", name, len(got), len(want))
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("%s: frame %d differs (len %d, want %d)", name, i, len(got[i]), len(want[i]))
			}
		}
	}
}

// vecRecorder is a VecWriter that records what came as a vectored write.
type vecRecorder struct {
	out   bytes.Buffer
	calls int
	tails [][]byte
}

func (v *vecRecorder) Write(p []byte) (int, error) { return v.out.Write(p) }
func (v *vecRecorder) WriteVec(a, b []byte) error {
	v.calls++
	v.tails = append(v.tails, b)
	v.out.Write(a)
	v.out.Write(b)
	return nil
}

// Over a VecWriter a large body goes out from the caller's slice, after
// what was buffered before it, in one call; small ones are batched as ever.
func TestWriterVectoredLargeBodies(t *testing.T) {
	var v vecRecorder
	w := NewWriter(&v)
	small := []byte(`{"id":1}`)
	big := bytes.Repeat([]byte("y"), vecMin)
	for _, body := range [][]byte{small, big, small, small, big} {
		if err := w.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	ref := NewWriter(&want)
	for _, body := range [][]byte{small, big, small, small, big} {
		ref.Write(body)
	}
	ref.Flush()
	if !bytes.Equal(v.out.Bytes(), want.Bytes()) {
		t.Fatal("vectored output differs from the plain one")
	}
	if v.calls != 2 {
		t.Fatalf("%d vectored writes, want 2 (one per large body)", v.calls)
	}
	for _, tail := range v.tails {
		if &tail[0] != &big[0] {
			t.Fatal("a large body was copied instead of written from the caller's slice")
		}
	}
}
