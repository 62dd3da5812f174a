package frame

import (
	"bytes"
	"errors"
	"io"
	"sync"
)

// smallBufferSize is what an idle Reader holds: enough for a small frame. A
// Reader borrows a readBufferSize buffer from a pool only while more is
// pending than that, so thousands of idle connections cost little.
const smallBufferSize = 512

var readBuffers = sync.Pool{New: func() any {
	b := make([]byte, readBufferSize)
	return &b
}}

var errBufferFull = errors.New("frame: buffer full")

// inbuf buffers reads from src. buf[r:w] is read and not yet consumed.
type inbuf struct {
	src   io.Reader
	buf   []byte  // small[:] or *big
	big   *[]byte // the pooled buffer in use, or nil
	r, w  int
	full  bool  // the last read filled the buffer: more is likely pending
	err   error // a read error, returned once the buffered bytes are consumed
	small [smallBufferSize]byte
}

func (b *inbuf) buffered() int { return b.w - b.r }

func (b *inbuf) bytes() []byte { return b.buf[b.r:b.w] }

// fill reads more from src. It compacts the buffer first and moves to the
// large buffer when the small one is full. It returns errBufferFull when
// even the large one is, and src's error once nothing more can be read.
func (b *inbuf) fill() error {
	if b.buf == nil {
		b.buf = b.small[:]
	}
	if b.err != nil {
		return b.err
	}
	if b.r > 0 {
		b.w = copy(b.buf, b.buf[b.r:b.w])
		b.r = 0
	}
	if b.w == len(b.buf) || (b.full && b.big == nil) {
		if b.big != nil {
			return errBufferFull
		}
		b.borrow() // a busy stream: read in large batches until it drains
	}
	for range 100 {
		n, err := b.src.Read(b.buf[b.w:])
		b.w += n
		b.full = b.w == len(b.buf)
		if err != nil {
			b.err = err
			if n > 0 {
				return nil
			}
			return err
		}
		if n > 0 {
			return nil
		}
	}
	b.err = io.ErrNoProgress
	return b.err
}

// borrow moves what is buffered into a large pooled buffer.
func (b *inbuf) borrow() {
	big := readBuffers.Get().(*[]byte)
	b.w = copy(*big, b.buf[b.r:b.w])
	b.r = 0
	b.big, b.buf = big, *big
}

// wait blocks until at least one byte is buffered.
func (b *inbuf) wait() error {
	for b.buffered() == 0 {
		b.release()
		if err := b.fill(); err != nil {
			return err
		}
	}
	return nil
}

// release gives the large buffer back once everything in it is consumed.
func (b *inbuf) release() {
	if b.r != b.w {
		return
	}
	b.r, b.w = 0, 0
	if b.big != nil {
		readBuffers.Put(b.big)
		b.big = nil
		b.buf = b.small[:]
	}
}

// line returns the next line, '\n' included, without consuming it, or nil
// when no whole line is buffered.
func (b *inbuf) line() []byte {
	if i := bytes.IndexByte(b.bytes(), '\n'); i >= 0 {
		return b.buf[b.r : b.r+i+1]
	}
	return nil
}

// read copies what is buffered into p; with nothing buffered, it reads
// from src once, straight into p. The large buffer goes back to its pool as
// soon as it is empty: a body read this way may take long to arrive.
func (b *inbuf) read(p []byte) (int, error) {
	if b.buffered() > 0 {
		n := copy(p, b.bytes())
		b.r += n
		b.release()
		return n, nil
	}
	b.release()
	if b.err != nil {
		return 0, b.err
	}
	for range 100 {
		n, err := b.src.Read(p)
		if err != nil {
			b.err = err
			if n > 0 {
				return n, nil
			}
			return 0, err
		}
		if n > 0 {
			return n, nil
		}
	}
	b.err = io.ErrNoProgress
	return 0, b.err
}

// readFull fills p from the buffer, refilling it in large reads (which may
// bring the next frames too); the rest of a very large body is read straight
// into p so it is not copied twice.
func (b *inbuf) readFull(p []byte) error {
	for {
		n := copy(p, b.bytes())
		b.r += n
		p = p[n:]
		if len(p) == 0 {
			return nil
		}
		if b.err != nil {
			return b.err
		}
		if len(p) >= directReadSize {
			if _, err := io.ReadFull(b.src, p); err != nil {
				if errors.Is(err, io.EOF) {
					err = io.ErrUnexpectedEOF
				}
				b.err = err
				return err
			}
			return nil
		}
		if b.big == nil {
			b.borrow()
		}
		if err := b.fill(); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
}
