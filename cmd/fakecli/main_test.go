package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rpcproxy/rpcproxy/internal/fakecli"
)

func TestParseArgs(t *testing.T) {
	tests := []struct {
		args []string
		want options
	}{
		{[]string{"--headless", "--port", "4321"}, options{host: "127.0.0.1", port: 4321}},
		{[]string{"--headless", "--port=1", "--host", "0.0.0.0", "--name", "x", "--events", "30", "--event-sizes", "300, 40960"},
			options{host: "0.0.0.0", port: 1, name: "x", events: 30, sizes: []int{300, 40960}}},
		{[]string{"--headless", "--port", "2", "--log-level", "debug", "--allow-all-tools", "--model", "gpt-5", "--no-color", "-x", "stray"},
			options{host: "127.0.0.1", port: 2, logLevel: "debug",
				ignored: []string{"--allow-all-tools", "--model", "gpt-5", "--no-color", "-x", "stray"}}},
		{[]string{"--unknown=v", "--store-dir", "/tmp/h"}, options{host: "127.0.0.1", storeDir: "/tmp/h", ignored: []string{"--unknown=v"}}},
	}
	for _, tt := range tests {
		got, err := parseArgs(tt.args)
		if err != nil {
			t.Errorf("parseArgs(%q): %v", tt.args, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseArgs(%q) = %+v, want %+v", tt.args, got, tt.want)
		}
	}
	for _, bad := range [][]string{
		{"--port"}, {"--port", "x"}, {"--port", "70000"}, {"--events", "-1"}, {"--event-sizes", "1,a"},
	} {
		if _, err := parseArgs(bad); !errors.Is(err, errUsage) {
			t.Errorf("parseArgs(%q) = %v, want a usage error", bad, err)
		}
	}
}

// TestRun starts the command on a free port with a token and a store
// directory, talks to it, and stops it as SIGTERM would.
func TestRun(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"COPILOT_CONNECTION_TOKEN": "tok", "COPILOT_HOME": dir}
	outR, outW := io.Pipe()
	stop := make(chan os.Signal, 1)
	code := make(chan int, 1)
	var stderr strings.Builder
	go func() {
		code <- run([]string{"--headless", "--port", "0", "--name", "cmd", "--log-level", "warn", "--unknown", "v"},
			func(k string) string { return env[k] }, outW, &stderr, stop)
		outW.Close()
	}()
	line, err := bufio.NewReader(outR).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the listening line: %v", err)
	}
	port, ok := strings.CutPrefix(strings.TrimSpace(line), "CLI server listening on port ")
	if !ok {
		t.Fatalf("first line %q", line)
	}
	go io.Copy(io.Discard, outR)

	c, err := fakecli.Dial("127.0.0.1:" + port)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var re *fakecli.RPCError
	if err := c.Call(ctx, "ping", nil, nil); !errors.As(err, &re) || re.Code != fakecli.CodeAuthRequired {
		t.Fatalf("ping before connect: %v", err)
	}
	if err := c.Connect(ctx, "tok"); err != nil {
		t.Fatal(err)
	}
	var st struct {
		Server string `json:"server"`
	}
	if err := c.Call(ctx, "status.get", nil, &st); err != nil || st.Server != "cmd" {
		t.Fatalf("status.get = %+v, %v", st, err)
	}
	if err := c.Call(ctx, "session.create", map[string]any{"sessionId": "on-disk"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir + "/session-state/on-disk/meta.json"); err != nil {
		t.Errorf("session not in COPILOT_HOME: %v", err)
	}

	stop <- os.Interrupt
	select {
	case got := <-code:
		if got != 0 {
			t.Errorf("exit code %d, stderr %s", got, stderr.String())
		}
	case <-ctx.Done():
		t.Fatal("did not stop")
	}
}
