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
	// Long runs (event payloads are mostly string bytes) go 32 bytes a
	// step, with one branch for all four words.
	for ; i+32 <= len(b); i += 32 {
		w := b[i : i+32 : i+32]
		m0 := special(binary.LittleEndian.Uint64(w[0:]))
		m1 := special(binary.LittleEndian.Uint64(w[8:]))
		m2 := special(binary.LittleEndian.Uint64(w[16:]))
		m3 := special(binary.LittleEndian.Uint64(w[24:]))
		if m0|m1|m2|m3 != 0 {
			switch {
			case m0 != 0:
				return i + bits.TrailingZeros64(m0)/8
			case m1 != 0:
				return i + 8 + bits.TrailingZeros64(m1)/8
			case m2 != 0:
				return i + 16 + bits.TrailingZeros64(m2)/8
			}
			return i + 24 + bits.TrailingZeros64(m3)/8
		}
	}
	for ; i+8 <= len(b); i += 8 {
		if m := special(binary.LittleEndian.Uint64(b[i:])); m != 0 {
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

// special marks the bytes of v that end a run of plain string contents;
// only the lowest mark is exact.
func special(v uint64) uint64 {
	return hasByte(v, '"') | hasByte(v, '\\') | hasLess(v, 0x20)
}
