package fakecli

import (
	"bytes"
	"fmt"
	"net"
	"testing"

	"github.com/rpcproxy/rpcproxy/internal/frame"
)

// BenchmarkTurn measures whole turns through one loopback connection: a
// session.send and every frame of the turn up to session.idle, read with the
// frame package (no JSON decoding on the client side).
func BenchmarkTurn(b *testing.B) {
	for _, bc := range []struct {
		name   string
		events int
		sizes  []int
	}{
		{"default", 0, nil},
		{"bench-30ev-300B-40KiB", 30, []int{300, 1 << 10, 4 << 10, 16 << 10, 40 << 10}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := startServer(b, Config{EventsPerTurn: bc.events, EventSizes: bc.sizes})
			c := connected(b, s)
			create(b, c, "bench")
			c.Close()

			nc, err := net.Dial("tcp", s.Addr())
			if err != nil {
				b.Fatal(err)
			}
			defer nc.Close()
			w := frame.NewWriter(nc)
			r := frame.NewReader(nc, nil, frame.Limits{})
			send := func(body string) {
				if err := w.Write([]byte(body)); err != nil {
					b.Fatal(err)
				}
				if err := w.Flush(); err != nil {
					b.Fatal(err)
				}
			}
			send(`{"jsonrpc":"2.0","id":0,"method":"session.resume","params":{"sessionId":"bench"}}`)
			idle := []byte(`"type":"session.idle"`)
			var bytesRead int64
			readUntilIdle := func() {
				var m frame.Meta
				for {
					buf, err := r.Read()
					if err != nil {
						b.Fatal(err)
					}
					bytesRead += int64(len(buf.B))
					if err := frame.Scan(buf.B, &m); err != nil {
						b.Fatal(err)
					}
					done := m.Kind == frame.KindNotification && bytes.Contains(buf.B, idle)
					buf.Release()
					if done {
						return
					}
				}
			}
			send(`{"jsonrpc":"2.0","id":0,"method":"session.send","params":{"sessionId":"bench","prompt":"warm-up"}}`)
			readUntilIdle()
			b.ResetTimer()
			bytesRead = 0
			for i := range b.N {
				send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"session.send","params":{"sessionId":"bench","prompt":"p"}}`, i+1))
				readUntilIdle()
			}
			b.StopTimer()
			b.SetBytes(bytesRead / int64(b.N))
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "turns/s")
		})
	}
}
