package frame

import (
	"encoding/json"
	"strings"
	"testing"
)

// skipStr agrees with encoding/json on where a string ends, for every
// length around the word size and escapes at every position.
func TestSkipStr(t *testing.T) {
	end := func(b []byte) (int, bool) {
		s := scanner{b: b}
		_, ok := s.skipStr()
		return s.i, ok
	}
	for n := 0; n < 140; n++ {
		for _, esc := range []string{`\"`, `\\`, `\\\"`, `\u0022`, `\n`} {
			for at := 0; at <= n; at += 7 {
				content := strings.Repeat("a", at) + esc + strings.Repeat("b", n-at)
				body := `"` + content + `"` + `,"next":1`
				var v string
				if err := json.Unmarshal([]byte(`"`+content+`"`), &v); err != nil {
					t.Fatalf("bad test string %q: %v", content, err)
				}
				end, ok := end([]byte(body))
				if !ok || end != len(content)+2 {
					t.Fatalf("len %d escape %q at %d: end %d ok %v, want %d", n, esc, at, end, ok, len(content)+2)
				}
			}
		}
	}
	for _, bad := range []string{`"unterminated\"`, "\"tab\there\"", `"\x"`, `"\u12g4"`, `"\u12"`, `"\`} {
		if _, ok := end([]byte(bad)); ok {
			t.Errorf("skipStr accepted %q", bad)
		}
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
