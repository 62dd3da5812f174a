package frame

import (
	"bytes"
	"errors"
)

// Kind says what a JSON-RPC message is, from the members it has.
type Kind uint8

const (
	KindInvalid      Kind = iota
	KindRequest           // id and method
	KindNotification      // method, no id
	KindResponse          // id and result or error
)

func (k Kind) String() string {
	switch k {
	case KindRequest:
		return "request"
	case KindNotification:
		return "notification"
	case KindResponse:
		return "response"
	}
	return "invalid"
}

// ErrNotJSON reports a body that is not a JSON object.
var ErrNotJSON = errors.New("frame: body is not a JSON object")

// Span is a half-open byte range [Start, End) of a body. The zero Span is absent.
type Span struct{ Start, End int32 }

// Len is the span's length.
func (s Span) Len() int { return int(s.End - s.Start) }

// Of returns the bytes of body the span covers.
func (s Span) Of(body []byte) []byte { return body[s.Start:s.End] }

// Meta is what routing needs from a message, found by Scan without decoding
// the body. Spans index the scanned body.
type Meta struct {
	Kind Kind
	// ID is the raw JSON value of the id member: a number, a quoted string or null.
	ID Span
	// Method is the method name, inside its quotes.
	Method Span
	// SessionID is the value of params.sessionId, inside its quotes.
	SessionID Span
	// Escaped reports that Method or SessionID holds a JSON escape; callers
	// that need the exact text must unquote it (rare: both are plain ASCII in practice).
	Escaped bool
	// HasResult and HasError report the members of a response.
	HasResult, HasError bool
}

// Scan fills m from the top-level members of body and the top-level members
// of params. Large values (event payloads) are skipped, not decoded; Scan
// allocates nothing.
func Scan(body []byte, m *Meta) error {
	*m = Meta{}
	s := scanner{b: body}
	s.ws()
	if !s.eat('{') {
		return ErrNotJSON
	}
	hasID := false
	s.ws()
	if s.eat('}') {
		return classify(m, hasID)
	}
	for {
		s.ws()
		key, esc, ok := s.str()
		if !ok {
			return ErrNotJSON
		}
		s.ws()
		if !s.eat(':') {
			return ErrNotJSON
		}
		s.ws()
		start := s.i
		switch {
		case !esc && bytes.Equal(key, keyID):
			if !s.skip() {
				return ErrNotJSON
			}
			hasID = true
			m.ID = Span{int32(start), int32(s.i)}
		case !esc && bytes.Equal(key, keyMethod):
			v, vesc, ok := s.str()
			if !ok {
				return ErrNotJSON
			}
			m.Method = Span{int32(start + 1), int32(start + 1 + len(v))}
			m.Escaped = m.Escaped || vesc
		case !esc && bytes.Equal(key, keyParams):
			if !s.params(m) {
				return ErrNotJSON
			}
		case !esc && bytes.Equal(key, keyResult):
			m.HasResult = true
			if !s.skip() {
				return ErrNotJSON
			}
		case !esc && bytes.Equal(key, keyError):
			m.HasError = true
			if !s.skip() {
				return ErrNotJSON
			}
		default:
			if !s.skip() {
				return ErrNotJSON
			}
		}
		s.ws()
		if s.eat(',') {
			continue
		}
		if s.eat('}') {
			break
		}
		return ErrNotJSON
	}
	s.ws()
	if s.i != len(s.b) {
		return ErrNotJSON
	}
	return classify(m, hasID)
}

func classify(m *Meta, hasID bool) error {
	switch {
	case m.Method.End > 0 && hasID:
		m.Kind = KindRequest
	case m.Method.End > 0:
		m.Kind = KindNotification
	case hasID && (m.HasResult || m.HasError):
		m.Kind = KindResponse
	default:
		m.Kind = KindInvalid
	}
	return nil
}

var (
	keyID        = []byte("id")
	keyMethod    = []byte("method")
	keyParams    = []byte("params")
	keyResult    = []byte("result")
	keyError     = []byte("error")
	keySessionID = []byte("sessionId")
)

type scanner struct {
	b []byte
	i int
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\r', '\n':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) eat(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// str reads a JSON string at s.i and returns its raw contents (between the
// quotes) and whether it holds an escape.
func (s *scanner) str() (v []byte, escaped, ok bool) {
	if !s.eat('"') {
		return nil, false, false
	}
	start := s.i
	for {
		j := bytes.IndexByte(s.b[s.i:], '"')
		if j < 0 {
			return nil, false, false
		}
		end := s.i + j
		// Count the backslashes before the quote: an odd number escapes it.
		n := 0
		for k := end - 1; k >= start && s.b[k] == '\\'; k-- {
			n++
		}
		s.i = end + 1
		if n%2 == 0 {
			v = s.b[start:end]
			return v, bytes.IndexByte(v, '\\') >= 0, true
		}
	}
}

// params scans the params value: an object is searched for sessionId at its
// top level; any other value is skipped.
func (s *scanner) params(m *Meta) bool {
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		return s.skip()
	}
	s.i++
	s.ws()
	if s.eat('}') {
		return true
	}
	for {
		s.ws()
		key, esc, ok := s.str()
		if !ok {
			return false
		}
		s.ws()
		if !s.eat(':') {
			return false
		}
		s.ws()
		if !esc && bytes.Equal(key, keySessionID) && s.i < len(s.b) && s.b[s.i] == '"' {
			start := s.i + 1
			v, vesc, ok := s.str()
			if !ok {
				return false
			}
			m.SessionID = Span{int32(start), int32(start + len(v))}
			m.Escaped = m.Escaped || vesc
		} else if !s.skip() {
			return false
		}
		s.ws()
		if s.eat(',') {
			continue
		}
		return s.eat('}')
	}
}

// skip moves past one JSON value. Nested containers are skipped by depth
// counting, jumping over strings with IndexByte: event payloads are mostly
// string bytes, so this runs near memory speed.
func (s *scanner) skip() bool {
	if s.i >= len(s.b) {
		return false
	}
	switch c := s.b[s.i]; c {
	case '"':
		_, _, ok := s.str()
		return ok
	case '{', '[':
		depth := 0
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case '"':
				if _, _, ok := s.str(); !ok {
					return false
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					s.i++
					return true
				}
			}
			s.i++
		}
		return false
	default:
		// number, true, false, null: up to the next delimiter
		start := s.i
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case ',', '}', ']', ' ', '\t', '\r', '\n':
				return s.i > start
			}
			s.i++
		}
		return s.i > start
	}
}
