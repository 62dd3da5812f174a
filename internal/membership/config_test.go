package membership

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	good := func() Config {
		c := DefaultConfig()
		c.NodeName = "n1"
		c.Meta = proxyMeta
		return c
	}
	tests := []struct {
		name   string
		change func(*Config)
		ok     bool
	}{
		{"defaults", func(*Config) {}, true},
		{"zero values mean defaults", func(c *Config) {
			*c = Config{NodeName: "n1", Meta: proxyMeta}
		}, true},
		{"all set", func(c *Config) {
			c.BindAddr, c.AdvertiseAddr = "0.0.0.0:7946", "10.1.2.3:0"
			c.Join = []string{"10.1.2.4:7946", "seed.example"}
			c.Keys = [][]byte{keyOld, keyNew}
			c.Profile = ProfileFast
		}, true},
		{"ipv6 bind", func(c *Config) { c.BindAddr = "[::1]:0" }, true},
		// Without keys, only loopback binds start, unless Insecure.
		{"loopback alias without keys", func(c *Config) { c.BindAddr = "127.0.0.2:7946" }, true},
		{"ipv6 loopback without keys", func(c *Config) { c.BindAddr = "[::1]:7946" }, true},
		{"v4-mapped loopback without keys", func(c *Config) { c.BindAddr = "[::ffff:127.0.0.1]:7946" }, true},
		{"all interfaces without keys", func(c *Config) { c.BindAddr = "0.0.0.0:7946" }, false},
		{"ipv6 all interfaces without keys", func(c *Config) { c.BindAddr = "[::]:7946" }, false},
		{"lan address without keys", func(c *Config) { c.BindAddr = "10.1.2.3:7946" }, false},
		{"lan address with keys", func(c *Config) { c.BindAddr, c.Keys = "10.1.2.3:7946", [][]byte{keyOld} }, true},
		{"lan address insecure", func(c *Config) { c.BindAddr, c.Insecure = "10.1.2.3:7946", true }, true},
		{"invalid allowed prefix", func(c *Config) { c.AllowedBackends = []netip.Prefix{{}} }, false},
		{"no name", func(c *Config) { c.NodeName = "" }, false},
		{"long name", func(c *Config) { c.NodeName = strings.Repeat("n", MaxNodeNameLen+1) }, false},
		{"bind host name", func(c *Config) { c.BindAddr = "localhost:7946" }, false},
		{"bind without port", func(c *Config) { c.BindAddr = "127.0.0.1" }, false},
		{"bind bad port", func(c *Config) { c.BindAddr = "127.0.0.1:70000" }, false},
		{"advertise host name", func(c *Config) { c.AdvertiseAddr = "me.example:7946" }, false},
		{"empty seed", func(c *Config) { c.Join = []string{""} }, false},
		{"short key", func(c *Config) { c.Keys = [][]byte{[]byte("short")} }, false},
		{"repeated key", func(c *Config) { c.Keys = [][]byte{keyOld, keyOld} }, false},
		{"unknown profile", func(c *Config) { c.Profile = "wan" }, false},
		{"no meta", func(c *Config) { c.Meta = Meta{} }, false},
		{"negative timeout", func(c *Config) { c.LeaveTimeout = -time.Second }, false},
	}
	for _, tt := range tests {
		c := good()
		tt.change(&c)
		err := c.Validate()
		if tt.ok != (err == nil) {
			t.Errorf("%s: Validate() = %v, want ok=%v", tt.name, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: error %v does not wrap ErrInvalidConfig", tt.name, err)
		}
	}
}

func TestMemberlistConfig(t *testing.T) {
	t.Parallel()
	c := Config{
		NodeName: "n1", BindAddr: "127.0.0.1:7000", AdvertiseAddr: "10.0.0.1:0",
		Profile: ProfileFast, Meta: proxyMeta,
	}.withDefaults()
	mc, err := c.memberlistConfig(&delegate{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if mc.Name != "n1" || mc.BindAddr != "127.0.0.1" || mc.BindPort != 7000 ||
		mc.AdvertiseAddr != "10.0.0.1" || mc.AdvertisePort != 7000 {
		t.Fatalf("addresses: %+v", mc)
	}
	if mc.ProbeInterval != 200*time.Millisecond || mc.ProbeTimeout != 100*time.Millisecond ||
		mc.SuspicionMult != 3 || mc.GossipInterval != 50*time.Millisecond || mc.PushPullInterval != 5*time.Second {
		t.Fatalf("fast profile not applied: %+v", mc)
	}
	lan := memberlist.DefaultLANConfig()
	c.Profile = ProfileLAN
	mc, _ = c.memberlistConfig(&delegate{}, nil)
	if mc.ProbeInterval != lan.ProbeInterval || mc.SuspicionMult != lan.SuspicionMult ||
		mc.PushPullInterval != lan.PushPullInterval {
		t.Fatalf("lan profile differs from memberlist.DefaultLANConfig")
	}
}

func TestMemberlistLogWriter(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	l := hclog.New(&hclog.LoggerOptions{Output: &buf, Level: hclog.Debug, DisableTime: true})
	std := newStdLogger(l)
	std.Printf("[DEBUG] memberlist: Stream connection from=127.0.0.1:1")
	std.Printf("[INFO] memberlist: Marking n2 as failed")
	std.Printf("[WARN] memberlist: Refuting a suspect message")
	std.Printf("[ERR] memberlist: failed to receive: No installed keys could decrypt the message")
	std.Printf("no level here")
	want := []string{
		"[DEBUG] Stream connection from=127.0.0.1:1",
		"[DEBUG] Marking n2 as failed",
		"[WARN]  Refuting a suspect message",
		"[WARN]  failed to receive: No installed keys could decrypt the message",
		"[DEBUG] no level here",
	}
	got := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(got) != len(want) {
		t.Fatalf("got %d lines:\n%s", len(got), buf.String())
	}
	for i := range want {
		if strings.TrimSpace(got[i]) != want[i] {
			t.Errorf("line %d = %q, want %q", i, got[i], want[i])
		}
	}

	// At Info, routine lines are dropped and warnings kept.
	buf.Reset()
	l.SetLevel(hclog.Info)
	std.Printf("[DEBUG] memberlist: x")
	std.Printf("[INFO] memberlist: y")
	std.Printf("[ERR] memberlist: z")
	if got := strings.TrimSpace(buf.String()); got != "[WARN]  z" {
		t.Fatalf("at Info level got %q", got)
	}
}
