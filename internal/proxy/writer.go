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
	select {
	case c.out <- f:
		return true
	case <-c.done:
		f.buf.Release()
		return false
	}
}

// writeLoop owns the client connection's write side. It writes every queued
// frame and flushes only when the queue is empty, so bursts go out in few
// system calls. A frame with no buffer asks it to flush and stop.
func (c *clientConn) writeLoop() {
	defer c.wg.Done()
	w := frame.NewWriter(c.conn)
	timeout := c.srv.cfg.WriteTimeout
	var deadlineSet time.Time
	for {
		var f outFrame
		select {
		case f = <-c.out:
		case <-c.done:
			return
		}
		stop := false
		for {
			if f.buf == nil {
				stop = true
				break
			}
			err := writeOut(w, &f)
			f.buf.Release()
			if err != nil {
				c.log.Debug("client write failed", "error", err)
				c.shutdown()
				return
			}
			if w.Buffered() >= 64<<10 {
				break
			}
			more := false
			select {
			case f = <-c.out:
				more = true
			default:
			}
			if !more {
				break
			}
		}
		// One deadline covers many flushes: reset it only when it is half spent.
		if now := time.Now(); deadlineSet.IsZero() || now.Sub(deadlineSet) > timeout/2 {
			_ = c.conn.SetWriteDeadline(now.Add(timeout))
			deadlineSet = now
		}
		if err := w.Flush(); err != nil {
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
