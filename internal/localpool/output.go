package localpool

import (
	"bytes"
	"sync"

	"github.com/hashicorp/go-hclog"
)

// Bounds on what is kept of a child's output.
const (
	// maxLineBytes is the longest output line logged; the rest of a longer
	// line is counted and dropped.
	maxLineBytes = 2048
	// maxLastLine is how much of the last line is kept for error messages.
	maxLastLine = 256
)

// lineLog is the io.Writer given to a child as its stdout or stderr: it cuts
// the stream into lines and logs each at debug level. It remembers the last
// non-empty line, which tells why a child that died at start-up failed.
type lineLog struct {
	log    hclog.Logger
	stream string // "stdout" or "stderr"

	mu      sync.Mutex // os/exec writes from its copy goroutine; lastLine is read elsewhere
	line    []byte     // the current, unfinished line, at most maxLineBytes
	dropped int        // bytes of the current line beyond maxLineBytes
	last    string
}

func newLineLog(log hclog.Logger, stream string) *lineLog {
	return &lineLog{log: log, stream: stream}
}

// Write never fails: a child's output must not be able to stall or kill it.
func (w *lineLog) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(b)
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		chunk := b
		if i >= 0 {
			chunk = b[:i]
		}
		room := maxLineBytes - len(w.line)
		if len(chunk) > room {
			w.dropped += len(chunk) - room
			chunk = chunk[:room]
		}
		w.line = append(w.line, chunk...)
		if i < 0 {
			break
		}
		w.emitLocked()
		b = b[i+1:]
	}
	return n, nil
}

// flush logs an unfinished last line; call it once the child's output is
// closed.
func (w *lineLog) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.emitLocked()
}

// lastLine returns the last non-empty line written, cut to maxLastLine bytes.
func (w *lineLog) lastLine() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last
}

func (w *lineLog) emitLocked() {
	line := bytes.TrimRight(w.line, "\r")
	if len(bytes.TrimSpace(line)) > 0 {
		if w.log.IsDebug() {
			if w.dropped > 0 {
				w.log.Debug("child output", "stream", w.stream, "line", string(line), "dropped_bytes", w.dropped)
			} else {
				w.log.Debug("child output", "stream", w.stream, "line", string(line))
			}
		}
		w.last = string(line[:min(len(line), maxLastLine)])
	}
	w.line = w.line[:0]
	w.dropped = 0
}
