package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseGood(t *testing.T) {
	tests := []struct {
		name     string
		filename string // "test.hcl" when empty
		src      string
		want     func(c *Config) // applied to Default(); nil means defaults
	}{
		{name: "empty file", src: ""},
		{name: "comments and blank lines", src: "# nothing\n\n// here\n/* at all */\n"},
		{name: "empty blocks", src: "limits {}\nupstream {}\nring {}\npool {}\nhealth {}\ngossip {}\n"},
		{
			name: "top-level settings",
			src: `listen = "127.0.0.1:9000"
log_level = "debug"
log_json = true
connection_token = "s3cret"
`,
			want: func(c *Config) {
				c.Listen = "127.0.0.1:9000"
				c.LogLevel = LogDebug
				c.LogJSON = true
				c.ConnectionToken = "s3cret"
			},
		},
		{
			name: "admin block",
			src:  "admin {\n  listen = \"127.0.0.1:9090\"\n  token = \"t\"\n}\n",
			want: func(c *Config) { c.Admin = Admin{Listen: "127.0.0.1:9090", Token: "t"} },
		},
		{
			name: "partial limits block keeps the other defaults",
			src:  "limits {\n  max_frame_bytes = 1024\n  frame_timeout = \"1m30s\"\n}\n",
			want: func(c *Config) {
				c.Limits.MaxFrameBytes = 1024
				c.Limits.FrameTimeout = 90 * time.Second
			},
		},
		{
			name: "every duration",
			src: `shutdown_timeout = "45s"
limits {
  frame_timeout     = "0s"
  handshake_timeout = "250ms"
  client_idle_timeout = "5m"
}
upstream {
  dial_timeout    = "2s"
  request_timeout = "10m"
}
health {
  interval = "3s"
  timeout  = "1.5s"
}
`,
			want: func(c *Config) {
				c.ShutdownTimeout = 45 * time.Second
				c.Limits.FrameTimeout = 0
				c.Limits.HandshakeTimeout = 250 * time.Millisecond
				c.Limits.ClientIdleTimeout = 5 * time.Minute
				c.Upstream.DialTimeout = 2 * time.Second
				c.Upstream.RequestTimeout = 10 * time.Minute
				c.Health.Interval = 3 * time.Second
				c.Health.Timeout = 1500 * time.Millisecond
			},
		},
		{
			name: "ring and health numbers",
			src:  "ring {\n  partitions = 7\n  replication = 3\n  load = 2\n}\nhealth {\n  rise = 1\n  fall = 5\n}\n",
			want: func(c *Config) {
				c.Ring = Ring{Partitions: 7, Replication: 3, Load: 2}
				c.Health.Rise = 1
				c.Health.Fall = 5
			},
		},
		{
			name: "backends in order, weight defaults to 1",
			src: `backend "10.0.0.2:4322" {
  token  = "b"
  weight = 3
}
backend "10.0.0.1:4322" {}
`,
			want: func(c *Config) {
				c.Backends = []Backend{
					{Address: "10.0.0.2:4322", Token: "b", Weight: 3},
					{Address: "10.0.0.1:4322", Weight: 1},
				}
			},
		},
		{
			name: "pool",
			src:  "pool {\n  spawn = 3\n  copilot_path = \"/opt/copilot\"\n  home = \"/var/lib/copilot\"\n  args = [\"--log-level\", \"debug\"]\n}\n",
			want: func(c *Config) {
				c.Pool = Pool{Spawn: 3, CopilotPath: "/opt/copilot", Home: "/var/lib/copilot", Args: []string{"--log-level", "debug"}}
			},
		},
		{
			name: "gossip",
			src: `gossip {
  bind      = "0.0.0.0:7000"
  advertise = "10.1.2.3:7000"
  join      = ["10.1.2.4:7000", "peer.internal:7000"]
  encrypt   = ["k1", "k2"]
  profile   = "fast"
  insecure  = true
  allowed_backends = ["10.1.0.0/16"]
}
`,
			want: func(c *Config) {
				c.Gossip = Gossip{
					Bind:            "0.0.0.0:7000",
					Advertise:       "10.1.2.3:7000",
					Join:            []string{"10.1.2.4:7000", "peer.internal:7000"},
					Encrypt:         []string{"k1", "k2"},
					Profile:         ProfileFast,
					Insecure:        true,
					AllowedBackends: []string{"10.1.0.0/16"},
				}
			},
		},
		{
			name: "empty string disables gossip and empty lists stay nil",
			src:  "gossip {\n  bind = \"\"\n  join = []\n}\n",
			want: func(c *Config) { c.Gossip.Bind = "" },
		},
		{
			name: "null keeps the default",
			src:  "listen = null\nlimits {\n  frame_timeout = null\n}\n",
		},
		{
			name:     "JSON syntax",
			filename: "test.json",
			src:      `{"listen": ":5000", "limits": {"frame_timeout": "5s"}, "backend": {"127.0.0.1:1": {"weight": 2}}}`,
			want: func(c *Config) {
				c.Listen = ":5000"
				c.Limits.FrameTimeout = 5 * time.Second
				c.Backends = []Backend{{Address: "127.0.0.1:1", Weight: 2}}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			filename := tt.filename
			if filename == "" {
				filename = "test.hcl"
			}
			got, err := Parse([]byte(tt.src), filename)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			want := Default()
			if tt.want != nil {
				tt.want(want)
			}
			got.src = nil // where settings were read: TestValidateNamesFileAndLine
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Parse mismatch\n got: %+v\nwant: %+v", got, want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name      string
		src       string
		line, col int    // position of the first problem
		want      string // substring of the error message
	}{
		{name: "unknown top-level attribute", src: "listen = \":1\"\nlisen = \":2\"\n", line: 2, col: 1, want: "Unsupported argument"},
		{name: "unknown block", src: "limit {\n}\n", line: 1, col: 1, want: "Unsupported block type"},
		{name: "unknown attribute in a block", src: "limits {\n  max_frame = 1\n}\n", line: 2, col: 3, want: "Unsupported argument"},
		{name: "unknown attribute in a backend", src: "backend \"h:1\" {\n  tokn = \"x\"\n}\n", line: 2, col: 3, want: "Unsupported argument"},
		{name: "duration without unit", src: "limits {\n  frame_timeout = \"30\"\n}\n", line: 2, col: 19, want: `missing unit in duration "30"`},
		{name: "duration not parseable", src: "health {\n  interval = \"soon\"\n}\n", line: 2, col: 14, want: "Invalid duration"},
		{name: "duration as a number", src: "upstream {\n  dial_timeout = 5\n}\n", line: 2, col: 18, want: "this is a number"},
		{name: "string for a number", src: "limits {\n  max_frame_bytes = \"lots\"\n}\n", line: 2, col: 22, want: "a number is required"},
		{name: "fraction for an integer", src: "pool {\n  spawn = 1.5\n}\n", line: 2, col: 11, want: "Unsuitable value"},
		{name: "string for a list", src: "pool {\n  args = \"-v\"\n}\n", line: 2, col: 11, want: "list of string required"},
		{name: "string for a bool", src: "log_json = \"maybe\"\n", line: 1, col: 13, want: "a bool is required"},
		{name: "attribute given twice", src: "listen = \":1\"\nlisten = \":2\"\n", line: 2, col: 1, want: "Attribute redefined"},
		{name: "block given twice", src: "ring {}\nring {}\n", line: 2, col: 1, want: "Duplicate ring block"},
		{name: "backend without label", src: "backend {\n}\n", line: 1, col: 9, want: "Missing address for backend"},
		{name: "attribute used as a block", src: "listen {\n}\n", line: 1, col: 1, want: "Unsupported block type"},
		{name: "syntax error", src: "listen = \n", line: 1, col: 10, want: "Invalid expression"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tt.src), "test.hcl")
			if err == nil {
				t.Fatalf("Parse succeeded, want an error; got %+v", cfg)
			}
			var fe *FileError
			if !errors.As(err, &fe) {
				t.Fatalf("error %q (%T) has no *FileError", err, err)
			}
			if fe.File != "test.hcl" || fe.Line != tt.line || fe.Column != tt.col {
				t.Errorf("position %s:%d:%d, want test.hcl:%d:%d (error: %v)", fe.File, fe.Line, fe.Column, tt.line, tt.col, err)
			}
			if !strings.HasPrefix(err.Error(), "test.hcl:") {
				t.Errorf("error %q does not start with the file name", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestParseReportsEveryProblem(t *testing.T) {
	src := "lisen = \":1\"\nlimits {\n  frame_timeout = \"x\"\n}\n"
	_, err := Parse([]byte(src), "test.hcl")
	if err == nil {
		t.Fatal("Parse succeeded, want errors")
	}
	// Unknown names are found while decoding, bad durations after: a
	// problem of one kind must not hide a problem of the other.
	// They are listed in file order.
	first := strings.Index(err.Error(), "test.hcl:1:1: Unsupported argument")
	second := strings.Index(err.Error(), "test.hcl:3:19: Invalid duration")
	if first < 0 || second < 0 || first > second {
		t.Errorf("error %q does not list the unknown attribute, then the bad duration", err)
	}
	src = "limits {\n  frame_timeout = \"x\"\n  handshake_timeout = \"y\"\n}\n"
	_, err = Parse([]byte(src), "test.hcl")
	for _, want := range []string{"test.hcl:2:19:", "test.hcl:3:23:"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not contain %q", err, want)
		}
	}
}

func TestLoad(t *testing.T) {
	clearEnv(t)

	t.Run("no path gives the defaults", func(t *testing.T) {
		got, err := Load("")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, Default()) {
			t.Errorf("Load(\"\") = %+v, want defaults", got)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		_, err := Load(filepath.Join(t.TempDir(), "absent.hcl"))
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("err = %v, want fs.ErrNotExist", err)
		}
	})
	t.Run("errors name the path", func(t *testing.T) {
		path := writeFile(t, "bad.hcl", "\n\nlimits {\n  frame_timeout = \"1y\"\n}\n")
		_, err := Load(path)
		if err == nil || !strings.HasPrefix(err.Error(), path+":4:19: Invalid duration") {
			t.Errorf("err = %v, want it to start with %s:4:19: Invalid duration", err, path)
		}
	})
	t.Run("file overlays defaults", func(t *testing.T) {
		path := writeFile(t, "ok.hcl", "log_level = \"warn\"\n")
		got, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		want := Default()
		want.LogLevel = LogWarn
		got.src = nil
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Load = %+v, want %+v", got, want)
		}
	})
}

func TestLoadEnvironment(t *testing.T) {
	key1, key2 := testKey(16, 1), testKey(32, 2)
	t.Setenv(EnvConnectionToken, "from-env")
	t.Setenv(EnvGossipKeys, " "+key1+" , "+key2+",")

	got, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if got.ConnectionToken != "from-env" {
		t.Errorf("ConnectionToken = %q, want the environment's", got.ConnectionToken)
	}
	if want := []string{key1, key2}; !reflect.DeepEqual(got.Gossip.Encrypt, want) {
		t.Errorf("Gossip.Encrypt = %q, want %q", got.Gossip.Encrypt, want)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}

	// The file wins over the environment.
	path := writeFile(t, "c.hcl", "connection_token = \"from-file\"\ngossip {\n  encrypt = [\""+key2+"\"]\n}\n")
	got, err = Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.ConnectionToken != "from-file" {
		t.Errorf("ConnectionToken = %q, want the file's", got.ConnectionToken)
	}
	if want := []string{key2}; !reflect.DeepEqual(got.Gossip.Encrypt, want) {
		t.Errorf("Gossip.Encrypt = %q, want %q", got.Gossip.Encrypt, want)
	}
}

// TestAgentTokenFromEnvironment: an agent started in its CLI's environment
// checks the CLI with the CLI's own COPILOT_CONNECTION_TOKEN; a token in the
// file's agent block wins.
func TestAgentTokenFromEnvironment(t *testing.T) {
	clearEnv(t)
	t.Setenv(EnvAgentToken, "cli-token")
	got, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if got.Agent.Token != "cli-token" {
		t.Errorf("Agent.Token = %q, want the environment's", got.Agent.Token)
	}
	if got.Gossip.BackendToken != "" || got.ConnectionToken != "" {
		t.Errorf("COPILOT_CONNECTION_TOKEN leaked into other tokens: backend %q, connection %q", got.Gossip.BackendToken, got.ConnectionToken)
	}

	path := writeFile(t, "agent.hcl", "agent {\n  token = \"from-file\"\n}\n")
	if got, err = Load(path); err != nil {
		t.Fatal(err)
	}
	if got.Agent.Token != "from-file" {
		t.Errorf("Agent.Token = %q, want the file's", got.Agent.Token)
	}
}

// clearEnv empties every variable ApplyEnv reads, for the rest of the test.
func clearEnv(t *testing.T) {
	t.Helper()
	for _, name := range []string{EnvConnectionToken, EnvGossipKeys, EnvBackendToken, EnvAgentToken, EnvGossipInsecure} {
		t.Setenv(name, "")
	}
}

func TestApplyEnv(t *testing.T) {
	env := map[string]string{EnvConnectionToken: "tok", EnvGossipKeys: ",,", EnvBackendToken: "backend", EnvAgentToken: "agent", EnvAdminToken: "admin-tok"}
	c := Default()
	c.ApplyEnv(func(k string) string { return env[k] })
	if c.Admin.Token != "admin-tok" {
		t.Errorf("Admin.Token = %q, want admin-tok", c.Admin.Token)
	}
	c.Admin.Token = "from-file"
	c.ApplyEnv(func(k string) string { return env[k] })
	if c.Admin.Token != "from-file" {
		t.Errorf("Admin.Token = %q, want the file's", c.Admin.Token)
	}
	if c.ConnectionToken != "tok" {
		t.Errorf("ConnectionToken = %q, want tok", c.ConnectionToken)
	}
	if c.Gossip.BackendToken != "backend" {
		t.Errorf("Gossip.BackendToken = %q, want backend", c.Gossip.BackendToken)
	}
	if c.Agent.Token != "agent" {
		t.Errorf("Agent.Token = %q, want agent (from %s)", c.Agent.Token, EnvAgentToken)
	}
	if c.Gossip.Encrypt != nil {
		t.Errorf("Gossip.Encrypt = %q, want nil for a list of blanks", c.Gossip.Encrypt)
	}
	if c.Gossip.Insecure {
		t.Errorf("Gossip.Insecure set with no %s", EnvGossipInsecure)
	}
}

func TestApplyEnvInsecure(t *testing.T) {
	for value, want := range map[string]bool{"1": true, "true": true, "0": false, "yes": false, "": false} {
		c := Default()
		c.ApplyEnv(func(k string) string { return map[string]string{EnvGossipInsecure: value}[k] })
		if c.Gossip.Insecure != want {
			t.Errorf("%s=%q: Insecure = %v, want %v", EnvGossipInsecure, value, c.Gossip.Insecure, want)
		}
	}
	// The environment cannot turn off what the file turned on.
	c := Default()
	c.Gossip.Insecure = true
	c.ApplyEnv(func(k string) string { return map[string]string{EnvGossipInsecure: "0"}[k] })
	if !c.Gossip.Insecure {
		t.Error("environment turned off the file's insecure = true")
	}
}

func writeFile(tb testing.TB, name, content string) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}
