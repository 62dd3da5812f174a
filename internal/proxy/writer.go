package proxy

import (
	"time"

	"github.com/rpcproxy/rpcproxy/internal/frame"
)

// outFrame is a message queued towards a client. When idEnd > 0 the bytes
// buf.B[idStart:idEnd] (the id) are replaced by id on the way out.
type outFrame struct {
	buf            *frame.Buffer
	idStart, idEnd int32
	id             rawID
}

// send queues f for the client and hands over f.buf. It blocks while the
// queue is full (backpressure towards the backends) and gives up when the
// client is shutting down.
func (c *clientConn) send(f outFrame) bool {
	if c.out.push(f, c.done) {
		return true
	}
	f.buf.Release()
	return false
}

// writeLoop owns the client connection's write side. It takes every queued
// frame at once, writes them and flushes, so bursts go out in few system
// calls. A frame with no buffer asks it to flush and stop.
func (c *clientConn) writeLoop() {
	defer c.wg.Done()
	w := frame.NewWriter(c.conn)
	timeout := c.srv.cfg.WriteTimeout
	var deadlineSet time.Time
	var batch []outFrame
	for {
		select {
		case <-c.out.ready:
		case <-c.done:
			return
		}
		batch = c.out.take(batch[:0])
		stop := false
		var err error
		for i := range batch {
			f := &batch[i]
			if f.buf == nil {
				stop = true
			} else if err == nil && !stop {
				err = writeOut(w, f)
			}
			f.buf.Release()
			f.buf = nil
		}
		if cap(batch) > 256 {
			batch = nil
		}
		if err == nil {
			// One deadline covers many flushes: reset it only when half spent.
			if now := time.Now(); deadlineSet.IsZero() || now.Sub(deadlineSet) > timeout/2 {
				_ = c.conn.SetWriteDeadline(now.Add(timeout))
				deadlineSet = now
			}
			err = w.Flush()
		}
		if err != nil {
			c.log.Debug("client write failed", "error", err)
			c.shutdown()
			return
		}
		if stop {
			return
		}
	}
}

func writeOut(w *frame.Writer, f *outFrame) error {
	if f.idEnd > 0 {
		return w.WriteWithID(f.buf.B, int(f.idStart), int(f.idEnd), f.id.Bytes())
	}
	return w.Write(f.buf.B)
}
