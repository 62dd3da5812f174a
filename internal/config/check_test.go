package config

import (
	"errors"
	"strings"
	"testing"
)

// Check reports a bad value at the line that sets it, a syntax error at its
// line, and nothing for a good file.
func TestCheck(t *testing.T) {
	t.Setenv(EnvGossipKeys, "")
	tests := []struct {
		name string
		src  string
		want string // "" for a good file; else a substring of the error
		line int
	}{
		{"good", "listen = \"127.0.0.1:4321\"\nbackend \"127.0.0.1:4322\" { weight = 2 }\n", "", 0},
		{"bad value", "listen = \"127.0.0.1:4321\"\n\nhealth {\n  interval = \"1s\"\n  timeout = \"5s\"\n}\n", "health.timeout: must not exceed", 5},
		{"bad backend weight", "backend \"127.0.0.1:4322\" {\n  weight = 500\n}\n", `backend "127.0.0.1:4322".weight: must be 1 to 100`, 2},
		{"bad list item", "gossip {\n  bind = \"127.0.0.1:0\"\n  join = [\"nohost\"]\n}\n", "gossip.join[0]", 3},
		{"syntax error", "listen = \"127.0.0.1:4321\"\nhealth {\n  interval = \n}\n", "", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check(writeFile(t, "c.hcl", tt.src))
			if tt.line == 0 {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				return
			}
			var fe *FileError
			if !errors.As(err, &fe) {
				t.Fatalf("Check = %v, want a *FileError", err)
			}
			if fe.Line != tt.line || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Check = %v (line %d), want line %d and %q", err, fe.Line, tt.line, tt.want)
			}
		})
	}
}
