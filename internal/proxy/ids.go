package proxy

import "strconv"

// rawID holds a JSON-RPC id exactly as its peer wrote it (a number, a quoted
// string or null), inline for the usual short ids so that keeping one per
// in-flight request allocates nothing.
type rawID struct {
	n    uint8
	b    [38]byte
	long *[]byte // an id longer than b, rare
}

func makeRawID(p []byte) rawID {
	var id rawID
	if len(p) <= len(id.b) {
		id.n = uint8(len(p))
		copy(id.b[:], p)
		return id
	}
	long := append([]byte(nil), p...)
	id.long = &long
	return id
}

// numericID is the rawID of a proxy-chosen number.
func numericID(v uint64) rawID {
	var id rawID
	id.n = uint8(len(strconv.AppendUint(id.b[:0], v, 10)))
	return id
}

// Bytes returns the id's JSON text. It aliases id, so id must stay put
// (not be copied) while the result is in use.
func (id *rawID) Bytes() []byte {
	if id.long != nil {
		return *id.long
	}
	return id.b[:id.n]
}

func (id *rawID) isZero() bool { return id.n == 0 && id.long == nil }

// parseUint reads a proxy-chosen numeric id; ids the proxy did not choose
// (strings, negative numbers) report false.
func parseUint(p []byte) (uint64, bool) {
	if len(p) == 0 || len(p) > 20 {
		return 0, false
	}
	var v uint64
	for _, c := range p {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	return v, true
}
