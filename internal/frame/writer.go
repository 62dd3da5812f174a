package frame

import (
	"bufio"
	"io"
	"strconv"
	"sync"
)

// writeBufferSize lets several large frames go out in one write system call.
const writeBufferSize = 128 << 10

// writeBuffers holds the buffers of idle Writers: a connection holds one
// only between its first write and its flush, so thousands of idle
// connections cost no write buffer.
var writeBuffers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, writeBufferSize) }}

// Writer writes framed messages into a buffer; Flush sends them. One
// goroutine owns a Writer. Writes are batched: the owner flushes when it has
// nothing more to write right now.
type Writer struct {
	dst io.Writer
	bw  *bufio.Writer // nil while nothing is buffered
	err error         // the first write error; every later call returns it
	hdr [40]byte
	vec *vecShim // dst's, when it is a VecWriter: bw writes through it
}

// VecWriter is a destination that takes two slices in one call (a
// vectored write): a Writer over one hands it a large body together with
// what is buffered before it, instead of copying the body into its buffer.
type VecWriter interface {
	io.Writer
	WriteVec(a, b []byte) error
}

// vecMin is the body size from which a Writer over a VecWriter writes the
// body from the caller's slice rather than copying it into its buffer.
const vecMin = 16 << 10

// vecShim is what a Writer's buffer flushes into when dst is a VecWriter:
// with tail set, a flush goes out with tail after it in one WriteVec.
type vecShim struct {
	vw   VecWriter
	tail []byte
}

func (s *vecShim) Write(p []byte) (int, error) {
	if s.tail == nil {
		return s.vw.Write(p)
	}
	tail := s.tail
	s.tail = nil
	if err := s.vw.WriteVec(p, tail); err != nil {
		return 0, err
	}
	return len(p), nil
}

// NewWriter returns a Writer over w.
func NewWriter(w io.Writer) *Writer {
	fw := &Writer{dst: w}
	if vw, ok := w.(VecWriter); ok {
		fw.vec = &vecShim{vw: vw}
		fw.dst = fw.vec
	}
	return fw
}

func (w *Writer) buffer() *bufio.Writer {
	if w.bw == nil {
		w.bw = writeBuffers.Get().(*bufio.Writer)
		w.bw.Reset(w.dst)
	}
	return w.bw
}

// Write frames body as it is.
func (w *Writer) Write(body []byte) error {
	if err := w.header(len(body)); err != nil {
		return err
	}
	return w.write(body)
}

// WriteWithID frames body with the bytes body[start:end] (the JSON value of
// the message's id) replaced by id. Nothing else of body changes.
func (w *Writer) WriteWithID(body []byte, start, end int, id []byte) error {
	if err := w.header(len(body) - (end - start) + len(id)); err != nil {
		return err
	}
	if err := w.write(body[:start]); err != nil {
		return err
	}
	if err := w.writeCopy(id); err != nil {
		return err
	}
	return w.write(body[end:])
}

// writeCopy writes a short p by copying it into the buffer, so that p does
// not escape: callers pass ids that live in their own (stack) values.
func (w *Writer) writeCopy(p []byte) error {
	if w.err != nil {
		return w.err
	}
	b := w.buffer()
	if len(p) <= b.Available() {
		_, err := b.Write(append(b.AvailableBuffer(), p...))
		return w.setErr(err)
	}
	for _, c := range p {
		if err := b.WriteByte(c); err != nil {
			return w.setErr(err)
		}
	}
	return nil
}

func (w *Writer) setErr(err error) error {
	if err != nil {
		w.err = err
	}
	return err
}

func (w *Writer) header(n int) error {
	h := append(w.hdr[:0], "Content-Length: "...)
	h = strconv.AppendInt(h, int64(n), 10)
	h = append(h, "\r\n\r\n"...)
	return w.write(h)
}

func (w *Writer) write(p []byte) error {
	if w.err != nil {
		return w.err
	}
	if w.vec != nil && len(p) >= vecMin {
		return w.writeVec(p)
	}
	if _, err := w.buffer().Write(p); err != nil {
		w.err = err
	}
	return w.err
}

// writeVec sends what is buffered and p together (one vectored write),
// without copying p, and gives the buffer back.
func (w *Writer) writeVec(p []byte) error {
	if w.bw == nil || w.bw.Buffered() == 0 {
		return w.setErr(w.vec.vw.WriteVec(nil, p))
	}
	w.vec.tail = p // the flush writes it after the buffered bytes
	err := w.Flush()
	w.vec.tail = nil
	return err
}

// Flush sends everything written so far, and gives the buffer back.
func (w *Writer) Flush() error {
	if w.err != nil {
		return w.err
	}
	if w.bw == nil {
		return nil
	}
	if err := w.bw.Flush(); err != nil {
		w.err = err
		return err
	}
	w.bw.Reset(nil)
	writeBuffers.Put(w.bw)
	w.bw = nil
	return nil
}

// Buffered reports the bytes written but not yet flushed.
func (w *Writer) Buffered() int {
	if w.bw == nil {
		return 0
	}
	return w.bw.Buffered()
}
