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

// nextQuoteOrEscape returns the index of the first '"' or '\' in b at or
// after i, looking at most limit bytes ahead, or i+limit (capped at len(b))
// when there is none within reach.
func nextQuoteOrEscape(b []byte, i, limit int) int {
	end := min(i+limit, len(b))
	for ; i+8 <= end; i += 8 {
		v := binary.LittleEndian.Uint64(b[i:])
		if m := hasByte(v, '"') | hasByte(v, '\\'); m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	for ; i < end; i++ {
		if c := b[i]; c == '"' || c == '\\' {
			return i
		}
	}
	return end
}
