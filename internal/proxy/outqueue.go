package proxy

import (
	"sync"
	"time"

	"github.com/rpcproxy/rpcproxy/internal/frame"
)

// outQueue is a client's bounded outbound queue, used when upstreams are
// shared: a shared upstream's reader serves many clients and must never
// wait on one, so it copies what it has for a client here and goes on. A
// writer goroutine is started when the queue gets its first frame and ends
// when the queue is empty again, so an idle client costs no goroutine. A
// client that lets the queue grow past max bytes is closed (its sessions
// are then detached like those of any client that leaves).
type outQueue struct {
	c   *clientConn
	max int

	mu      sync.Mutex
	frames  []outFrame // owned copies, in order
	bytes   int
	running bool          // a writer goroutine is draining frames
	emptied chan struct{} // closed when that writer ends
	closed  bool          // the client is gone: nothing more is taken
	wg      sync.WaitGroup
}

// push takes f (copying its bytes: a backend's read buffer is lent) and
// reports whether the client still takes frames. The caller's buffer is
// released either way.
func (q *outQueue) push(f outFrame) bool {
	n := len(f.buf.B)
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		f.buf.Release()
		return false
	}
	if q.bytes > 0 && q.bytes+n > q.max {
		q.closed = true
		dropped := q.bytes
		q.releaseLocked()
		q.mu.Unlock()
		f.buf.Release()
		q.c.srv.limitReached(LimitClientQueue, "client does not read: closed", "client", q.c.id, "queued_bytes", dropped)
		// Not on the caller's goroutine, a shared upstream's reader: the
		// shutdown detaches the client's sessions, a write to that
		// upstream. The client's serve goroutine waits for it (shutdownOnce).
		go q.c.shutdown()
		return false
	}
	cp := frame.Copy(f.buf.B)
	f.buf.Release()
	f.buf = cp
	q.frames = append(q.frames, f)
	q.bytes += n
	if !q.running {
		q.running = true
		q.emptied = make(chan struct{})
		q.wg.Add(1)
		go q.writeLoop()
	}
	q.mu.Unlock()
	return true
}

// empty reports whether nothing waits to be written and no writer runs.
func (q *outQueue) empty() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return !q.running && len(q.frames) == 0
}

// writeLoop is the queue's writer goroutine: it writes what is queued to
// the client, flushing after each batch, and ends when the queue is empty
// or the client fails.
func (q *outQueue) writeLoop() {
	defer q.wg.Done()
	defer q.c.recoverPeer("client writer")
	c := q.c
	var batch []outFrame
	for {
		q.mu.Lock()
		if len(q.frames) == 0 || q.closed {
			q.running = false
			close(q.emptied)
			q.mu.Unlock()
			return
		}
		batch, q.frames = q.frames, batch[:0]
		q.bytes = 0
		q.mu.Unlock()
		c.wmu.Lock()
		err := error(nil)
		for i := range batch {
			f := &batch[i]
			if err == nil && !c.wfailed {
				err = writeOut(c.w, f)
				c.countOut(f)
			}
			f.buf.Release()
			batch[i] = outFrame{}
		}
		if err == nil && !c.wfailed {
			err = c.flushLocked()
		}
		if err != nil {
			c.wfailed = true
		}
		c.wmu.Unlock()
		if err != nil {
			c.log().Debug("client write failed", "error", err)
			c.shutdown()
		}
	}
}

// waitEmpty waits until what is queued was written, at most d: a client
// about to be closed for a protocol error gets the answer that says why.
func (q *outQueue) waitEmpty(d time.Duration) {
	q.mu.Lock()
	if !q.running {
		q.mu.Unlock()
		return
	}
	ch := q.emptied
	q.mu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	}
}

// close stops the queue taking frames, drops what waits and waits for the
// writer to end. The client's socket is closed first, so it ends soon.
func (q *outQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.releaseLocked()
	q.mu.Unlock()
	q.wg.Wait()
}

func (q *outQueue) releaseLocked() {
	for i := range q.frames {
		q.frames[i].buf.Release()
		q.frames[i] = outFrame{}
	}
	q.frames, q.bytes = q.frames[:0], 0
}
