package membership

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/rpcproxy/rpcproxy/internal/testlog"
)

// member is a backend member gossiping from gossipIP, claiming cli.
func member(name, gossipIP, cli string, seq uint64) Member {
	m := Member{Name: name, GossipAddr: gossipIP + ":7946", claimSeq: seq,
		Meta: Meta{Role: RoleBackend, Addr: cli, Weight: 1, Healthy: true}}
	m.gossipIP = netip.MustParseAddr(gossipIP).Unmap()
	return m
}

func TestAdmit(t *testing.T) {
	t.Parallel()
	lan := []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")}
	draining := member("b", "10.0.0.6", "10.0.0.5:4321", 2)
	draining.Meta.Draining, draining.Meta.Healthy, draining.Meta.Weight = true, false, MaxWeight
	tests := []struct {
		name    string
		members []Member
		allowed []netip.Prefix
		want    []string // name=addr of admitted backends
		refused []refusalKind
	}{
		{"own gossip IP", []Member{member("a", "10.0.0.5", "10.0.0.5:4321", 1)}, nil, []string{"a=10.0.0.5:4321"}, nil},
		{"loopback on one host", []Member{member("a", "127.0.0.1", "127.0.0.1:4321", 1)}, nil, []string{"a=127.0.0.1:4321"}, nil},
		{"ipv6 loopback", []Member{member("a", "::1", "[::1]:4321", 1)}, nil, []string{"a=[::1]:4321"}, nil},
		{"v4-mapped CLI address", []Member{member("a", "10.0.0.5", "[::ffff:10.0.0.5]:4321", 1)}, nil, []string{"a=10.0.0.5:4321"}, nil},
		{"other host", []Member{member("a", "10.0.0.5", "10.0.0.6:4321", 1)}, nil, nil, []refusalKind{refusedAddr}},
		{"other loopback address", []Member{member("a", "127.0.0.2", "127.0.0.1:4321", 1)}, nil, nil, []refusalKind{refusedAddr}},
		{"remote member claims loopback CLI", []Member{member("a", "10.0.0.5", "127.0.0.1:4321", 1)}, nil, nil, []refusalKind{refusedAddr}},
		{"host name", []Member{member("a", "10.0.0.5", "cli.example:4321", 1)}, nil, nil, []refusalKind{refusedAddr}},
		{"unspecified", []Member{member("a", "10.0.0.5", "0.0.0.0:4321", 1)}, nil, nil, []refusalKind{refusedAddr}},
		{"allowed network", []Member{member("a", "10.0.0.5", "10.9.3.4:4321", 1)}, lan, []string{"a=10.9.3.4:4321"}, nil},
		{"outside allowed network", []Member{member("a", "10.0.0.5", "10.8.3.4:4321", 1)}, lan, nil, []refusalKind{refusedAddr}},
		{"long name", []Member{member(strings.Repeat("n", MaxNodeNameLen+1), "10.0.0.5", "10.0.0.5:1", 1)}, nil, nil, []refusalKind{refusedName}},
		{"name with newline", []Member{member("a\nlevel=error", "10.0.0.5", "10.0.0.5:1", 1)}, nil, nil, []refusalKind{refusedName}},
		{"bad metadata", []Member{{Name: "a", MetaErr: ErrInvalidMeta}}, nil, nil, []refusalKind{refusedMeta}},
		{"proxy", []Member{{Name: "p", Meta: proxyMeta}}, nil, nil, nil},
		// b claims a's address (from an allowed network) later: refused, so
		// its draining, unhealthy, heavy claim changes nothing.
		{"second claimant", []Member{member("a", "10.0.0.5", "10.0.0.5:4321", 1), draining},
			[]netip.Prefix{netip.MustParsePrefix("10.0.0.5/32")}, []string{"a=10.0.0.5:4321"}, []refusalKind{refusedDuplicate}},
		// The first claim wins whatever the names' order.
		{"second claimant sorts first", []Member{member("z", "10.0.0.5", "10.0.0.5:4321", 1), member("a", "10.0.0.5", "10.0.0.5:4321", 7)},
			nil, []string{"z=10.0.0.5:4321"}, []refusalKind{refusedDuplicate}},
		{"same address spelled differently", []Member{member("a", "10.0.0.5", "10.0.0.5:4321", 1), member("b", "10.0.0.5", "[::ffff:10.0.0.5]:4321", 2)},
			nil, []string{"a=10.0.0.5:4321"}, []refusalKind{refusedDuplicate}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bs, refused := admit(tt.members, tt.allowed)
			var got []string
			for _, b := range bs {
				got = append(got, b.Name+"="+b.Addr)
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("admitted %v, want %v", got, tt.want)
			}
			var kinds []refusalKind
			for _, r := range refused {
				kinds = append(kinds, r.kind)
			}
			if len(kinds) != len(tt.refused) || (len(kinds) > 0 && kinds[0] != tt.refused[0]) {
				t.Errorf("refused %+v, want kinds %v", refused, tt.refused)
			}
			if tt.name == "second claimant" && (bs[0].Draining || !bs[0].Healthy || bs[0].Weight != 1) {
				t.Errorf("second claimant changed the first's state: %+v", bs[0])
			}
		})
	}
}

func TestAdmitLimit(t *testing.T) {
	t.Parallel()
	var members []Member
	for i := MaxBackends + 5; i > 0; i-- { // later claims first in the slice
		members = append(members, member(fmt.Sprintf("m%05d", i), "10.0.0.5", fmt.Sprintf("10.0.0.5:%d", i), uint64(i)))
	}
	bs, refused := admit(members, nil)
	if len(bs) != MaxBackends || len(refused) != 5 {
		t.Fatalf("%d admitted, %d refused; want %d and 5", len(bs), len(refused), MaxBackends)
	}
	for _, r := range refused {
		if r.kind != refusedLimit || r.name <= fmt.Sprintf("m%05d", MaxBackends) {
			t.Fatalf("refused %+v; want the latest claims refused for the limit", r)
		}
	}
}

func captureLogger(buf *testlog.Buffer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Level: hclog.Info, Output: buf})
}

// A member gossiping from one address (127.0.0.2) and advertising a CLI
// server on another (127.0.0.1) is not routed to, and is logged once however
// often it updates; the proxy's AllowedBackends admits it.
func TestBackendOffHostRefused(t *testing.T) {
	t.Parallel()
	for _, allowed := range []bool{false, true} {
		var logs testlog.Buffer
		rec := newRecorder()
		pc := testConfig("proxy", ProfileFast, proxyMeta)
		pc.Logger = captureLogger(&logs)
		if allowed {
			pc.AllowedBackends = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		}
		p := startNode(t, pc, rec)

		hc := testConfig("elsewhere", ProfileFast, backendMeta(1), p.Addr())
		hc.BindAddr = "127.0.0.2:0"
		h := startNode(t, hc, nil)
		for i := 2; i <= 4; i++ {
			m := backendMeta(1)
			m.Weight = i
			if err := h.UpdateMeta(m); err != nil {
				t.Fatal(err)
			}
		}
		eventually(t, 5*time.Second, "proxy sees the last update", func() bool {
			for _, m := range p.Members() {
				if m.Name == "elsewhere" && m.Meta.Weight == 4 {
					return true
				}
			}
			return false
		})
		// A later, well-placed backend: once the proxy delivers it, it has
		// judged the earlier member too.
		startNode(t, testConfig("home", ProfileFast, backendMeta(2), p.Addr()), nil)
		bs, _ := rec.wait(t, 5*time.Second, "home admitted", hasBackend("home"))
		if got := findBackend(bs, "elsewhere") != nil; got != allowed {
			t.Fatalf("allowed=%v: off-host member admitted=%v: %+v", allowed, got, bs)
		}
		if n := logCount(&logs, "ignoring cluster member"); allowed && n != 0 || !allowed && n != 1 {
			t.Fatalf("allowed=%v: %d refusal lines, want %d:\n%s", allowed, n, map[bool]int{false: 1}[allowed], logs.String())
		}
	}
}

// A second member claiming another's CLI address cannot change that
// backend's state; when the first leaves, the second takes the address.
func TestDuplicateClaimFirstKeeps(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	p := startNode(t, testConfig("proxy", ProfileFast, proxyMeta), rec)
	owner := startNode(t, testConfig("owner", ProfileFast, backendMeta(1), p.Addr()), nil)
	rec.wait(t, 5*time.Second, "owner admitted", hasBackend("owner"))

	hostile := backendMeta(1) // the owner's CLI address
	hostile.Healthy, hostile.Draining, hostile.Weight = false, true, MaxWeight
	startNode(t, testConfig("a-hostile", ProfileFast, hostile, p.Addr()), nil)
	startNode(t, testConfig("z-later", ProfileFast, backendMeta(2), p.Addr()), nil)
	bs, _ := rec.wait(t, 5*time.Second, "later backend admitted", hasBackend("z-later"))
	if findBackend(bs, "a-hostile") != nil {
		t.Fatalf("second claimant admitted: %+v", bs)
	}
	if b := findBackend(bs, "owner"); b == nil || !b.Healthy || b.Draining || b.Weight != 1 {
		t.Fatalf("owner's backend changed by the second claimant: %+v", bs)
	}
	// The first claim is stable across the owner's own updates.
	m := backendMeta(1)
	m.Weight = 2
	if err := owner.UpdateMeta(m); err != nil {
		t.Fatal(err)
	}
	bs, _ = rec.wait(t, 5*time.Second, "owner's update", func(bs []Backend) bool {
		b := findBackend(bs, "owner")
		return b == nil || b.Weight == 2
	})
	if findBackend(bs, "owner") == nil || findBackend(bs, "a-hostile") != nil {
		t.Fatalf("the owner lost its address by updating its metadata: %+v", bs)
	}

	if err := owner.Close(); err != nil {
		t.Fatal(err)
	}
	bs, _ = rec.wait(t, 5*time.Second, "second claimant takes the address", hasBackend("a-hostile"))
	if b := findBackend(bs, "a-hostile"); b.Addr != backendMeta(1).Addr || !b.Draining {
		t.Fatalf("after the owner left: %+v", bs)
	}
}

// An unkeyed loopback node warns once at start; an insecure one warns at
// start and repeats until it shuts down; a keyed one does not warn. A second
// insecure node is the clock: no sleeps.
func TestUnauthenticatedWarnings(t *testing.T) {
	t.Parallel()
	const (
		loopbackWarning = "gossip is not encrypted or authenticated (no keys); accepted because it is bound to loopback"
		insecureWarning = "INSECURE: gossip is not encrypted or authenticated"
	)
	start := func(name string, keys [][]byte, insecure bool) (*Node, *testlog.Buffer) {
		var logs testlog.Buffer
		c := testConfig(name, ProfileFast, proxyMeta)
		c.Keys, c.Insecure = keys, insecure
		c.Logger = captureLogger(&logs)
		c.insecureWarnEvery = 20 * time.Millisecond
		return startNode(t, c, nil), &logs
	}
	_, keyed := start("keyed", [][]byte{keyOld}, false)
	_, loopback := start("loopback", nil, false)
	insecure, insecureLogs := start("insecure", nil, true)
	_, clock := start("clock", nil, true)
	if logCount(insecureLogs, insecureWarning) < 1 || logCount(loopback, loopbackWarning) != 1 {
		t.Fatalf("no start warnings:\n%s\n%s", insecureLogs.String(), loopback.String())
	}
	eventually(t, 5*time.Second, "the insecure warning repeated", func() bool { return logCount(insecureLogs, insecureWarning) >= 3 })
	if n := logCount(loopback, loopbackWarning); n != 1 {
		t.Fatalf("loopback warning logged %d times, want once", n)
	}
	if n := logCount(keyed, "not encrypted"); n != 0 {
		t.Fatalf("keyed node warned %d times", n)
	}
	insecure.Shutdown()
	after, tick := logCount(insecureLogs, insecureWarning), logCount(clock, insecureWarning)
	eventually(t, 5*time.Second, "three more periods", func() bool { return logCount(clock, insecureWarning) >= tick+3 })
	if logCount(insecureLogs, insecureWarning) != after {
		t.Fatal("the insecure warning repeated after Shutdown")
	}
}

func TestInsecureBindJoinRefused(t *testing.T) {
	t.Parallel()
	// Refused by Validate inside Join, before anything is bound. 192.0.2.1
	// (TEST-NET-1) is on no interface: without the check the bind fails with
	// another error, so this test never opens a non-loopback port.
	c := testConfig("n", ProfileFast, proxyMeta)
	c.BindAddr = "192.0.2.1:0"
	n, err := Join(context.Background(), c)
	if err == nil {
		n.Shutdown()
	}
	if !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("Join on 192.0.2.1 without keys = %v, want ErrUnauthenticated", err)
	}
}

// logCount counts the lines of logs holding substr.
func logCount(logs *testlog.Buffer, substr string) int { return strings.Count(logs.String(), substr) }
