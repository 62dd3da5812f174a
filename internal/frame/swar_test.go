package frame

import (
	"encoding/json"
	"strings"
	"testing"
)

// endOfString agrees with encoding/json on where a string ends, for every
// length around the short/long boundary and escapes at every position.
func TestEndOfString(t *testing.T) {
	for n := 0; n < 2*shortString+10; n++ {
		for _, esc := range []string{`\"`, `\\`, `\\\"`, `\u0022`, `\n`} {
			for at := 0; at <= n; at += 7 {
				content := strings.Repeat("a", at) + esc + strings.Repeat("b", n-at)
				body := `"` + content + `"` + `,"next":1`
				var v string
				if err := json.Unmarshal([]byte(`"`+content+`"`), &v); err != nil {
					t.Fatalf("bad test string %q: %v", content, err)
				}
				end, ok := endOfString([]byte(body), 1)
				if !ok || end != len(content)+2 {
					t.Fatalf("len %d escape %q at %d: end %d ok %v, want %d", n, esc, at, end, ok, len(content)+2)
				}
			}
		}
	}
	if _, ok := endOfString([]byte(`"unterminated\"`), 1); ok {
		t.Fatal("unterminated string accepted")
	}
}

func TestHasByte(t *testing.T) {
	v := uint64(0)
	for i, c := range []byte("ab\"cd\\ef") {
		v |= uint64(c) << (8 * i)
	}
	if m := hasByte(v, '"'); m == 0 || m&0xff_ffff != 0x80_0000 {
		t.Fatalf("hasByte quote: %x", m)
	}
	if hasByte(v, 'z') != 0 {
		t.Fatal("hasByte found an absent byte")
	}
}
