package jsonrpc

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/rpcproxy/rpcproxy/internal/frame"
)

const testTimeout = 10 * time.Second

// scriptedPeer is the server side of one loopback connection, driven by
// the test frame by frame.
type scriptedPeer struct {
	t    *testing.T
	conn net.Conn
	r    *frame.Reader
	w    *frame.Writer
}

// pair returns a Conn dialled to a fresh loopback listener and the peer
// that accepted it.
func pair(t *testing.T, cfg Config) (*Conn, *scriptedPeer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- nc
	}()
	c, err := Dial(ln.Addr().String(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	nc := <-accepted
	if nc == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { nc.Close() })
	return c, &scriptedPeer{t: t, conn: nc, r: frame.NewReader(nc, nil, frame.Limits{}), w: frame.NewWriter(nc)}
}

func (p *scriptedPeer) send(body string) {
	p.t.Helper()
	if err := p.w.Write([]byte(body)); err != nil {
		p.t.Fatal(err)
	}
	if err := p.w.Flush(); err != nil {
		p.t.Fatal(err)
	}
}

func (p *scriptedPeer) read() Message {
	p.t.Helper()
	p.conn.SetReadDeadline(time.Now().Add(testTimeout))
	buf, err := p.r.Read()
	if err != nil {
		p.t.Fatalf("peer read: %v", err)
	}
	defer buf.Release()
	var m Message
	if err := json.Unmarshal(buf.B, &m); err != nil {
		p.t.Fatalf("peer got %q: %v", buf.B, err)
	}
	return m
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

type callResult struct {
	result json.RawMessage
	err    error
}

func goCall(t *testing.T, c *Conn, method string, params any) chan callResult {
	ch := make(chan callResult, 1)
	ctx := testCtx(t)
	go func() {
		r, err := c.Call(ctx, method, params)
		ch <- callResult{r, err}
	}()
	return ch
}

func waitResult(t *testing.T, ch chan callResult) callResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(testTimeout):
		t.Fatal("call did not return")
	}
	return callResult{}
}

// Answers that come back in another order than the calls went out reach
// their own callers: the match is by id, not by order.
func TestConnMatchesAnswersByID(t *testing.T) {
	c, p := pair(t, Config{})
	a := goCall(t, c, "a", map[string]int{"n": 1})
	first := p.read()
	b := goCall(t, c, "b", nil)
	second := p.read()
	if first.Method != "a" || string(first.Params) != `{"n":1}` || second.Method != "b" || second.Params != nil {
		t.Fatalf("peer read %+v then %+v", first, second)
	}
	p.send(`{"jsonrpc":"2.0","id":` + string(second.ID) + `,"result":"for b"}`)
	p.send(`{"jsonrpc":"2.0","id":` + string(first.ID) + `,"result":"for a"}`)
	if r := waitResult(t, a); r.err != nil || string(r.result) != `"for a"` {
		t.Fatalf("a = %s, %v", r.result, r.err)
	}
	if r := waitResult(t, b); r.err != nil || string(r.result) != `"for b"` {
		t.Fatalf("b = %s, %v", r.result, r.err)
	}
}

func TestConnReturnsThePeersRefusal(t *testing.T) {
	c, p := pair(t, Config{})
	ch := goCall(t, c, "nope", nil)
	req := p.read()
	p.send(`{"jsonrpc":"2.0","id":` + string(req.ID) + `,"error":{"code":-32601,"message":"Method not found"}}`)
	r := waitResult(t, ch)
	var re *Error
	if !errors.As(r.err, &re) || re.Code != -32601 || re.Message != "Method not found" {
		t.Fatalf("err = %v, want the peer's -32601", r.err)
	}
}

// Notifications, the peer's requests and answers to no pending call come
// out of Next in the order they were sent; Reply answers a request.
func TestConnNextInOrderAndReply(t *testing.T) {
	c, p := pair(t, Config{})
	p.send(`{"jsonrpc":"2.0","method":"session.event","params":{"n":1}}`)
	p.send(`{"jsonrpc":"2.0","id":"q1","method":"userInput.request","params":{}}`)
	p.send(`{"jsonrpc":"2.0","id":99,"result":{}}`)
	p.send(`{"jsonrpc":"2.0","method":"session.event","params":{"n":2}}`)
	var got []string
	for range 4 {
		m, err := c.Next(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, m.Method+string(m.ID)+string(m.Params))
		if m.IsRequest() {
			if err := c.Reply(m.ID, map[string]string{"answer": "blue"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := []string{`session.event{"n":1}`, `userInput.request"q1"{}`, `99`, `session.event{"n":2}`}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("Next gave %q, want %q", got, want)
		}
	}
	reply := p.read()
	if string(reply.ID) != `"q1"` || string(reply.Result) != `{"answer":"blue"}` {
		t.Fatalf("peer got reply %+v", reply)
	}
}

func TestConnRequestHandler(t *testing.T) {
	c, p := pair(t, Config{})
	c.SetRequestHandler(func(method string, params json.RawMessage) (any, *Error) {
		if method == "refuse" {
			return nil, &Error{Code: -32000, Message: "no"}
		}
		return map[string]string{"echo": string(params)}, nil
	})
	p.send(`{"jsonrpc":"2.0","id":1,"method":"echo","params":7}`)
	p.send(`{"jsonrpc":"2.0","id":2,"method":"refuse"}`)
	if m := p.read(); string(m.ID) != "1" || string(m.Result) != `{"echo":"7"}` {
		t.Fatalf("reply to echo: %+v", m)
	}
	if m := p.read(); string(m.ID) != "2" || m.Error == nil || m.Error.Code != -32000 {
		t.Fatalf("reply to refuse: %+v", m)
	}
}

// Expect takes the answer to a request the caller framed itself.
func TestConnExpectRawRequest(t *testing.T) {
	c, p := pair(t, Config{})
	ch := make(chan Message, 1)
	c.Expect(json.RawMessage(`"x1"`), ch)
	if err := c.WriteRaw([]byte(`{"jsonrpc":"2.0","id":"x1","method":"ping"}`)); err != nil {
		t.Fatal(err)
	}
	req := p.read()
	p.send(`{"jsonrpc":"2.0","id":` + string(req.ID) + `,"result":"pong"}`)
	select {
	case m := <-ch:
		if string(m.Result) != `"pong"` {
			t.Fatalf("got %+v", m)
		}
	case <-time.After(testTimeout):
		t.Fatal("no answer")
	}
}

// A frame that is not JSON ends the connection: a pending call returns
// ErrClosed wrapping ErrBadMessage, and so does every later call.
func TestConnEndsOnBadMessage(t *testing.T) {
	c, p := pair(t, Config{})
	ch := goCall(t, c, "ping", nil)
	p.read()
	p.send(`{not json`)
	r := waitResult(t, ch)
	if !errors.Is(r.err, ErrClosed) || !errors.Is(r.err, ErrBadMessage) {
		t.Fatalf("pending call: err = %v, want ErrClosed and ErrBadMessage", r.err)
	}
	if _, err := c.Call(testCtx(t), "ping", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("later call: err = %v, want ErrClosed", err)
	}
	if _, err := c.Next(testCtx(t)); !errors.Is(err, ErrBadMessage) {
		t.Fatalf("Next: err = %v, want ErrBadMessage", err)
	}
}

// A call given up by its context forgets its id: its late answer is a
// stray one, handed to Next.
func TestConnCallContextForgetsID(t *testing.T) {
	c, p := pair(t, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan error, 1)
	go func() {
		_, err := c.Call(ctx, "slow", nil)
		ch <- err
	}()
	req := p.read()
	cancel()
	select {
	case err := <-ch:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("call ignored its context")
	}
	p.send(`{"jsonrpc":"2.0","id":` + string(req.ID) + `,"result":"late"}`)
	m, err := c.Next(testCtx(t))
	if err != nil || string(m.Result) != `"late"` {
		t.Fatalf("Next = %+v, %v; want the late answer", m, err)
	}
}

// Close stops a reader that waits for room in a full queue, and is safe
// to call twice.
func TestConnCloseWhileQueueFull(t *testing.T) {
	c, p := pair(t, Config{Queue: 1})
	// All three frames in one write, so the reader has the second at hand
	// (no read on the socket) when it finds the queue full.
	for range 3 {
		p.w.Write([]byte(`{"jsonrpc":"2.0","method":"note"}`))
	}
	if err := p.w.Flush(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(testTimeout)
	for len(c.incoming) < 1 {
		if time.Now().After(deadline) {
			t.Fatal("queue never filled")
		}
		time.Sleep(time.Millisecond)
	}
	closed := make(chan struct{})
	go func() {
		c.Close()
		c.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(testTimeout):
		t.Fatal("Close did not return")
	}
	select {
	case <-c.Done():
	default:
		t.Fatal("Done not closed after Close")
	}
	if err := c.Notify("x", nil); err == nil {
		t.Fatal("Notify after Close succeeded")
	}
}
