package proxy

import (
	"encoding/json"
	"net"
	"testing"
	"time"

	"github.com/rpcproxy/rpcproxy/internal/frame"
	"github.com/rpcproxy/rpcproxy/internal/router"
)

// rawBackend answers the handshake and records every other frame it gets,
// answering nothing: a window on what the proxy sends upstream.
func rawBackend(t *testing.T) (addr string, frames chan message) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	frames = make(chan message, 64)
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close() // the proxy closing its upstream ends the read below
		r, w := frame.NewReader(conn, nil, frame.Limits{}), frame.NewWriter(conn)
		for {
			buf, err := r.Read()
			if err != nil {
				return
			}
			var m message
			json.Unmarshal(buf.B, &m)
			buf.Release()
			if m.Method == "connect" {
				w.Write(responseBody(m.ID, json.RawMessage(`{"ok":true,"protocolVersion":3,"version":"1.0.102"}`), nil))
				w.Flush()
				continue
			}
			frames <- m
		}
	}()
	return ln.Addr().String(), frames
}

// A client's $/cancelRequest reaches the backend naming the request by the
// id the proxy gave it upstream.
func TestCancelRequestIsTranslated(t *testing.T) {
	addr, frames := rawBackend(t)
	table := router.NewTable(router.RingConfig{})
	table.Set([]*router.Backend{{Name: addr, Addr: addr}})
	srv := New(Config{}, table, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	cl := dialClient(t, ln.Addr().String())
	cl.mustCall("connect", map[string]any{}, nil)
	cl.raw(`{"jsonrpc":"2.0","id":"client-77","method":"session.send","params":{"sessionId":"s1","prompt":"slow"}}`)
	var sent message
	select {
	case sent = <-frames:
	case <-time.After(5 * time.Second):
		t.Fatal("request not forwarded")
	}
	if string(sent.ID) == `"client-77"` {
		t.Fatal("the client's id went upstream unrewritten")
	}
	cl.raw(`{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":"client-77"}}`)
	select {
	case m := <-frames:
		var p struct {
			ID json.RawMessage `json:"id"`
		}
		json.Unmarshal(m.Params, &p)
		if m.Method != "$/cancelRequest" || string(p.ID) != string(sent.ID) {
			t.Fatalf("cancel forwarded as %s %s, want the upstream id %s", m.Method, m.Params, sent.ID)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("cancel not forwarded")
	}
}
