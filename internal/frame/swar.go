package frame

import (
	"encoding/binary"
	"math/bits"
)

// Eight bytes at a time: the scanner's inner loops look for a few byte
// values in long runs of others, which a word-wide test does faster than a
// byte loop (and, for short runs, faster than a call to IndexByte).

const (
	lows  = 0x0101010101010101
	highs = 0x8080808080808080
)

// hasByte sets the high bit of each byte of v equal to c; bits above the
// first match may be spurious, so only the lowest set bit is exact.
func hasByte(v uint64, c byte) uint64 {
	x := v ^ (lows * uint64(c))
	return (x - lows) &^ x & highs
}

// hasLess sets the high bit of each byte of v below c (c <= 0x80); as with
// hasByte, only the lowest set bit is exact.
func hasLess(v uint64, c byte) uint64 {
	return (v - lows*uint64(c)) &^ v & highs
}

// nextSpecial returns the index of the first byte at or after i that ends a
// run of plain string contents: a quote, a backslash or a control byte (which
// JSON allows only escaped); len(b) when there is none.
func nextSpecial(b []byte, i int) int {
	for ; i+8 <= len(b); i += 8 {
		v := binary.LittleEndian.Uint64(b[i:])
		if m := hasByte(v, '"') | hasByte(v, '\\') | hasLess(v, 0x20); m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	for ; i < len(b); i++ {
		if c := b[i]; c == '"' || c == '\\' || c < 0x20 {
			return i
		}
	}
	return len(b)
}
