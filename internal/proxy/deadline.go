package proxy

import (
	"net"
	"time"
)

// deadlineWriter is the write side of a connection to a peer: every write
// to the socket starts with at least half the write timeout ahead of it.
// A frame.Writer flushes in its Flush and also inside Write, whenever a
// frame does not fit its buffer; a deadline set only at Flush would leave
// those writes under whatever deadline an earlier flush set, long past for
// a peer that was idle. Pushing the deadline out costs a timer update, so
// it is done only once half of it is spent. One goroutine at a time writes
// (the owner of the frame.Writer above it).
type deadlineWriter struct {
	conn    net.Conn
	timeout time.Duration
	pushed  time.Time // when the write deadline was last set
}

func newDeadlineWriter(conn net.Conn, timeout time.Duration) *deadlineWriter {
	return &deadlineWriter{conn: conn, timeout: timeout}
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	if now := time.Now(); now.Sub(d.pushed) > d.timeout/2 {
		_ = d.conn.SetWriteDeadline(now.Add(d.timeout))
		d.pushed = now
	}
	return d.conn.Write(p)
}
