package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"testing"
	"time"
)

// rawConn speaks Content-Length framed JSON-RPC by hand, to send what no
// SDK would.
type rawConn struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &rawConn{t: t, conn: conn, r: bufio.NewReader(conn)}
}

type rawReply struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// call sends body and returns the first response (notifications skipped).
func (c *rawConn) call(body string) rawReply {
	c.t.Helper()
	_ = c.conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := fmt.Fprintf(c.conn, "Content-Length: %d\r\n\r\n%s", len(body), body); err != nil {
		c.t.Fatalf("write: %v", err)
	}
	for {
		hdr, err := textproto.NewReader(c.r).ReadMIMEHeader()
		if err != nil {
			c.t.Fatalf("reply to %s: %v", body, err)
		}
		n, err := strconv.Atoi(hdr.Get("Content-Length"))
		if err != nil {
			c.t.Fatalf("reply header %v", hdr)
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(c.r, b); err != nil {
			c.t.Fatalf("reply body: %v", err)
		}
		var m rawReply
		if err := json.Unmarshal(b, &m); err != nil {
			c.t.Fatalf("reply %s: %v", b, err)
		}
		if m.Method == "" {
			return m
		}
	}
}

// Hostile input through the proxy to real CLI servers: an escaped
// runtime.shutdown is refused like the plain one (every server still
// answers after it), and a frame that is not valid JSON is answered by the
// proxy with -32700 and its id (the CLI would answer with id null), the
// connection staying open.
func TestHostileInputThroughProxy(t *testing.T) {
	c := cluster(t)
	if c.Direct() {
		t.Skip("needs the proxy: the escaped shutdown would stop the CLI")
	}
	conn := dialRaw(t, c.Target)
	if m := conn.call(`{"jsonrpc":"2.0","id":1,"method":"connect","params":{}}`); m.Error != nil {
		t.Fatalf("connect: %+v", m.Error)
	}
	m := conn.call(`{"jsonrpc":"2.0","id":2,"method":"runtime\u002eshutdown","params":{}}`)
	if m.Error == nil || m.Error.Code != -32601 {
		t.Fatalf("escaped runtime.shutdown: %s %+v", m.Result, m.Error)
	}
	m = conn.call(`{"jsonrpc":"2.0","id":5,"method":"ping","params":[}}`)
	if m.Error == nil || m.Error.Code != -32700 || string(m.ID) != "5" {
		t.Fatalf("invalid JSON: id %s %+v", m.ID, m.Error)
	}
	for _, b := range c.Backends {
		direct := dialRaw(t, b.Addr)
		if m := direct.call(`{"jsonrpc":"2.0","id":1,"method":"ping","params":{}}`); m.Error != nil {
			t.Fatalf("backend %s after the escaped shutdown: %+v", b.Addr, m.Error)
		}
	}
	if m := conn.call(`{"jsonrpc":"2.0","id":6,"method":"ping","params":{}}`); m.Error != nil {
		t.Fatalf("ping after bad input: %+v", m.Error)
	}
}
