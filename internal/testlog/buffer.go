// Package testlog holds what tests of several packages need to read the
// logs of what they run.
package testlog

import (
	"bytes"
	"sync"
)

// Buffer is a log output safe for concurrent writers: hclog and child
// processes write while the test reads String. The zero value is ready.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
