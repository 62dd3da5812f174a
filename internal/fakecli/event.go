package fakecli

import (
	"math/rand/v2"
	"time"
)

const hexDigits = "0123456789abcdef"

// appendUUID appends a random version-4 UUID, as the CLI uses for event,
// message and request ids.
func appendUUID(b []byte) []byte {
	hi, lo := rand.Uint64(), rand.Uint64()
	hi = hi&^(0xf<<12) | 0x4<<12 // version 4
	lo = lo&^(0x3<<62) | 0x2<<62 // RFC 4122 variant
	var raw [16]byte
	for i := range 8 {
		raw[i] = byte(hi >> (56 - 8*i))
		raw[8+i] = byte(lo >> (56 - 8*i))
	}
	for i, x := range raw {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b = append(b, '-')
		}
		b = append(b, hexDigits[x>>4], hexDigits[x&0xf])
	}
	return b
}

// newUUID returns a random version-4 UUID.
func newUUID() string {
	var buf [36]byte
	return string(appendUUID(buf[:0]))
}

// appendTimestamp appends t as the CLI writes times: UTC, milliseconds, "Z".
func appendTimestamp(b []byte, t time.Time) []byte {
	return t.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
}

// formatTime is appendTimestamp for a string.
func formatTime(t time.Time) string {
	var buf [32]byte
	return string(appendTimestamp(buf[:0], t))
}

const fillerText = "The quick brown fox jumps over the lazy dog; pack my box with five dozen liquor jugs. "

// fillerJSON returns a JSON string holding n bytes of plain text, the body
// of an assistant.message_delta. It is built once per size.
func fillerJSON(n int) []byte {
	b := make([]byte, 0, n+2)
	b = append(b, '"')
	for len(b)-1 < n {
		b = append(b, fillerText[:min(len(fillerText), n-(len(b)-1))]...)
	}
	return append(b, '"')
}
