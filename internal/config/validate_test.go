package config

import (
	"bytes"
	"encoding/base64"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func TestDefaultIsValid(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
}

func TestDefaultReturnsFreshValues(t *testing.T) {
	a := Default()
	a.Limits.MaxFrameBytes = 1
	if Default().Limits.MaxFrameBytes == 1 {
		t.Fatal("Default returned shared state")
	}
}

func TestValidateGood(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *Config)
	}{
		{"ephemeral listen port", func(c *Config) { c.Listen = "127.0.0.1:0" }},
		{"listen on a host name", func(c *Config) { c.Listen = "localhost:4321" }},
		{"ipv6 listen", func(c *Config) { c.Listen = "[::1]:4321" }},
		{"every log level", func(c *Config) { c.LogLevel = LogTrace }},
		{"frame timeout disabled", func(c *Config) { c.Limits.FrameTimeout = 0 }},
		{"frame size at 1 GiB", func(c *Config) { c.Limits.MaxFrameBytes = 1 << 30; c.Limits.MaxBufferedBytes = 2 << 30 }},
		{"header line at the frame reader's cap", func(c *Config) { c.Limits.MaxHeaderLineBytes = 32 << 10 }},
		{"no request timeout", func(c *Config) { c.Upstream.RequestTimeout = 0 }},
		{"shared upstreams", func(c *Config) { c.Upstream.ConnectionsPerBackend = 4 }},
		{"load factor of exactly 1", func(c *Config) { c.Ring.Load = 1 }},
		{"backends", func(c *Config) {
			c.Backends = []Backend{
				{Address: "127.0.0.1:4322", Weight: 1},
				{Address: "copilot-1.internal:4322", Token: "t", Weight: 5},
				{Address: "[fd00::1]:4322", Weight: 1},
				{Address: "127.0.0.1:4323", Weight: 1},
			}
		}},
		{"largest pool", func(c *Config) { c.Pool.Spawn = 256 }},
		{"health timeout equal to interval", func(c *Config) { c.Health.Timeout = c.Health.Interval }},
		{"gossip disabled", func(c *Config) { c.Gossip.Bind = "" }},
		{"admin on loopback", func(c *Config) { c.Admin = Admin{Listen: "127.0.0.1:9090", Token: "t"} }},
		{"gossip disabled ignores keys from the environment", func(c *Config) {
			c.Gossip.Bind = ""
			c.Gossip.Encrypt = []string{"not a key"}
		}},
		{"gossip on all interfaces, ephemeral port, with a key", func(c *Config) {
			c.Gossip.Bind, c.Gossip.Encrypt = ":0", []string{testKey(32, 1)}
		}},
		{"gossip on all interfaces without keys, insecure", func(c *Config) { c.Gossip.Bind, c.Gossip.Insecure = "0.0.0.0:7946", true }},
		{"gossip on a loopback alias without keys", func(c *Config) { c.Gossip.Bind = "127.0.0.2:7946" }},
		{"gossip on ipv6 loopback without keys", func(c *Config) { c.Gossip.Bind = "[::1]:0" }},
		{"gossip allowed backends", func(c *Config) {
			c.Gossip.Bind, c.Gossip.AllowedBackends = DefaultGossipBind, []string{"10.0.8.0/24", "fd00::/64", "10.0.9.5/32"}
		}},
		{"gossip full", func(c *Config) {
			c.Gossip = Gossip{
				Bind:      "0.0.0.0:7946",
				Advertise: "10.0.0.5:7946",
				Join:      []string{"10.0.0.6:7946", "peer.internal:7946"},
				Encrypt:   []string{testKey(16, 1), testKey(24, 2), testKey(32, 3)},
				Profile:   ProfileFast,
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.mutate(c)
			if err := c.Validate(); err != nil {
				t.Errorf("Validate() = %v, want nil", err)
			}
		})
	}
}

func TestValidateBad(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(c *Config)
		field   string
		problem string // substring of FieldError.Problem
	}{
		{"empty listen", func(c *Config) { c.Listen = "" }, "listen", "must be host:port"},
		{"listen without port", func(c *Config) { c.Listen = "127.0.0.1" }, "listen", "missing port"},
		{"listen port out of range", func(c *Config) { c.Listen = ":65536" }, "listen", "from 0 to 65535"},
		{"listen named port", func(c *Config) { c.Listen = ":http" }, "listen", "must be a number"},
		{"log level", func(c *Config) { c.LogLevel = "verbose" }, "log_level", `"verbose" is not a level`},
		{"admin listen without port", func(c *Config) { c.Admin.Listen = "127.0.0.1" }, "admin.listen", "missing port"},
		{"admin listen on the client port", func(c *Config) { c.Admin.Listen = c.Listen }, "admin.listen", "same address as listen"},
		{"log level is case-sensitive", func(c *Config) { c.LogLevel = "INFO" }, "log_level", "not a level"},
		{"zero shutdown timeout", func(c *Config) { c.ShutdownTimeout = 0 }, "shutdown_timeout", "must be > 0"},
		{"zero frame size", func(c *Config) { c.Limits.MaxFrameBytes = 0 }, "limits.max_frame_bytes", "between 1 and 1073741824"},
		{"negative frame size", func(c *Config) { c.Limits.MaxFrameBytes = -1 }, "limits.max_frame_bytes", "got -1"},
		{"frame size over 1 GiB", func(c *Config) { c.Limits.MaxFrameBytes = 1<<30 + 1; c.Limits.MaxBufferedBytes = 4 << 30 },
			"limits.max_frame_bytes", "between 1 and 1073741824 (1 GiB), got 1073741825"},
		{"unauthenticated frame size too small", func(c *Config) { c.Limits.MaxUnauthenticatedFrameBytes = 100 },
			"limits.max_unauthenticated_frame_bytes", "between 1024 and 1073741824, got 100"},
		{"unauthenticated frame size over 1 GiB", func(c *Config) { c.Limits.MaxUnauthenticatedFrameBytes = 1<<30 + 1 },
			"limits.max_unauthenticated_frame_bytes", "between 1024 and 1073741824"},
		{"buffered bytes below two frames", func(c *Config) { c.Limits.MaxBufferedBytes = 100 << 20 },
			"limits.max_buffered_bytes", "at least twice limits.max_frame_bytes (134217728"},
		{"zero buffered bytes", func(c *Config) { c.Limits.MaxBufferedBytes = 0 }, "limits.max_buffered_bytes", "got 0"},
		{"header line too long", func(c *Config) { c.Limits.MaxHeaderLineBytes = 32<<10 + 1 }, "limits.max_header_line_bytes", "between 64 and 32768"},
		{"header line too short", func(c *Config) { c.Limits.MaxHeaderLineBytes = 10 }, "limits.max_header_line_bytes", "between 64 and 32768"},
		{"negative frame timeout", func(c *Config) { c.Limits.FrameTimeout = -time.Second }, "limits.frame_timeout", "must be >= 0"},
		{"zero handshake timeout", func(c *Config) { c.Limits.HandshakeTimeout = 0 }, "limits.handshake_timeout", "must be > 0"},
		{"negative pending requests", func(c *Config) { c.Limits.MaxPendingRequests = -5 }, "limits.max_pending_requests", "must be > 0"},
		{"negative max connections", func(c *Config) { c.Limits.MaxConnections = -1 }, "limits.max_connections", "must be >= 0"},
		{"negative connections per ip", func(c *Config) { c.Limits.MaxConnectionsPerIP = -1 }, "limits.max_connections_per_ip", "must be >= 0"},
		{"connections per ip over the total", func(c *Config) { c.Limits.MaxConnections, c.Limits.MaxConnectionsPerIP = 10, 11 }, "limits.max_connections_per_ip", "must not exceed limits.max_connections (10)"},
		{"zero sessions per client", func(c *Config) { c.Limits.MaxSessionsPerClient = 0 }, "limits.max_sessions_per_client", "must be > 0"},
		{"zero session params", func(c *Config) { c.Limits.MaxSessionParamsBytes = 0 }, "limits.max_session_params_bytes", "must be > 0"},
		{"negative idle timeout", func(c *Config) { c.Limits.ClientIdleTimeout = -time.Second }, "limits.client_idle_timeout", "must be >= 0"},
		{"zero dial timeout", func(c *Config) { c.Upstream.DialTimeout = 0 }, "upstream.dial_timeout", "must be > 0"},
		{"negative request timeout", func(c *Config) { c.Upstream.RequestTimeout = -1 }, "upstream.request_timeout", "must be >= 0"},
		{"negative connections per backend", func(c *Config) { c.Upstream.ConnectionsPerBackend = -1 }, "upstream.connections_per_backend", "must be between 0"},
		{"too many connections per backend", func(c *Config) { c.Upstream.ConnectionsPerBackend = MaxConnectionsPerBackend + 1 }, "upstream.connections_per_backend", "must be between 0"},
		{"zero client queue", func(c *Config) { c.Limits.ClientQueueBytes = 0 }, "limits.client_queue_bytes", "must be > 0"},
		{"zero partitions", func(c *Config) { c.Ring.Partitions = 0 }, "ring.partitions", "must be > 0"},
		{"negative replication", func(c *Config) { c.Ring.Replication = -1 }, "ring.replication", "must be > 0"},
		{"load below 1", func(c *Config) { c.Ring.Load = 0.9 }, "ring.load", "must be >= 1"},
		{"load NaN", func(c *Config) { c.Ring.Load = math.NaN() }, "ring.load", "must be >= 1"},
		{"backend without host", func(c *Config) { c.Backends = []Backend{{Address: ":4322", Weight: 1}} }, `backend ":4322"`, "has no host"},
		{"backend without port", func(c *Config) { c.Backends = []Backend{{Address: "h", Weight: 1}} }, `backend "h"`, "missing port"},
		{"backend port zero", func(c *Config) { c.Backends = []Backend{{Address: "h:0", Weight: 1}} }, `backend "h:0"`, "from 1 to 65535"},
		{"backend port too big", func(c *Config) { c.Backends = []Backend{{Address: "h:70000", Weight: 1}} }, `backend "h:70000"`, "from 1 to 65535"},
		{"backend weight zero", func(c *Config) { c.Backends = []Backend{{Address: "h:1"}} }, `backend "h:1".weight`, "must be 1 to 100"},
		{"backend weight over 100", func(c *Config) { c.Backends = []Backend{{Address: "h:1", Weight: 101}} }, `backend "h:1".weight`, "must be 1 to 100"},
		{"duplicate backend", func(c *Config) {
			c.Backends = []Backend{{Address: "h:1", Weight: 1}, {Address: "h:2", Weight: 1}, {Address: "h:1", Weight: 1}}
		}, `backend "h:1"`, `duplicate backend address (same as "h:1")`},
		{"duplicate backend spelled differently", func(c *Config) {
			c.Backends = []Backend{{Address: "Copilot:4322", Weight: 1}, {Address: "copilot:04322", Weight: 1}}
		}, `backend "copilot:04322"`, "duplicate backend address"},
		{"negative spawn", func(c *Config) { c.Pool.Spawn = -1 }, "pool.spawn", "between 0 and 256"},
		{"huge spawn", func(c *Config) { c.Pool.Spawn = 1000 }, "pool.spawn", "between 0 and 256"},
		{"zero health interval", func(c *Config) { c.Health.Interval = 0 }, "health.interval", "must be > 0"},
		{"zero health timeout", func(c *Config) { c.Health.Timeout = 0 }, "health.timeout", "must be > 0"},
		{"health timeout over interval", func(c *Config) { c.Health.Timeout = 2 * time.Second }, "health.timeout", "must not exceed health.interval"},
		{"zero rise", func(c *Config) { c.Health.Rise = 0 }, "health.rise", "must be > 0"},
		{"negative fall", func(c *Config) { c.Health.Fall = -2 }, "health.fall", "must be > 0"},
		{"gossip profile", func(c *Config) { c.Gossip.Bind = DefaultGossipBind; c.Gossip.Profile = "wan" }, "gossip.profile", `"wan" is not a profile`},
		{"gossip on all interfaces without keys", func(c *Config) { c.Gossip.Bind = ":7946" }, "gossip.bind", "gossip { insecure = true }"},
		{"gossip on 0.0.0.0 without keys", func(c *Config) { c.Gossip.Bind = "0.0.0.0:7946" }, "gossip.bind", "no keys"},
		{"gossip on [::] without keys", func(c *Config) { c.Gossip.Bind = "[::]:7946" }, "gossip.bind", "no keys"},
		{"gossip on a LAN address without keys", func(c *Config) { c.Gossip.Bind = "10.0.0.5:7946" }, "gossip.bind", "RPCPROXY_GOSSIP_INSECURE=1"},
		{"gossip allowed backend not a CIDR", func(c *Config) {
			c.Gossip.Bind, c.Gossip.AllowedBackends = DefaultGossipBind, []string{"10.0.8.0/24", "10.0.9.5"}
		}, "gossip.allowed_backends[1]", "not a CIDR"},
		{"gossip bind on a host name", func(c *Config) { c.Gossip.Bind = "localhost:7946" }, "gossip.bind", "must be an IP address"},
		{"gossip bind without port", func(c *Config) { c.Gossip.Bind = "127.0.0.1" }, "gossip.bind", "missing port"},
		{"gossip advertise host name", func(c *Config) { c.Gossip.Bind = DefaultGossipBind; c.Gossip.Advertise = "me.internal:7946" }, "gossip.advertise", "must be an IP address"},
		{"gossip advertise port zero", func(c *Config) { c.Gossip.Bind = DefaultGossipBind; c.Gossip.Advertise = "10.0.0.1:0" }, "gossip.advertise", "from 1 to 65535"},
		{"gossip join without port", func(c *Config) { c.Gossip.Bind = DefaultGossipBind; c.Gossip.Join = []string{"10.0.0.1:7946", "peer"} }, "gossip.join[1]", "missing port"},
		{"gossip join while disabled", func(c *Config) { c.Gossip.Bind = ""; c.Gossip.Join = []string{"10.0.0.1:7946"} }, "gossip.join", "gossip is disabled"},
		{"gossip advertise while disabled", func(c *Config) { c.Gossip.Bind = ""; c.Gossip.Advertise = "10.0.0.1:7946" }, "gossip.advertise", "gossip is disabled"},
		{"gossip key not base64", func(c *Config) { c.Gossip.Bind = DefaultGossipBind; c.Gossip.Encrypt = []string{"%%%"} }, "gossip.encrypt[0]", "not valid base64"},
		{"gossip key wrong size", func(c *Config) {
			c.Gossip.Bind = DefaultGossipBind
			c.Gossip.Encrypt = []string{testKey(16, 1), testKey(20, 2)}
		}, "gossip.encrypt[1]", "key is 20 bytes"},
		{"gossip key repeated", func(c *Config) {
			c.Gossip.Bind = DefaultGossipBind
			c.Gossip.Encrypt = []string{testKey(16, 1), testKey(16, 1)}
		}, "gossip.encrypt[1]", "same key as gossip.encrypt[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.mutate(c)
			err := c.Validate()
			if err == nil {
				t.Fatal("Validate() = nil, want an error")
			}
			fes := fieldErrors(t, err)
			if len(fes) != 1 {
				t.Errorf("got %d problems, want 1: %v", len(fes), err)
			}
			if fes[0].Field != tt.field || !strings.Contains(fes[0].Problem, tt.problem) {
				t.Errorf("got %q, want field %q with a problem containing %q", fes[0], tt.field, tt.problem)
			}
			if want := tt.field + ": "; !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error %q does not start with %q", err, want)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c := Default()
	c.Limits.MaxFrameBytes = -1
	c.Ring.Load = 0
	c.Health.Rise = 0
	var fields []string
	for _, fe := range fieldErrors(t, c.Validate()) {
		fields = append(fields, fe.Field)
	}
	if got, want := strings.Join(fields, " "), "limits.max_frame_bytes ring.load health.rise"; got != want {
		t.Errorf("fields %q, want %q", got, want)
	}
}

func TestValidateNeverPrintsSecrets(t *testing.T) {
	c := Default()
	c.Gossip.Bind = DefaultGossipBind
	c.Gossip.Encrypt = []string{"c2VjcmV0LWtleQ==", "secret%key"} // valid base64 of a short key, then not base64
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate() = nil, want errors")
	}
	for _, secret := range c.Gossip.Encrypt {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error %q contains the key %q", err, secret)
		}
	}
}

func TestDuplicateBackendInFile(t *testing.T) {
	src := "backend \"127.0.0.1:4322\" {}\nbackend \"127.0.0.1:4322\" {\n  token = \"x\"\n}\n"
	c, err := Parse([]byte(src), "test.hcl")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	err = c.Validate()
	if err == nil || err.Error() != `test.hcl:2:1: backend "127.0.0.1:4322": duplicate backend address (same as "127.0.0.1:4322")` {
		t.Errorf("Validate() = %v, want the duplicate backend named", err)
	}
}

func TestAccessors(t *testing.T) {
	if got := (Pool{}).Executable(); got != "copilot" {
		t.Errorf("Executable() = %q, want copilot", got)
	}
	if got := (Pool{CopilotPath: "/bin/cp"}).Executable(); got != "/bin/cp" {
		t.Errorf("Executable() = %q, want /bin/cp", got)
	}
	if Default().Gossip.Enabled() || !(Gossip{Bind: DefaultGossipBind}).Enabled() {
		t.Error("Gossip.Enabled does not follow Bind")
	}
}

// fieldErrors returns every *FieldError joined in err, failing the test if
// err holds anything else.
func fieldErrors(tb testing.TB, err error) []*FieldError {
	tb.Helper()
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		tb.Fatalf("error %v (%T) is not a joined error", err, err)
	}
	var out []*FieldError
	for _, e := range joined.Unwrap() {
		var fe *FieldError
		if !errors.As(e, &fe) {
			tb.Fatalf("error %v (%T) is not a *FieldError", e, e)
		}
		out = append(out, fe)
	}
	return out
}

// testKey returns a base64 key of n bytes, all set to b.
func testKey(n int, b byte) string {
	return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, n))
}

// A bad value read from a file is reported at the file and line of its
// attribute, as syntax errors are; one a flag replaced is not.
func TestValidateNamesFileAndLine(t *testing.T) {
	src := `listen = ":4321"
ring {
  load = 0.5
}
backend "127.0.0.1:4322" {
  weight = 0
}
gossip {
  bind = "127.0.0.1:7946"
  join = ["10.0.0.1:7946", "peer"]
}
`
	c, err := Parse([]byte(src), "test.hcl")
	if err != nil {
		t.Fatal(err)
	}
	err = c.Validate()
	for _, want := range []string{
		"test.hcl:3:3: ring.load: must be >= 1, got 0.5",
		`test.hcl:6:3: backend "127.0.0.1:4322".weight: must be 1 to 100, got 0`,
		"test.hcl:10:3: gossip.join[1]: must be host:port",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v\nwant it to contain %q", err, want)
		}
	}

	c, err = Parse([]byte("listen = \":1\"\n"), "test.hcl")
	if err != nil {
		t.Fatal(err)
	}
	c.Apply(Overrides{Listen: "nope"})
	if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), "listen: ") {
		t.Errorf("a flag's bad value is reported as %v, want no file position", err)
	}
}

// serve ignores the agent block, so a bad one does not stop it; the agent
// refuses it, at its line.
func TestAgentBlockValidatedForTheAgentOnly(t *testing.T) {
	c, err := Parse([]byte("agent {\n  cli = \"nohost\"\n  weight = 0\n}\n"), "test.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate() = %v, want nil: serve ignores the agent block", err)
	}
	err = c.ValidateAgent()
	for _, want := range []string{"test.hcl:2:3: agent.cli:", "test.hcl:3:3: agent.weight: must be 1 to 100"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ValidateAgent() = %v\nwant it to contain %q", err, want)
		}
	}
	c.Apply(Overrides{AgentCLI: "127.0.0.1:1"})
	if err := c.ValidateAgent(); err == nil || strings.Contains(err.Error(), "agent.cli") {
		t.Errorf("after --cli, ValidateAgent() = %v, want only the weight", err)
	}
}
