package proxy

import (
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/rpcproxy/rpcproxy/internal/frame"
	"github.com/rpcproxy/rpcproxy/internal/health"
	"github.com/rpcproxy/rpcproxy/internal/router"
	"github.com/rpcproxy/rpcproxy/internal/testlog"
)

// scriptedBackend is a minimal CLI stand-in whose timing a test sets: it
// answers connect, ping and session.create, and answers session.list after
// listDelay with, in the same write, a session.event for every session it
// holds ahead of the answer.
type scriptedBackend struct {
	ln        net.Listener
	listDelay time.Duration
	wg        sync.WaitGroup
}

func startScripted(t *testing.T, listDelay time.Duration) *scriptedBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &scriptedBackend{ln: ln, listDelay: listDelay}
	var conns sync.Map
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Store(conn, true)
			b.wg.Add(1)
			go func() { defer b.wg.Done(); b.serve(conn) }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		conns.Range(func(k, _ any) bool { k.(net.Conn).Close(); return true })
		b.wg.Wait()
	})
	return b
}

func (b *scriptedBackend) serve(conn net.Conn) {
	defer conn.Close()
	r := frame.NewReader(conn, nil, frame.Limits{})
	var sessions []string
	framed := func(body string) string { return "Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body }
	answer := func(id json.RawMessage, result string) string {
		return framed(`{"jsonrpc":"2.0","id":` + string(id) + `,"result":` + result + `}`)
	}
	for {
		buf, err := r.Read()
		if err != nil {
			return
		}
		var req struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
			Params struct {
				SessionID string `json:"sessionId"`
			} `json:"params"`
		}
		err = json.Unmarshal(buf.B, &req)
		buf.Release()
		if err != nil || req.ID == nil {
			continue
		}
		var out string
		switch req.Method {
		case "connect":
			out = answer(req.ID, `{"ok":true,"protocolVersion":3,"version":"scripted"}`)
		case "session.create":
			sessions = append(sessions, req.Params.SessionID)
			out = answer(req.ID, `{"sessionId":`+strconv.Quote(req.Params.SessionID)+`}`)
		case "session.list":
			time.Sleep(b.listDelay)
			for _, sid := range sessions {
				out += framed(`{"jsonrpc":"2.0","method":"session.event","params":{"sessionId":` + strconv.Quote(sid) +
					`,"event":{"type":"test.flush","data":{}}}}`)
			}
			out += answer(req.ID, `{"sessions":[]}`)
		default:
			out = answer(req.ID, `{}`)
		}
		if _, err := conn.Write([]byte(out)); err != nil {
			return
		}
	}
}

// TestFrameAheadOfInternalAnswerIsFlushed: a backend frame for the client
// that arrives in the same read as an answer the proxy keeps for itself (a
// part of a fan-out) must reach the client at once, not wait for the
// fan-out to complete. Backend A answers session.list at once with an
// event of the client's session ahead of it; backend B answers 2 s later.
func TestFrameAheadOfInternalAnswerIsFlushed(t *testing.T) {
	a, b := startScripted(t, 0), startScripted(t, 2*time.Second)
	log := hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: &testlog.Buffer{}})
	table := router.NewTable(router.RingConfig{})
	checker := health.New(health.Config{Interval: 100 * time.Millisecond, Timeout: 500 * time.Millisecond, Logger: log}, table)
	srv := New(Config{Logger: log, HandshakeTimeout: 2 * time.Second}, table, checker)
	for _, s := range []*scriptedBackend{a, b} {
		addr := s.ln.Addr().String()
		if err := checker.Add(&router.Backend{Name: addr, Addr: addr}); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { srv.Serve(ln); close(done) }()
	t.Cleanup(func() { srv.Close(); <-done; checker.Close() })
	eventually(t, 5*time.Second, "both backends up", func() bool { return table.Ring().Len() == 2 })

	// A session the ring gives to A.
	var sid string
	for i := 0; ; i++ {
		sid = fmt.Sprintf("flush-%d", i)
		if table.Ring().Lookup([]byte(sid)).Addr == a.ln.Addr().String() {
			break
		}
	}
	cl := dialClient(t, ln.Addr().String())
	cl.mustCall("connect", map[string]any{}, nil)
	cl.mustCall("session.create", map[string]any{"sessionId": sid}, nil)

	list := cl.start("session.list", map[string]any{})
	select {
	case m := <-cl.sessionEvents(sid):
		var p eventParams
		if err := json.Unmarshal(m.Params, &p); err != nil || p.Event.Type != "test.flush" {
			t.Fatalf("event %s", m.Params)
		}
	case <-list:
		t.Fatal("the list answer came before the event it followed")
	case <-time.After(time.Second):
		t.Fatal("the event ahead of a fan-out part was held back until the fan-out completed")
	}
	select {
	case <-list:
	case <-time.After(5 * time.Second):
		t.Fatal("no session.list answer")
	}
}
