package proxy

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/rpcproxy/rpcproxy/internal/frame"
)

// TestSendAllocatesNothing: passing a frame to a client, id rewritten or
// not, allocates nothing (an id held in the frame's outFrame once escaped
// with it, one allocation per frame).
func TestSendAllocatesNothing(t *testing.T) {
	c := &clientConn{w: frame.NewWriter(io.Discard)}
	body := []byte(`{"jsonrpc":"2.0","id":12,"result":{"messageId":"81e9b882-8838-4be1-8ed9-a014c444ece0"}}`)
	var m frame.Meta
	if err := frame.Scan(body, &m); err != nil {
		t.Fatal(err)
	}
	client := makeRawID([]byte(`"5c1e4f0a-9a3b-4c52-8d7e-2f1b6a0c9d11"`))
	send := func(rewrite bool) {
		buf := frame.Get(len(body))
		buf.B = append(buf.B[:0], body...)
		f := outFrame{buf: buf}
		if rewrite {
			f.idStart, f.idEnd, f.id = m.ID.Start, m.ID.End, client
		}
		if !c.send(f, false) {
			t.Fatal("send failed")
		}
	}
	for _, rewrite := range []bool{false, true} {
		send(rewrite) // warm the pools
		if n := testing.AllocsPerRun(200, func() { send(rewrite) }); n != 0 {
			t.Errorf("send (id rewritten: %v) allocates %v times per frame", rewrite, n)
		}
	}
}

// TestTurnMarkedOnlyWhenTracked: a session.send that loses the race with
// its upstream's failure is refused by track and must not leave the session
// "in a turn" (fail would then end, with a session.idle, a turn that was
// never sent; the failover bench saw that idle end the client's next turn).
func TestTurnMarkedOnlyWhenTracked(t *testing.T) {
	s := &session{}
	u := &upstream{closed: true}
	if _, err := u.track(pendingReq{turn: s}); err == nil {
		t.Fatal("track on a closed upstream succeeded")
	}
	if s.inTurn.Load() {
		t.Fatal("a refused send left the session in a turn")
	}
}

// TestSharedSendAllocatesNothing: with shared upstreams a frame to a
// client that reads is written straight to its socket, without blocking,
// copying into a queue or starting a goroutine: nothing is allocated.
func TestSharedSendAllocatesNothing(t *testing.T) {
	if raceDetector {
		t.Skip("the race detector allocates in the raw write; make unit runs this without -race")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	go io.Copy(io.Discard, peer)
	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := &clientConn{}
	c.ob = newOutBuffer(c, conn, 8<<20, time.Second)
	if c.ob.raw == nil {
		t.Fatal("a TCP connection gave no raw connection")
	}
	c.w = frame.NewWriter(c.ob)
	body := []byte(`{"jsonrpc":"2.0","id":12,"result":{"messageId":"81e9b882-8838-4be1-8ed9-a014c444ece0"}}`)
	var m frame.Meta
	if err := frame.Scan(body, &m); err != nil {
		t.Fatal(err)
	}
	client := makeRawID([]byte(`"5c1e4f0a-9a3b-4c52-8d7e-2f1b6a0c9d11"`))
	send := func() {
		buf := frame.Get(len(body))
		buf.B = append(buf.B[:0], body...)
		if !c.send(outFrame{buf: buf, idStart: m.ID.Start, idEnd: m.ID.End, id: client}, true) {
			t.Fatal("send failed")
		}
	}
	send()
	if n := testing.AllocsPerRun(200, send); n != 0 {
		t.Errorf("shared send allocates %v times per frame", n)
	}
	c.wmu.Lock()
	queued := c.ob.draining || len(c.ob.pending) > 0
	c.wmu.Unlock()
	if queued {
		t.Error("frames to a client that reads were queued, not written")
	}
}
