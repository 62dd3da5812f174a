package proxy

import (
	"github.com/rpcproxy/rpcproxy/internal/frame"
)

// outFrame is a message for a client. When idEnd > 0 the bytes
// buf.B[idStart:idEnd] (the id) are replaced by id on the way out.
type outFrame struct {
	buf            *frame.Buffer
	idStart, idEnd int32
	id             rawID
}

// send writes f to the client and hands over f.buf. Whoever has a frame for
// the client writes it itself, under the client's write lock: no queue and
// no writer goroutine, so a frame costs no hand-off and an idle client no
// goroutine. flush says the caller has nothing more at hand (an upstream
// reader with no whole frame buffered): writes batch until then. A client
// that does not read blocks its writers (backpressure towards the
// backends) until the write timeout closes it.
//
// With shared upstreams (c.ob set) the writes never block: what the
// client's socket does not take at once waits in its bounded outBuffer, so
// no writer ever waits on this client (a shared upstream's reader serves
// many).
func (c *clientConn) send(f outFrame, flush bool) bool {
	c.wmu.Lock()
	if c.wfailed {
		c.wmu.Unlock()
		f.buf.Release()
		return false
	}
	err := writeOut(c.w, &f)
	c.countOut(&f)
	f.buf.Release()
	if err == nil && flush {
		err = c.flushLocked()
	}
	if err != nil {
		c.wfailed = true
	}
	c.wmu.Unlock()
	if err != nil {
		c.log().Debug("client write failed", "error", err)
		c.shutdown()
		return false
	}
	return true
}

// sendCopy writes and flushes body, which the caller keeps, to a client
// whose writes never block (with shared upstreams). A write that fails
// closes the client's socket: its reader then shuts it down.
func (c *clientConn) sendCopy(body []byte) {
	c.wmu.Lock()
	if c.wfailed {
		c.wmu.Unlock()
		return
	}
	err := c.w.Write(body)
	if err == nil {
		err = c.flushLocked()
	}
	if err != nil {
		c.wfailed = true
	} else if c.obs != nil {
		c.obs.ToClient(len(body))
	}
	c.wmu.Unlock()
	if err != nil {
		c.conn.Close()
	}
}

// flushLocked sends what is buffered; c.wmu is held. The write deadline
// is c.w's business (see deadlineWriter).
func (c *clientConn) flushLocked() error {
	if c.w.Buffered() == 0 {
		return nil
	}
	return c.w.Flush()
}

func writeOut(w *frame.Writer, f *outFrame) error {
	if f.idEnd > 0 {
		return w.WriteWithID(f.buf.B, int(f.idStart), int(f.idEnd), f.id.Bytes())
	}
	return w.Write(f.buf.B)
}

// countOut counts a frame written to the client, for metrics.
func (c *clientConn) countOut(f *outFrame) {
	if c.obs != nil {
		n := len(f.buf.B)
		if f.idEnd > 0 {
			n += len(f.id.Bytes()) - int(f.idEnd-f.idStart)
		}
		c.obs.ToClient(n)
	}
}
