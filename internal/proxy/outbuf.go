package proxy

import (
	"errors"
	"net"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// outBuffer is the socket end of a client's writer when upstreams are
// shared: a shared upstream's reader serves many clients and must never
// wait on one. Every write first tries the socket without blocking (one
// system call, no copy: what a client that reads costs); what the socket
// does not take is copied into pending, in order, and a drainer goroutine
// (which exists only while pending is not empty) writes it with the write
// timeout while later writes append behind it. A client that lets pending
// grow past max is closed: its sessions are then detached like those of
// any client that leaves.
//
// Every field is guarded by the client's write lock (c.wmu), which is
// never held across a blocking write.
type outBuffer struct {
	c       *clientConn
	conn    net.Conn
	raw     syscall.RawConn // nil when the connection has none: every write is queued
	max     int
	timeout time.Duration

	pending  []byte // what the socket has not taken yet
	spare    []byte // the drainer's last chunk, reused
	draining bool   // a drainer owns the socket: writes go to pending
	full     bool   // the client let pending fill and is being closed
	emptied  chan struct{}
	wg       sync.WaitGroup

	// The non-blocking write's arguments and results, so that its
	// callback is made once (rawWrite), not per write.
	rawFn    func(fd uintptr) bool
	rawVecFn func(fd uintptr) bool
	iov      [2]syscall.Iovec
	iovN     int
	rawBuf   []byte
	rawN     int
	rawErr   error
}

var errClientQueueFull = errors.New("client does not read: its outbound queue is full")

// keepSpare bounds the drainer buffers kept once pending is empty again.
const keepSpare = 64 << 10

func newOutBuffer(c *clientConn, conn net.Conn, max int, timeout time.Duration) *outBuffer {
	o := &outBuffer{c: c, conn: conn, max: max, timeout: timeout}
	if sc, ok := conn.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			o.raw = raw
			o.rawFn = o.rawWrite
			o.rawVecFn = o.rawWritev
		}
	}
	return o
}

// Write takes p whole or fails; c.wmu is held. It never blocks.
func (o *outBuffer) Write(p []byte) (int, error) {
	if o.full {
		return 0, errClientQueueFull
	}
	n := len(p)
	if !o.draining && o.raw != nil {
		w, err := o.tryWrite(p)
		if err != nil {
			return w, err
		}
		if p = p[w:]; len(p) == 0 {
			return n, nil
		}
	}
	if err := o.queue(p); err != nil {
		return 0, err
	}
	return n, nil
}

// WriteVec writes a then b, like two Writes in one system call (frame.Writer
// uses it for large bodies, which then are not copied); c.wmu is held.
func (o *outBuffer) WriteVec(a, b []byte) error {
	if o.full {
		return errClientQueueFull
	}
	if !o.draining && o.raw != nil {
		w, err := o.tryWritev(a, b)
		if err != nil {
			return err
		}
		if w >= len(a) {
			a, b = nil, b[w-len(a):]
		} else {
			a = a[w:]
		}
		if len(a)+len(b) == 0 {
			return nil
		}
	}
	if err := o.queue(a); err != nil {
		return err
	}
	return o.queue(b)
}

// queue appends p to what waits for the drainer, starting it, or closes
// the client when that would pass max; c.wmu is held.
func (o *outBuffer) queue(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	if len(o.pending) > 0 && len(o.pending)+len(p) > o.max {
		o.full = true
		dropped := len(o.pending)
		o.pending = nil
		o.c.srv.limitReached(LimitClientQueue, "client does not read: closed", "client", o.c.id, "queued_bytes", dropped)
		// Not on the writer's goroutine (perhaps a shared upstream's
		// reader): the shutdown detaches the client's sessions. The
		// client's serve goroutine waits for it (shutdownOnce).
		go o.c.shutdown()
		return errClientQueueFull
	}
	o.pending = append(o.pending, p...)
	if !o.draining {
		o.draining = true
		o.emptied = make(chan struct{})
		o.wg.Add(1)
		go o.drain()
	}
	return nil
}

// tryWrite writes what the socket takes at once.
func (o *outBuffer) tryWrite(p []byte) (int, error) {
	o.rawBuf, o.rawN, o.rawErr = p, 0, nil
	err := o.raw.Write(o.rawFn)
	n, werr := o.rawN, o.rawErr
	o.rawBuf = nil
	if err == nil {
		err = werr
	}
	return n, err
}

// tryWritev writes what the socket takes of a then b at once: one writev,
// then plain writes of what is left while the socket takes it.
func (o *outBuffer) tryWritev(a, b []byte) (int, error) {
	o.iov[0].Base, o.iov[1].Base = nil, nil
	n := 0
	if len(a) > 0 {
		o.iov[n] = syscall.Iovec{Base: &a[0]}
		o.iov[n].SetLen(len(a))
		n++
	}
	if len(b) > 0 {
		o.iov[n] = syscall.Iovec{Base: &b[0]}
		o.iov[n].SetLen(len(b))
		n++
	}
	if n == 0 {
		return 0, nil
	}
	o.iovN, o.rawN, o.rawErr = n, 0, nil
	err := o.raw.Write(o.rawVecFn)
	w, werr := o.rawN, o.rawErr
	o.iov[0].Base, o.iov[1].Base = nil, nil // keep no pointer into the caller's slices
	if err == nil {
		err = werr
	}
	if err != nil || w < len(a)+len(b) {
		return w, err
	}
	return w, nil
}

// rawWritev is tryWritev's callback: one writev of the prepared vectors.
func (o *outBuffer) rawWritev(fd uintptr) bool {
	for {
		r, _, e := syscall.Syscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&o.iov[0])), uintptr(o.iovN))
		switch {
		case e == syscall.EINTR:
			continue
		case e == syscall.EAGAIN:
		case e != 0:
			o.rawErr = e
		default:
			o.rawN = int(r)
		}
		return true
	}
}

// rawWrite is tryWrite's callback: write until the socket would block.
func (o *outBuffer) rawWrite(fd uintptr) bool {
	for o.rawN < len(o.rawBuf) {
		n, err := syscall.Write(int(fd), o.rawBuf[o.rawN:])
		if n > 0 {
			o.rawN += n
		}
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return true
		case err != nil:
			o.rawErr = err
			return true
		case n <= 0:
			return true
		}
	}
	return true
}

// drain is the drainer goroutine: it writes pending, chunk by chunk, each
// under the write timeout, and ends when pending is empty or the write
// fails (then the client is closed).
func (o *outBuffer) drain() {
	defer o.wg.Done()
	defer o.c.recoverPeer("client writer")
	c := o.c
	for {
		c.wmu.Lock()
		if len(o.pending) == 0 || o.full {
			o.stopLocked()
			c.wmu.Unlock()
			return
		}
		chunk := o.pending
		o.pending = o.spare[:0]
		o.spare = nil
		c.wmu.Unlock()
		_ = o.conn.SetWriteDeadline(time.Now().Add(o.timeout))
		_, err := o.conn.Write(chunk)
		c.wmu.Lock()
		if cap(chunk) <= keepSpare {
			o.spare = chunk[:0]
		}
		if err != nil {
			c.wfailed = true
			o.pending = nil
			o.stopLocked()
			c.wmu.Unlock()
			c.log().Debug("client write failed", "error", err)
			c.shutdown()
			return
		}
		c.wmu.Unlock()
	}
}

// stopLocked ends draining; c.wmu is held.
func (o *outBuffer) stopLocked() {
	o.draining = false
	close(o.emptied)
	if cap(o.pending) > keepSpare {
		o.pending = nil
	}
}

// idle reports whether nothing waits to be written; c.wmu is held.
func (o *outBuffer) idleLocked() bool {
	return !o.draining && len(o.pending) == 0
}

// waitEmpty waits until what is pending was written, at most d: a client
// about to be closed for a protocol error gets the answer that says why.
func (o *outBuffer) waitEmpty(d time.Duration) {
	o.c.wmu.Lock()
	if !o.draining {
		o.c.wmu.Unlock()
		return
	}
	ch := o.emptied
	o.c.wmu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	}
}

// close drops what is pending and waits for the drainer. The client's
// socket is closed first, so a drainer blocked in a write ends at once.
func (o *outBuffer) close() {
	o.c.wmu.Lock()
	o.full = true
	o.pending = nil
	o.c.wmu.Unlock()
	o.wg.Wait()
}
