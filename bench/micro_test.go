package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/rpcproxy/rpcproxy/internal/frame"
	"github.com/rpcproxy/rpcproxy/internal/router"
)

const sessionID = "user-42-0b9f6c1e-7d2a-4c3b-9e8f-5a6b7c8d9e0f"

// sessionSend is a session.send as the SDK writes it.
var sessionSend = []byte(`{"jsonrpc":"2.0","id":4711,"method":"session.send","params":{"sessionId":"` + sessionID +
	`","prompt":"Refactor the \"frame\" package and run the tests.","attachments":[],"mode":"enqueue"}}`)

// snapshotEvent returns a session.event of about size bytes carrying a
// model.messages_snapshot: the whole conversation as many messages, encoded
// by encoding/json as the CLI's would be (quotes, newlines, tabs and
// non-ASCII escaped), so the body is mostly short strings with escapes.
func snapshotEvent(size int) []byte {
	type toolCall struct {
		ID        string            `json:"id"`
		Name      string            `json:"name"`
		Arguments map[string]string `json:"arguments"`
	}
	type message struct {
		Role      string     `json:"role"`
		Content   string     `json:"content"`
		ToolCalls []toolCall `json:"toolCalls,omitempty"`
	}
	// Members in the CLI's order: sessionId before the event.
	type event struct {
		Type      string `json:"type"`
		Data      any    `json:"data"`
		ID        string `json:"id"`
		Timestamp string `json:"timestamp"`
		ParentID  string `json:"parentId"`
	}
	type params struct {
		SessionID string `json:"sessionId"`
		Event     event  `json:"event"`
	}
	type notification struct {
		JSONRPC string `json:"jsonrpc"`
		Method  string `json:"method"`
		Params  params `json:"params"`
	}
	var msgs []message
	body := func() []byte {
		b, err := json.Marshal(notification{"2.0", "session.event", params{sessionID, event{
			Type: "model.messages_snapshot", Data: map[string]any{"messages": msgs},
			ID: "9c1d2e3f-4a5b-4c6d-8e7f-0a1b2c3d4e5f", Timestamp: "2026-01-02T03:04:05.678Z",
			ParentID: "8b0c1d2e-3f4a-4b5c-9d6e-7f8a9b0c1d2e",
		}}})
		if err != nil {
			panic(err)
		}
		return b
	}
	for i := 0; ; i++ {
		msgs = append(msgs, message{
			Role: []string{"user", "assistant", "tool"}[i%3],
			Content: fmt.Sprintf("Step %d: `go test ./...` printed:\n\tok  \tgithub.com/rpcproxy/rpcproxy/internal/frame\t0.%03ds\n"+
				"The \"Scan\" function was unchanged — naïve timings only.", i, i%1000),
			ToolCalls: []toolCall{{ID: fmt.Sprintf("call_%04d", i), Name: "bash", Arguments: map[string]string{"command": "ls -la 'dir " + fmt.Sprint(i) + "'"}}},
		})
		if b := body(); len(b) >= size {
			return b
		}
	}
}

// deltaEvent returns a session.event of size bytes shaped as the fake CLI
// sends its large assistant.message_delta events: one long plain string.
func deltaEvent(size int) []byte {
	head := `{"jsonrpc":"2.0","method":"session.event","params":{"sessionId":"` + sessionID +
		`","event":{"type":"assistant.message_delta","data":{"messageId":"1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9","deltaContent":"`
	tail := `"},"id":"0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d","timestamp":"2026-01-02T03:04:05.678Z","parentId":null,"ephemeral":true}}}`
	filler := strings.Repeat("The quick brown fox jumps over the lazy dog. ", size/45+1)
	return []byte(head + filler[:size-len(head)-len(tail)] + tail)
}

// response is a backend's answer with the proxy's upstream id.
var response = []byte(`{"jsonrpc":"2.0","id":90071,"result":{"messageId":"5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9"}}`)

func testRing(tb testing.TB) *router.Ring {
	tb.Helper()
	var bs []*router.Backend
	for i := range 3 {
		addr := fmt.Sprintf("127.0.0.1:%d", 4322+i)
		bs = append(bs, &router.Backend{Name: addr, Addr: addr})
	}
	r, err := router.NewRing(bs, router.RingConfig{})
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// routeBodies are the frames the route-key benchmarks read.
func routeBodies() []struct {
	name        string
	body        []byte
	fromBackend bool
} {
	return []struct {
		name        string
		body        []byte
		fromBackend bool
	}{
		{"session.send", sessionSend, false},
		{"event-snapshot-40KiB", snapshotEvent(40 << 10), true},
		{"event-delta-40KiB", deltaEvent(40 << 10), true},
	}
}

// BenchmarkFullScan is frame.Scan walking a whole 40 KiB event, what the
// proxy did to every backend frame before frame.ScanHead (for comparison;
// not a budget line).
func BenchmarkFullScan(b *testing.B) {
	for _, bb := range routeBodies()[1:] {
		b.Run(bb.name, func(b *testing.B) {
			var m frame.Meta
			b.SetBytes(int64(len(bb.body)))
			b.ReportAllocs()
			for b.Loop() {
				if frame.Scan(bb.body, &m) != nil {
					b.Fatal("scan failed")
				}
			}
		})
	}
}

func TestMicroBodies(t *testing.T) {
	ring := testRing(t)
	for _, bb := range routeBodies() {
		if !json.Valid(bb.body) {
			t.Fatalf("%s is not valid JSON", bb.name)
		}
		if strings.Contains(bb.name, "40KiB") && (len(bb.body) < 40<<10 || len(bb.body) > 41<<10) {
			t.Errorf("%s is %d bytes", bb.name, len(bb.body))
		}
		var m frame.Meta
		if err := frame.Scan(bb.body, &m); err != nil || string(m.SessionID.Of(bb.body)) != sessionID {
			t.Fatalf("%s: Scan = %+v, %v", bb.name, m, err)
		}
		if ring.Lookup(m.SessionID.Of(bb.body)) == nil {
			t.Fatalf("%s: no backend", bb.name)
		}
	}
	if n := testing.AllocsPerRun(100, func() { routeKey(sessionSend, false, ring) }); n != 0 {
		t.Errorf("route key + lookup allocates %v times", n)
	}
}

var sink *router.Backend

// routeKey is what the proxy does to route a frame: scan for the session
// ID, then look its owner up on the ring. A client's frame is scanned whole
// (frame.Scan); a backend's (fromBackend) with frame.ScanHead, as
// internal/proxy reads them: an event is trusted past its type.
func routeKey(body []byte, fromBackend bool, ring *router.Ring) *router.Backend {
	var m frame.Meta
	var err error
	if fromBackend {
		err = frame.ScanHead(body, &m)
	} else {
		err = frame.Scan(body, &m)
	}
	if err != nil || m.SessionID.Len() == 0 {
		return nil
	}
	return ring.Lookup(m.SessionID.Of(body))
}

// BenchmarkRouteKey is the route key extraction (frame.Scan) and the ring
// lookup on one frame. Budget: at most 1 µs and no allocation per frame.
func BenchmarkRouteKey(b *testing.B) {
	ring := testRing(b)
	for _, bb := range routeBodies() {
		b.Run(bb.name, func(b *testing.B) {
			b.SetBytes(int64(len(bb.body)))
			b.ReportAllocs()
			for b.Loop() {
				sink = routeKey(bb.body, bb.fromBackend, ring)
			}
			if sink == nil {
				b.Fatal("no backend")
			}
		})
	}
}

// BenchmarkRingLookup is the ring lookup alone (the route key already found).
func BenchmarkRingLookup(b *testing.B) {
	ring := testRing(b)
	key := []byte(sessionID)
	b.ReportAllocs()
	for b.Loop() {
		sink = ring.Lookup(key)
	}
}

// BenchmarkIDRewrite is the proxy's id rewrite of a passing frame: scan it
// for the id span, then write it framed with another id (the client's for a
// response, a proxy-chosen one for a request) and flush, into io.Discard.
func BenchmarkIDRewrite(b *testing.B) {
	const evHead = `{"jsonrpc":"2.0","method":"session.event","params":`
	big := append([]byte(`{"jsonrpc":"2.0","id":7,"method":"userInput.request","params":`), snapshotEvent(40 << 10)[len(evHead):]...)
	for _, bb := range []struct {
		name string
		body []byte
	}{{"response", response}, {"request-40KiB", big}} {
		b.Run(bb.name, func(b *testing.B) {
			w := frame.NewWriter(io.Discard)
			id := []byte("1234567")
			var m frame.Meta
			b.SetBytes(int64(len(bb.body)))
			b.ReportAllocs()
			for b.Loop() {
				if err := frame.Scan(bb.body, &m); err != nil || m.ID.Len() == 0 {
					b.Fatal("no id", err)
				}
				if err := w.WriteWithID(bb.body, int(m.ID.Start), int(m.ID.End), id); err != nil {
					b.Fatal(err)
				}
				if err := w.Flush(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// loopReader serves the same bytes forever.
type loopReader struct {
	data []byte
	off  int
}

func (r *loopReader) Read(p []byte) (int, error) {
	n := copy(p, r.data[r.off:])
	r.off = (r.off + n) % len(r.data)
	return n, nil
}

// BenchmarkHop is the user-space work of one frame through the proxy,
// socket I/O aside: read it from a framed stream, scan it, look its session
// up on the ring, write it out with a new id and flush.
func BenchmarkHop(b *testing.B) {
	ring := testRing(b)
	for _, bb := range routeBodies() {
		b.Run(bb.name, func(b *testing.B) {
			var stream []byte
			for range 4 {
				stream = fmt.Appendf(stream, "Content-Length: %d\r\n\r\n%s", len(bb.body), bb.body)
			}
			r := frame.NewReader(&loopReader{data: stream}, nil, frame.Limits{})
			w := frame.NewWriter(io.Discard)
			id := []byte("88")
			var m frame.Meta
			b.SetBytes(int64(len(bb.body)))
			b.ReportAllocs()
			for b.Loop() {
				buf, err := r.Read()
				if err != nil {
					b.Fatal(err)
				}
				if err := frame.Scan(buf.B, &m); err != nil {
					b.Fatal(err)
				}
				sink = ring.Lookup(m.SessionID.Of(buf.B))
				if m.ID.Len() > 0 {
					err = w.WriteWithID(buf.B, int(m.ID.Start), int(m.ID.End), id)
				} else {
					err = w.Write(buf.B)
				}
				if err == nil {
					err = w.Flush()
				}
				buf.Release()
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
