package main

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rpcproxy/rpcproxy/bench/loadgen"
	"github.com/rpcproxy/rpcproxy/internal/router"
)

func TestHAProxyConfig(t *testing.T) {
	cfg := haproxyConfig("127.0.0.1:9000", []string{"127.0.0.1:1", "127.0.0.1:2"}, 20000)
	for _, want := range []string{"maxconn 9800\n", "mode tcp", "bind 127.0.0.1:9000", "balance roundrobin",
		"server cli0 127.0.0.1:1\n", "server cli1 127.0.0.1:2\n"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("config lacks %q:\n%s", want, cfg)
		}
	}
	if !strings.Contains(haproxyConfig("a:1", nil, 0), "maxconn 60000") {
		t.Error("no limit known: maxconn should be the default")
	}
}

func TestIdleCount(t *testing.T) {
	for _, c := range []struct {
		want   int
		nofile uint64
		fds    int
		got    int
	}{{10000, 0, 2, 10000}, {10000, 20000, 2, 9744}, {10000, 20000, 1, 10000}, {20000, 20000, 1, 19488}, {10000, 1 << 20, 2, 10000}, {100, 300, 2, 0}} {
		if got := idleCount(c.want, c.nofile, c.fds); got != c.got {
			t.Errorf("idleCount(%d, %d, %d) = %d, want %d", c.want, c.nofile, c.fds, got, c.got)
		}
	}
}

// TestStubBackend holds idle SDK connections on the stub: it answers the
// handshake and session.create and pushes nothing.
func TestStubBackend(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go serveStub(nc)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	set, err := loadgen.OpenIdle(ctx, loadgen.Config{Targets: []string{ln.Addr().String()}, Conns: 5, RunID: "stub"})
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	if set.Alive() != 5 {
		t.Fatalf("%d connections alive, want 5", set.Alive())
	}
	if err := tryHandshake(ctx, ln.Addr().String()); err != nil {
		t.Fatalf("connect + ping: %v", err)
	}
	got := set.Received()
	if got.Lifecycle != 0 || got.ErrorResponses != 0 || got.FramesIn != 10 {
		t.Errorf("traffic %+v: want 10 answers, nothing pushed", got)
	}
}

func TestParseInts(t *testing.T) {
	if v, err := loadgen.ParseSizes("300, 4096,40960"); err != nil || len(v) != 3 || v[2] != 40960 {
		t.Fatalf("parseInts = %v, %v", v, err)
	}
	for _, bad := range []string{"", "1,x", "-5", "0"} {
		if _, err := loadgen.ParseSizes(bad); err == nil {
			t.Errorf("loadgen.ParseSizes(%q) succeeded", bad)
		}
	}
}

// TestSpreadIDs checks that session i of every connection lands on backend
// i of the ring `rpcproxy serve --backend ADDR…` builds (names = addresses,
// default ring settings), so a spread client holds a session on each.
func TestSpreadIDs(t *testing.T) {
	addrs := []string{"127.0.0.1:40001", "127.0.0.1:40002", "127.0.0.1:40003"}
	ids, err := spreadIDs(addrs, "t")
	if err != nil {
		t.Fatal(err)
	}
	bs := make([]*router.Backend, len(addrs))
	for i, a := range addrs {
		bs[i] = &router.Backend{Name: a, Addr: a}
	}
	ring, err := router.NewRing(bs, router.RingConfig{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for conn := range 200 {
		for i := range addrs {
			id := ids(conn, i)
			if seen[id] {
				t.Fatalf("id %q twice", id)
			}
			seen[id] = true
			if got := ring.Lookup([]byte(id)).Name; got != addrs[i] {
				t.Fatalf("connection %d session %d: %q lands on %s, want %s", conn, i, id, got, addrs[i])
			}
		}
		if w := warmIDs(ids)(conn, 0); seen[w] || ring.Lookup([]byte(w)).Name != addrs[0] {
			t.Fatalf("warm-up id %q collides or lands elsewhere", w)
		}
	}
}
