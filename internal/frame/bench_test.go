package frame

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
)

// A session.send request as the SDK sends it (about 200 bytes).
var smallRequest = []byte(`{"jsonrpc":"2.0","id":17,"method":"session.send","params":{"sessionId":"user-42-9f0c2a5e-3b1d-4e8f-a6c7-1d2e3f405162","prompt":"Summarize the \"README.md\" file in two sentences.","mode":"enqueue"}}`)

// benchEvent returns a session.event notification of about size bytes, shaped
// like a model.messages_snapshot: sessionId first, then a large event whose
// data holds nested messages with long strings full of escapes.
func benchEvent(size int) []byte {
	var b strings.Builder
	b.WriteString(`{"jsonrpc":"2.0","method":"session.event","params":{"sessionId":"user-42-9f0c2a5e-3b1d-4e8f-a6c7-1d2e3f405162",` +
		`"event":{"type":"model.messages_snapshot","id":"e1b2c3d4-0000-4000-8000-000000000001","timestamp":"2025-01-01T12:00:00.000Z",` +
		`"data":{"messages":[`)
	for i := 0; b.Len() < size-300; i++ {
		if i > 0 {
			b.WriteString(`,`)
		}
		fmt.Fprintf(&b, `{"role":"assistant","content":"Step %d: ran \"go test ./...\" in C:\\work\\repo\\n`+
			`output:\\n\\tok  \\tgithub.com/x/y\\t0.1s {braces} [brackets] \\u00e9 and a long tail of plain prose that `+
			`describes the result of the tool call in detail, as models tend to do.",`+
			`"toolRequests":[{"toolCallId":"call_%d","name":"shell","arguments":{"command":"ls -la \"dir %d\"","timeout":30}}],`+
			`"meta":{"tokens":%d,"cached":false,"nested":{"a":[1,2,{"b":[null,true]}]}}}`, i, i, i, i*7)
	}
	b.WriteString(`]}}}}`)
	return []byte(b.String())
}

// repeatReader returns data over and over, like a peer that never stops.
type repeatReader struct {
	data []byte
	off  int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.data[r.off:])
		n += c
		r.off = (r.off + c) % len(r.data)
	}
	return n, nil
}

func TestBenchEventIsRealistic(t *testing.T) {
	body := benchEvent(40 << 10)
	if !json.Valid(body) {
		t.Fatal("benchEvent is not valid JSON")
	}
	if n := len(body); n < 39<<10 || n > 41<<10 {
		t.Fatalf("benchEvent(40 KiB) is %d bytes", n)
	}
	if err := compareWithJSON(body); err != nil {
		t.Fatal(err)
	}
	var m Meta
	if err := Scan(body, &m); err != nil || m.Kind != KindNotification || m.SessionID.Len() == 0 {
		t.Fatalf("Scan = %+v, %v", m, err)
	}
	if err := compareWithJSON(smallRequest); err != nil {
		t.Fatal(err)
	}
}

func benchBodies() []struct {
	name string
	body []byte
} {
	return []struct {
		name string
		body []byte
	}{
		{"small", smallRequest},
		{"40KiB", benchEvent(40 << 10)},
	}
}

func BenchmarkReadFrame(b *testing.B) {
	for _, bb := range benchBodies() {
		b.Run(bb.name, func(b *testing.B) {
			// Several frames per pass so reads straddle frame boundaries.
			var in []byte
			for range 7 {
				in = append(in, framed(string(bb.body))...)
			}
			r := NewReader(&repeatReader{data: in}, nil, Limits{})
			b.SetBytes(int64(len(bb.body)))
			b.ReportAllocs()
			for b.Loop() {
				buf, err := r.Read()
				if err != nil {
					b.Fatal(err)
				}
				buf.Release()
			}
		})
	}
}

func BenchmarkWriteFrame(b *testing.B) {
	for _, bb := range benchBodies() {
		b.Run(bb.name, func(b *testing.B) {
			w := NewWriter(io.Discard)
			b.SetBytes(int64(len(bb.body)))
			b.ReportAllocs()
			for b.Loop() {
				if err := w.Write(bb.body); err != nil {
					b.Fatal(err)
				}
				if err := w.Flush(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkWriteWithID(b *testing.B) {
	for _, bb := range benchBodies() {
		b.Run(bb.name, func(b *testing.B) {
			body := append([]byte(`{"id":12345,`), bb.body[1:]...)
			var m Meta
			if err := Scan(body, &m); err != nil {
				b.Fatal(err)
			}
			id := []byte("9007199254740")
			w := NewWriter(io.Discard)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if err := w.WriteWithID(body, int(m.ID.Start), int(m.ID.End), id); err != nil {
					b.Fatal(err)
				}
				if err := w.Flush(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkScanSmall(b *testing.B) {
	benchScan(b, smallRequest)
}

func BenchmarkScan40KiB(b *testing.B) {
	benchScan(b, benchEvent(40<<10))
}

// BenchmarkScanHead40KiB is what the proxy does to a backend's event.
func BenchmarkScanHead40KiB(b *testing.B) {
	benchScanWith(b, benchEvent(40<<10), ScanHead)
}

func benchScan(b *testing.B, body []byte) {
	benchScanWith(b, body, Scan)
}

func benchScanWith(b *testing.B, body []byte, scan func([]byte, *Meta) error) {
	var m Meta
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := scan(body, &m); err != nil {
			b.Fatal(err)
		}
	}
	if m.SessionID.Len() == 0 {
		b.Fatal("no sessionId found")
	}
}

// BenchmarkJSONUnmarshal40KiB is the yardstick Scan replaces: decoding the
// routing fields with encoding/json.
func BenchmarkJSONUnmarshal40KiB(b *testing.B) {
	body := benchEvent(40 << 10)
	var msg struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
		Params struct {
			SessionID string `json:"sessionId"`
		} `json:"params"`
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := json.Unmarshal(body, &msg); err != nil {
			b.Fatal(err)
		}
	}
}
