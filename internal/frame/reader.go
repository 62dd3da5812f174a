// Package frame reads and writes Content-Length framed messages, the LSP-style
// framing that the Copilot SDK and CLI use for JSON-RPC 2.0, and peeks into a
// message body for the few fields routing needs without decoding it.
package frame

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"time"
)

// Defaults for Limits fields left zero.
const (
	DefaultMaxBody = 64 << 20 // 64 MiB
	// MaxBodyCap is the largest MaxBody allowed: a Span indexes a body with
	// int32s.
	MaxBodyCap           = 1 << 30 // 1 GiB
	DefaultMaxHeaderLine = 8 << 10 // 8 KiB
	DefaultMaxHeaders    = 32
	// readBufferSize is the large buffer a busy Reader borrows: big enough
	// to take several large frames in one read system call.
	readBufferSize = 128 << 10
	// maxHeaderLineCap is the longest MaxHeaderLine allowed.
	maxHeaderLineCap = 32 << 10
	// directReadSize is the body size from which a Reader reads the rest of
	// a body straight into it instead of through its buffer.
	directReadSize = 64 << 10
	// growFrom is the buffer a body that is not all here starts in; it
	// doubles as the bytes arrive, up to the body's length.
	growFrom = 32 << 10
)

// Sentinel errors a caller branches on. Every error but io.EOF means the
// stream can no longer be trusted to be in sync and should be closed.
var (
	ErrHeaderTooLong   = errors.New("frame: header line over limit")
	ErrTooManyHeaders  = errors.New("frame: too many header lines")
	ErrMalformedHeader = errors.New("frame: malformed header")
	ErrNoLength        = errors.New("frame: missing Content-Length")
	ErrBodyTooLarge    = errors.New("frame: Content-Length over limit")
	ErrStalled         = errors.New("frame: peer stalled in the middle of a frame")
	ErrBudget          = errors.New("frame: memory budget for unfinished frames exhausted")
)

// Limits bound what a Reader accepts from its peer. The zero value means the
// defaults above, no stall timeout and no shared budget.
type Limits struct {
	// MaxBody is the largest Content-Length accepted. Zero means
	// DefaultMaxBody; values above MaxBodyCap are capped there.
	MaxBody int
	// MaxHeaderLine is the longest header line accepted, terminator included.
	// Zero means DefaultMaxHeaderLine; values above 32 KiB are capped there.
	MaxHeaderLine int
	// FrameTimeout bounds the time from a frame's first byte to its last.
	// A peer that sends part of a frame and stalls gets ErrStalled. Zero
	// disables the check. It needs a Deadliner passed to NewReader.
	FrameTimeout time.Duration
	// Budget, shared by many Readers, bounds the bytes they hold in bodies
	// not yet whole. Nil means no bound but the MaxBody of each.
	Budget *Budget
}

func (l Limits) withDefaults() Limits {
	if l.MaxBody <= 0 {
		l.MaxBody = DefaultMaxBody
	}
	l.MaxBody = min(l.MaxBody, MaxBodyCap)
	if l.MaxHeaderLine <= 0 {
		l.MaxHeaderLine = DefaultMaxHeaderLine
	}
	if l.MaxHeaderLine > maxHeaderLineCap {
		l.MaxHeaderLine = maxHeaderLineCap
	}
	return l
}

// Deadliner is the part of net.Conn a Reader uses to bound a stalled frame.
type Deadliner interface {
	SetReadDeadline(t time.Time) error
}

// Reader reads one framed message per call. It is not safe for concurrent use;
// one goroutine owns it.
type Reader struct {
	in       inbuf
	limits   Limits
	dl       Deadliner
	deadline bool // a frame deadline is set on dl and must be cleared
	// lend: bodies already buffered are returned in place (see Lend); lent:
	// the last one was, and the buffer holding it is kept until the next Read.
	lend, lent bool
	view       Buffer
	budget     *Budget // nil: no shared bound
}

// NewReader returns a Reader over r. dl may be nil; it is used only when
// limits.FrameTimeout is set.
func NewReader(r io.Reader, dl Deadliner, limits Limits) *Reader {
	l := limits.withDefaults()
	return &Reader{in: inbuf{src: r}, limits: l, dl: dl, budget: l.Budget}
}

// Buffered reports how many bytes are read from the peer and not yet returned.
// A forwarder flushes its writes when this is zero: nothing more is at hand.
func (r *Reader) Buffered() int { return r.in.buffered() }

// SetMaxBody changes the largest Content-Length accepted from the next
// frame on, as Limits.MaxBody does (zero means DefaultMaxBody): a server
// that takes only small frames before a peer authenticates raises it after.
func (r *Reader) SetMaxBody(n int) {
	l := r.limits
	l.MaxBody = n
	r.limits = l.withDefaults()
}

// Lend makes Read return a body that is already whole in the read buffer in
// place, without copying it out: the Buffer is then valid only until the next
// Read (its Release does nothing). For a caller that is done with each frame
// before it reads the next, as a forwarder is.
func (r *Reader) Lend() { r.lend = true }

// Read returns the next message body in a pooled Buffer that the caller owns
// and must Release (with Lend, possibly one lent until the next Read). At a
// clean end of stream between frames it returns io.EOF; a stream that ends
// inside a frame gives io.ErrUnexpectedEOF.
func (r *Reader) Read() (*Buffer, error) {
	if r.lent {
		// The lent body is dead now: its buffer may be compacted or given back.
		r.lent, r.view = false, Buffer{}
		r.in.release()
	}
	// Wait for the first byte of a frame with no deadline: idle peers are fine.
	if err := r.in.wait(); err != nil {
		return nil, err
	}
	n, err := r.quickHeader()
	if n < 0 {
		n, err = r.readHeader()
	}
	if err != nil {
		r.clearDeadline()
		return nil, err
	}
	if r.lend && n <= r.in.buffered() {
		start := r.in.r
		r.in.r += n
		r.view = Buffer{B: r.in.buf[start:r.in.r:r.in.r], class: -1}
		r.lent = true
		r.clearDeadline()
		return &r.view, nil
	}
	if n > r.in.buffered() {
		return r.readBody(n)
	}
	buf := Get(n)
	r.in.r += copy(buf.B, r.in.bytes())
	r.clearDeadline()
	r.in.release()
	return buf, nil
}

// readBody reads a body of n bytes that is not all buffered yet. Memory
// follows the bytes received: the body's buffer starts at growFrom and
// doubles as they arrive, so a peer that announces a large frame and sends
// little of it holds little. Every byte held counts against the Budget
// until the body is whole.
func (r *Reader) readBody(n int) (*Buffer, error) {
	r.armDeadline()
	buf, err := r.grow(nil, n, min(n, max(growFrom, r.in.buffered())))
	got := 0
	for err == nil {
		if len(buf.B) == n {
			// Room for all of it: the rest comes in large reads, or
			// straight into the body when it is large.
			if err = r.in.readFull(buf.B[got:]); err == nil {
				r.budget.give(len(buf.B))
				r.clearDeadline()
				r.in.release()
				return buf, nil
			}
			break
		}
		if got == len(buf.B) {
			buf, err = r.grow(buf, n, min(n, 2*len(buf.B)))
			continue
		}
		var k int
		k, err = r.in.read(buf.B[got:])
		got += k
	}
	r.dropBody(buf)
	err = r.mapErr(err) // before clearDeadline: mapErr needs to know it was armed
	r.clearDeadline()
	return nil, err
}

// grow returns a buffer of size bytes holding old's bytes, and moves old's
// share of the budget to it. The budget counts the bytes a body can hold,
// not the pool's rounding up: pages of a fresh buffer cost memory only once
// written. On error old is released.
func (r *Reader) grow(old *Buffer, n, size int) (*Buffer, error) {
	buf := Get(size)
	if !r.budget.take(len(buf.B)) {
		buf.Release()
		r.dropBody(old)
		return nil, fmt.Errorf("%w: %d bytes held, %d more needed for a %d-byte frame",
			ErrBudget, r.budget.Used(), size, n)
	}
	if old != nil {
		copy(buf.B, old.B)
		r.dropBody(old)
	}
	return buf, nil
}

// dropBody releases a body's buffer and gives its bytes back to the budget.
func (r *Reader) dropBody(buf *Buffer) {
	if buf != nil {
		r.budget.give(len(buf.B))
		buf.Release()
	}
}

var contentLength = []byte("content-length")

// quickHeader consumes a buffered header written exactly as the SDK and
// the CLI write it, "Content-Length: N\r\n\r\n", and returns N; -1 for any
// other header (or one not all buffered, or over MaxBody), which readHeader
// then reads line by line and judges.
func (r *Reader) quickHeader() (int, error) {
	end, n := quickHeader(r.in.bytes())
	if n < 0 || n > r.limits.MaxBody {
		return -1, nil
	}
	r.in.r += end
	return n, nil
}

var quickPrefix = []byte("Content-Length: ")

// quickHeader parses "Content-Length: N\r\n\r\n" at the start of buf and
// returns where the body starts and N, or n = -1.
func quickHeader(buf []byte) (end, n int) {
	if !bytes.HasPrefix(buf, quickPrefix) {
		return 0, -1
	}
	i := len(quickPrefix)
	digits := i
	for i < len(buf) && i-digits < 12 && '0' <= buf[i] && buf[i] <= '9' {
		i++
	}
	if i == digits || len(buf)-i < 4 || string(buf[i:i+4]) != "\r\n\r\n" {
		return 0, -1
	}
	n, ok := parseLength(buf[digits:i])
	if !ok {
		return 0, -1
	}
	return i + 4, n
}

// readHeader reads header lines up to the empty line and returns Content-Length.
func (r *Reader) readHeader() (int, error) {
	length := -1
	for lines := 0; ; lines++ {
		if lines >= DefaultMaxHeaders {
			return 0, ErrTooManyHeaders
		}
		line, err := r.readLine()
		if err != nil {
			return 0, err
		}
		if len(line) == 0 {
			if length < 0 {
				return 0, ErrNoLength
			}
			return length, nil
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return 0, fmt.Errorf("%w: header line without a name", ErrMalformedHeader)
		}
		if !bytes.EqualFold(bytes.TrimSpace(line[:colon]), contentLength) {
			continue // Content-Type and any other header are tolerated
		}
		v, ok := parseLength(bytes.TrimSpace(line[colon+1:]))
		if !ok {
			return 0, fmt.Errorf("%w: bad Content-Length", ErrMalformedHeader)
		}
		if v > r.limits.MaxBody {
			return 0, fmt.Errorf("%w: %d > %d", ErrBodyTooLarge, v, r.limits.MaxBody)
		}
		length = v
	}
}

// readLine returns one header line without its "\r\n" or "\n". The slice is
// valid until the next read.
func (r *Reader) readLine() ([]byte, error) {
	for {
		if line := r.in.line(); line != nil {
			r.in.r += len(line)
			if len(line) > r.limits.MaxHeaderLine {
				return nil, ErrHeaderTooLong
			}
			line = line[:len(line)-1]
			if n := len(line); n > 0 && line[n-1] == '\r' {
				line = line[:n-1]
			}
			return line, nil
		}
		if r.in.buffered() >= r.limits.MaxHeaderLine {
			return nil, ErrHeaderTooLong
		}
		r.armDeadline()
		if err := r.in.fill(); err != nil {
			if errors.Is(err, errBufferFull) {
				return nil, ErrHeaderTooLong
			}
			return nil, r.mapErr(err)
		}
	}
}

// parseLength parses a non-negative decimal without allocating. A value too
// large for an int (12 digits overflow a 32-bit int) saturates at math.MaxInt,
// which no limit admits, rather than wrapping to a small length.
func parseLength(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 12 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := int(c - '0')
		if n > (math.MaxInt-d)/10 {
			n = math.MaxInt
			continue
		}
		n = n*10 + d
	}
	return n, true
}

// armDeadline bounds the rest of the current frame; it is called only when a
// read may block mid-frame, so whole frames already buffered cost nothing.
func (r *Reader) armDeadline() {
	if r.deadline || r.dl == nil || r.limits.FrameTimeout <= 0 {
		return
	}
	r.deadline = true
	_ = r.dl.SetReadDeadline(time.Now().Add(r.limits.FrameTimeout))
}

func (r *Reader) clearDeadline() {
	if !r.deadline {
		return
	}
	r.deadline = false
	_ = r.dl.SetReadDeadline(time.Time{})
}

// mapErr turns errors met inside a frame into the package's vocabulary.
func (r *Reader) mapErr(err error) error {
	switch {
	case errors.Is(err, io.EOF):
		return io.ErrUnexpectedEOF
	case errors.Is(err, os.ErrDeadlineExceeded) && r.deadline:
		return ErrStalled
	}
	return err
}

// Ready reports whether a whole frame is buffered, so that the next Read
// will not block. A forwarder flushes its writes when nothing is ready:
// a peer that sent only part of a frame must not hold back what came before.
func (r *Reader) Ready() bool {
	buf := r.in.bytes()
	end, length, ok := bufferedHeader(buf)
	return ok && len(buf)-end >= length
}

// bufferedHeader parses a complete header at the start of buf and returns
// where the body starts and its length; ok is false when the header is not
// all there or is not valid (Read will report the problem).
func bufferedHeader(buf []byte) (end, length int, ok bool) {
	if end, n := quickHeader(buf); n >= 0 {
		return end, n, true
	}
	length = -1
	for i := 0; i < DefaultMaxHeaders; i++ {
		nl := bytes.IndexByte(buf[end:], '\n')
		if nl < 0 {
			return 0, 0, false
		}
		line := buf[end : end+nl]
		end += nl + 1
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		if len(line) == 0 {
			return end, length, length >= 0
		}
		if colon := bytes.IndexByte(line, ':'); colon > 0 && bytes.EqualFold(bytes.TrimSpace(line[:colon]), contentLength) {
			v, good := parseLength(bytes.TrimSpace(line[colon+1:]))
			if !good {
				return 0, 0, false
			}
			length = v
		}
	}
	return 0, 0, false
}
