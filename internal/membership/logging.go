package membership

import (
	"bytes"
	"log"

	"github.com/hashicorp/go-hclog"
)

// newStdLogger returns the *log.Logger memberlist wants, writing into l.
func newStdLogger(l hclog.Logger) *log.Logger {
	return log.New(memberlistLogWriter{l}, "", 0)
}

// memberlistLogWriter turns memberlist's log lines, "[LEVEL] memberlist: text",
// into hclog entries. log.Logger calls Write once per line and serializes
// calls, so no buffering is needed. DEBUG and INFO (routine membership churn)
// go to Debug: this package logs the backend changes that matter at Info.
// WARN and ERR go to Warn: they are mostly a peer's trouble (unreachable,
// wrong key), not this node's failure.
type memberlistLogWriter struct {
	log hclog.Logger
}

func (w memberlistLogWriter) Write(p []byte) (int, error) {
	line := bytes.TrimRight(p, "\r\n")
	level := hclog.Debug
	if len(line) > 0 && line[0] == '[' {
		if end := bytes.IndexByte(line, ']'); end > 0 {
			switch string(line[1:end]) {
			case "WARN", "ERR", "ERROR":
				level = hclog.Warn
			}
			line = bytes.TrimLeft(line[end+1:], " ")
		}
	}
	line = bytes.TrimPrefix(line, []byte("memberlist: "))
	// Check first: most lines are dropped, and string(line) allocates.
	if w.log.IsDebug() || level == hclog.Warn && w.log.IsWarn() {
		w.log.Log(level, string(line))
	}
	return len(p), nil
}
