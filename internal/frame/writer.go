package frame

import (
	"bufio"
	"io"
	"strconv"
)

const writeBufferSize = 32 << 10

// Writer writes framed messages into a buffer; Flush sends them. One
// goroutine owns a Writer. Writes are batched: the owner flushes when it has
// nothing more to write right now.
type Writer struct {
	bw  *bufio.Writer
	hdr []byte
}

// NewWriter returns a Writer over w.
func NewWriter(w io.Writer) *Writer {
	return &Writer{bw: bufio.NewWriterSize(w, writeBufferSize), hdr: make([]byte, 0, 40)}
}

// Write frames body as it is.
func (w *Writer) Write(body []byte) error {
	if err := w.header(len(body)); err != nil {
		return err
	}
	_, err := w.bw.Write(body)
	return err
}

// WriteWithID frames body with the bytes body[start:end] (the JSON value of
// the message's id) replaced by id. Nothing else of body changes.
func (w *Writer) WriteWithID(body []byte, start, end int, id []byte) error {
	if err := w.header(len(body) - (end - start) + len(id)); err != nil {
		return err
	}
	if _, err := w.bw.Write(body[:start]); err != nil {
		return err
	}
	if _, err := w.bw.Write(id); err != nil {
		return err
	}
	_, err := w.bw.Write(body[end:])
	return err
}

func (w *Writer) header(n int) error {
	w.hdr = append(w.hdr[:0], "Content-Length: "...)
	w.hdr = strconv.AppendInt(w.hdr, int64(n), 10)
	w.hdr = append(w.hdr, "\r\n\r\n"...)
	_, err := w.bw.Write(w.hdr)
	return err
}

// Flush sends everything written so far.
func (w *Writer) Flush() error { return w.bw.Flush() }

// Buffered reports the bytes written but not yet flushed.
func (w *Writer) Buffered() int { return w.bw.Buffered() }
