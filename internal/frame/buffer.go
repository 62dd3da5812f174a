package frame

import "sync"

// Buffer holds one message body. Buffers come from size-classed pools so that
// a frame passing through the proxy costs no allocation in the steady state.
// Whoever holds a Buffer owns it until it calls Release or hands it on.
type Buffer struct {
	B     []byte
	class int8 // index into pools, or -1 for an unpooled buffer
}

// Size classes: most frames are small; session events reach tens of KiB.
var classSizes = [...]int{512, 4 << 10, 32 << 10, 256 << 10, 2 << 20}

var pools [len(classSizes)]sync.Pool

func init() {
	for i := range pools {
		size := classSizes[i]
		class := int8(i)
		pools[i].New = func() any { return &Buffer{B: make([]byte, 0, size), class: class} }
	}
}

// Get returns a Buffer whose B has length n.
func Get(n int) *Buffer {
	for i, size := range classSizes {
		if n <= size {
			b := pools[i].Get().(*Buffer)
			b.B = b.B[:n]
			return b
		}
	}
	return &Buffer{B: make([]byte, n), class: -1}
}

// Copy returns a pooled Buffer holding a copy of p.
func Copy(p []byte) *Buffer {
	b := Get(len(p))
	copy(b.B, p)
	return b
}

// Release returns b to its pool. b must not be used afterwards. Release of
// nil, of an unpooled Buffer or of one a Reader lent is a no-op.
func (b *Buffer) Release() {
	if b == nil || b.class < 0 {
		return
	}
	b.B = b.B[:0]
	pools[b.class].Put(b)
}
