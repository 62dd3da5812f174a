package frame

import (
	"bytes"
	"errors"
	"fmt"
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

// ErrNotJSON reports a body that is not a JSON object (or whose method is
// not a string). ErrSyntax, which wraps it, reports a body that is not valid
// JSON at all: JSON-RPC answers those with a parse error (-32700), the other
// ones with an invalid request (-32600).
var (
	ErrNotJSON = errors.New("frame: body is not a JSON object")
	ErrSyntax  = fmt.Errorf("%w: invalid JSON", ErrNotJSON)
)

// maxDepth is the deepest nesting of objects and arrays Scan accepts, as
// encoding/json's: deeper input is refused as invalid, not walked.
const maxDepth = 10000

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
	// EventType is the value of params.event.type, inside its quotes, when
	// params.event is an object (a session.event notification); it is raw
	// (escapes are not decoded).
	EventType Span
	// MethodEscaped and SessionIDEscaped report that Method or SessionID
	// holds a JSON escape: a caller that decides on the name must unquote it
	// first (rare: both are plain ASCII in practice), as every JSON parser
	// behind the proxy will.
	MethodEscaped, SessionIDEscaped bool
	// HasResult and HasError report the members of a response.
	HasResult, HasError bool
}

// Scan fills m from the top-level members of body and the top-level members
// of params, and checks that body is valid JSON (as json.Valid does:
// grammar, escapes, control bytes and nesting depth; not UTF-8). Large
// values (event payloads) are validated, not decoded; Scan allocates nothing
// unless the nesting is deeper than 64. On ErrSyntax, m holds what was
// found before the error (an id, when one came first).
func Scan(body []byte, m *Meta) error {
	s := scanner{b: body}
	return s.scan(m)
}

// ScanHead is Scan for frames from a trusted backend, which stops once it
// has what routing needs of the two kinds that carry nearly all the bytes:
//   - a session.event or session.lifecycle notification (method ahead of
//     params, no id before it): once params.sessionId is found, and for a
//     session.event params.event.type too;
//   - a response whose id comes ahead of its result or error (and no method
//     before them): at the result or error member.
//
// The rest of such a body (an event's payload, a result such as a whole
// conversation) is neither walked nor validated: the frame goes on as the
// backend wrote it, and a member repeated after that point is not seen. The
// CLI writes every message as {jsonrpc, id, result|error} or {jsonrpc, id?,
// method, params} and every event with its type ahead of its data, so on
// its frames ScanHead reads the first 100 to 200 bytes whatever the size.
// Every other frame is scanned whole, exactly as Scan does.
func ScanHead(body []byte, m *Meta) error {
	if eventHead(body, m) {
		return nil
	}
	s := scanner{b: body, head: true}
	return s.scan(m)
}

// The head of a session.event as the CLI writes it, up to the sessionId's
// value, and what separates that value from the event's type.
var (
	eventPrefix = []byte(`{"jsonrpc":"2.0","method":"session.event","params":{"sessionId":"`)
	eventInfix  = []byte(`","event":{"type":"`)
)

// eventHead is ScanHead's fast path for a session.event laid out exactly as
// the CLI writes it, with no escape in its sessionId or type. It fills m as
// the walk would and reports whether it did; anything else takes the walk.
func eventHead(body []byte, m *Meta) bool {
	if !bytes.HasPrefix(body, eventPrefix) {
		return false
	}
	sid := len(eventPrefix)
	sidEnd := closingQuote(body, sid)
	if sidEnd <= sid || !bytes.HasPrefix(body[sidEnd:], eventInfix) {
		return false
	}
	typ := sidEnd + len(eventInfix)
	typEnd := closingQuote(body, typ)
	if typEnd <= typ {
		return false
	}
	const method = len(`{"jsonrpc":"2.0","method":"`)
	*m = Meta{
		Kind:      KindNotification,
		Method:    Span{int32(method), int32(method + len(methodSessionEvent))},
		SessionID: Span{int32(sid), int32(sidEnd)},
		EventType: Span{int32(typ), int32(typEnd)},
	}
	return true
}

// closingQuote returns the index of the quote that ends the string whose
// contents start at i, or -1 when the string holds an escape (or a control
// byte, or does not end): the walk deals with those.
func closingQuote(b []byte, i int) int {
	for j := i; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return j
		case c == '\\' || c < 0x20:
			return -1
		}
	}
	return -1
}

func (s *scanner) scan(m *Meta) error {
	*m = Meta{}
	s.ws()
	if !s.at('{') {
		// A valid JSON value that is not an object is not JSON-RPC (a batch,
		// say); anything else is not JSON.
		if s.skip() && s.end() {
			return ErrNotJSON
		}
		return ErrSyntax
	}
	s.i++
	s.depth = 1
	s.ws()
	if s.eat('}') {
		if !s.end() {
			return ErrSyntax
		}
		return s.finish(m)
	}
	for {
		s.ws()
		key, esc, ok := s.str()
		if !ok {
			return ErrSyntax
		}
		s.ws()
		if !s.eat(':') {
			return ErrSyntax
		}
		s.ws()
		start := s.i
		// A repeated member overwrites the earlier one, as in JSON.parse and
		// encoding/json: the proxy must see what the peer behind it will see.
		switch {
		case keyIs(key, esc, keyID):
			if !s.skip() {
				return ErrSyntax
			}
			s.hasID = true
			m.ID = Span{int32(start), int32(s.i)}
		case keyIs(key, esc, keyMethod):
			if !s.at('"') {
				m.Method, s.methodEsc, s.notice = Span{}, false, noticeNone
				s.badMethod = true
				if !s.skip() {
					return ErrSyntax
				}
				break
			}
			v, vesc, ok := s.str()
			if !ok {
				return ErrSyntax
			}
			m.Method = Span{int32(start + 1), int32(start + 1 + len(v))}
			s.methodEsc, s.badMethod = vesc, false
			s.notice = noticeOf(v, vesc)
		case keyIs(key, esc, keyParams):
			m.SessionID, s.sessionEsc = Span{}, false
			if !s.params(m) {
				return ErrSyntax
			}
		case keyIs(key, esc, keyResult):
			m.HasResult = true
			if s.answered(m) {
				return s.finish(m)
			}
			if !s.skip() {
				return ErrSyntax
			}
		case keyIs(key, esc, keyError):
			m.HasError = true
			if s.answered(m) {
				return s.finish(m)
			}
			if !s.skip() {
				return ErrSyntax
			}
		default:
			if !s.skip() {
				return ErrSyntax
			}
		}
		if s.done {
			return s.finish(m)
		}
		s.ws()
		if s.eat(',') {
			continue
		}
		if s.eat('}') {
			break
		}
		return ErrSyntax
	}
	if !s.end() {
		return ErrSyntax
	}
	return s.finish(m)
}

// end skips trailing white space and reports whether the body ends there.
func (s *scanner) end() bool {
	s.ws()
	return s.i == len(s.b)
}

// finish sets the fields that depend on the members finally kept.
func (s *scanner) finish(m *Meta) error {
	m.MethodEscaped, m.SessionIDEscaped = s.methodEsc, s.sessionEsc
	if s.badMethod {
		// A method that is not a string: valid JSON, not JSON-RPC.
		m.Kind = KindInvalid
		return ErrNotJSON
	}
	switch {
	case m.Method.End > 0 && s.hasID:
		m.Kind = KindRequest
	case m.Method.End > 0:
		m.Kind = KindNotification
	case s.hasID && (m.HasResult || m.HasError):
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
	keyEvent     = []byte("event")
	keyType      = []byte("type")

	methodSessionEvent     = []byte("session.event")
	methodSessionLifecycle = []byte("session.lifecycle")
)

// notice names the notifications ScanHead stops early in: methods that are
// notifications by the protocol, whatever members follow.
type notice uint8

const (
	noticeNone notice = iota
	noticeEvent
	noticeLifecycle
)

func noticeOf(method []byte, escaped bool) notice {
	switch {
	case escaped:
		return noticeNone
	case bytes.Equal(method, methodSessionEvent):
		return noticeEvent
	case bytes.Equal(method, methodSessionLifecycle):
		return noticeLifecycle
	}
	return noticeNone
}

type scanner struct {
	b []byte
	i int
	// methodEsc and sessionEsc report escapes in the Method and SessionID
	// kept; badMethod, a method member kept that is not a string.
	methodEsc, sessionEsc, badMethod bool
	// depth is the nesting of the object the walk is in (1: the message).
	depth int
	// hasID reports a top-level id member.
	hasID bool
	// notice is the notification the method kept names, if one ScanHead knows.
	notice notice
	// head is set by ScanHead; done, once it has what it needs: every
	// walk then returns at once without looking at the rest.
	head, done bool
}

// answered reports, for ScanHead, a response whose id came ahead of its
// result or error (and no method ahead of them): all routing needs of it.
func (s *scanner) answered(m *Meta) bool {
	return s.head && s.hasID && m.Method.End == 0
}

// enough marks the scan done when ScanHead has what a notification needs:
// its sessionId, and for a session.event its event type too.
func (s *scanner) enough(m *Meta) {
	if s.head && s.notice != 0 && !s.hasID && m.SessionID.End > 0 && (s.notice != noticeEvent || m.EventType.End > 0) {
		s.done = true
	}
}

// keyIs reports whether the member name key, raw JSON string contents that
// hold an escape when esc is set, is name once unescaped. Peers may spell a
// name with escapes ("\u0069d" is "id" to the CLI), so raw bytes are not enough.
func keyIs(key []byte, esc bool, name []byte) bool {
	if !esc {
		return bytes.Equal(key, name)
	}
	j := 0
	for i := 0; i < len(key); j++ {
		if j >= len(name) {
			return false
		}
		c := key[i]
		i++
		if c == '\\' {
			if i >= len(key) {
				return false
			}
			c = key[i]
			i++
			switch c {
			case '"', '\\', '/':
			case 'b':
				c = '\b'
			case 'f':
				c = '\f'
			case 'n':
				c = '\n'
			case 'r':
				c = '\r'
			case 't':
				c = '\t'
			case 'u':
				if i+4 > len(key) {
					return false
				}
				r, ok := hex4(key[i : i+4])
				// The names looked for are ASCII; any other rune cannot match.
				if !ok || r >= 0x80 {
					return false
				}
				c = byte(r)
				i += 4
			default:
				return false
			}
		}
		if c != name[j] {
			return false
		}
	}
	return j == len(name)
}

func hex4(b []byte) (rune, bool) {
	var r rune
	for _, c := range b {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
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
	if !s.at('"') {
		return nil, false, false
	}
	start := s.i + 1
	escaped, ok = s.skipStr()
	if !ok {
		return nil, false, false
	}
	return s.b[start : s.i-1], escaped, true
}

// skipStr moves past the JSON string at s.i (its opening quote), checking
// it as json.Valid does: every escape well formed, no control byte. It
// reports whether the string holds an escape.
func (s *scanner) skipStr() (escaped, ok bool) {
	b := s.b
	i := s.i + 1
	for {
		i = nextSpecial(b, i)
		if i >= len(b) {
			s.i = len(b)
			return escaped, false
		}
		switch b[i] {
		case '"':
			s.i = i + 1
			return escaped, true
		case '\\':
			escaped = true
			if i+1 >= len(b) {
				return escaped, false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) {
					return escaped, false
				}
				if _, ok := hex4(b[i+2 : i+6]); !ok {
					return escaped, false
				}
				i += 6
			default:
				return escaped, false
			}
		default: // a control byte, which JSON allows only escaped
			return escaped, false
		}
	}
}

// object walks the members of the object at s.i: member is called with
// each key, the scanner at the member's value, and must consume that value.
func (s *scanner) object(member func(key []byte, esc bool) bool) bool {
	s.i++ // '{'
	s.depth++
	defer func() { s.depth-- }()
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
		if !member(key, esc) {
			return false
		}
		if s.done {
			return true
		}
		s.ws()
		if s.eat(',') {
			continue
		}
		return s.eat('}')
	}
}

// at reports whether the next byte is c.
func (s *scanner) at(c byte) bool { return s.i < len(s.b) && s.b[s.i] == c }

// strSpan reads a string value and returns the span of its contents.
func (s *scanner) strSpan() (Span, bool, bool) {
	start := s.i + 1
	v, esc, ok := s.str()
	return Span{int32(start), int32(start + len(v))}, esc, ok
}

// event scans params.event, an object, for its top-level "type" string;
// every other member is skipped.
func (s *scanner) event(m *Meta) bool {
	m.EventType = Span{}
	return s.object(func(key []byte, esc bool) bool {
		if !keyIs(key, esc, keyType) || !s.at('"') {
			return s.skip()
		}
		span, _, ok := s.strSpan()
		m.EventType = span
		if ok {
			s.enough(m)
		}
		return ok
	})
}

// params scans the params value: an object is searched at its top level
// for sessionId and the event's type; any other value is skipped.
func (s *scanner) params(m *Meta) bool {
	if !s.at('{') {
		return s.skip()
	}
	return s.object(func(key []byte, esc bool) bool {
		switch {
		case keyIs(key, esc, keyEvent) && s.at('{'):
			return s.event(m)
		case !keyIs(key, esc, keySessionID):
			return s.skip()
		case s.at('"'):
			span, vesc, ok := s.strSpan()
			m.SessionID, s.sessionEsc = span, vesc
			if ok {
				s.enough(m)
			}
			return ok
		default:
			// A later sessionId that is not a string overrides an earlier one.
			m.SessionID, s.sessionEsc = Span{}, false
			return s.skip()
		}
	})
}

// skip moves past one JSON value and checks it as json.Valid does. It
// walks nested containers in a loop, not by recursion, so a deeply nested
// body costs a bit of memory per level, not a stack frame.
func (s *scanner) skip() bool {
	var n nesting
	for {
		// At the start of a value.
		if s.i >= len(s.b) {
			return false
		}
		switch s.b[s.i] {
		case '"':
			if _, ok := s.skipStr(); !ok {
				return false
			}
		case '{':
			s.i++
			s.ws()
			if s.eat('}') {
				break
			}
			if !n.push(true, s.depth) || !s.memberName() {
				return false
			}
			continue
		case '[':
			s.i++
			s.ws()
			if s.eat(']') {
				break
			}
			if !n.push(false, s.depth) {
				return false
			}
			continue
		case 't':
			if !s.literal(litTrue) {
				return false
			}
		case 'f':
			if !s.literal(litFalse) {
				return false
			}
		case 'n':
			if !s.literal(litNull) {
				return false
			}
		default:
			if !s.number() {
				return false
			}
		}
		// After a value: close what ends here, up to the next value.
		for {
			if n.depth == 0 {
				return true
			}
			s.ws()
			if s.eat(',') {
				s.ws()
				if n.inObject() && !s.memberName() {
					return false
				}
				break
			}
			closer := byte(']')
			if n.inObject() {
				closer = '}'
			}
			if !s.eat(closer) {
				return false
			}
			n.pop()
		}
	}
}

// memberName moves past a member's name and its colon, up to the value.
func (s *scanner) memberName() bool {
	if !s.at('"') {
		return false
	}
	if _, ok := s.skipStr(); !ok {
		return false
	}
	s.ws()
	if !s.eat(':') {
		return false
	}
	s.ws()
	return true
}

var (
	litTrue  = []byte("true")
	litFalse = []byte("false")
	litNull  = []byte("null")
)

func (s *scanner) literal(lit []byte) bool {
	if !bytes.HasPrefix(s.b[s.i:], lit) {
		return false
	}
	s.i += len(lit)
	return true
}

// number moves past a JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) number() bool {
	s.eat('-')
	switch {
	case s.eat('0'):
	case s.i < len(s.b) && '1' <= s.b[s.i] && s.b[s.i] <= '9':
		s.digits()
	default:
		return false
	}
	if s.eat('.') && s.digits() == 0 {
		return false
	}
	if s.eat('e') || s.eat('E') {
		if !s.eat('+') {
			s.eat('-')
		}
		if s.digits() == 0 {
			return false
		}
	}
	return true
}

func (s *scanner) digits() int {
	start := s.i
	for s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9' {
		s.i++
	}
	return s.i - start
}

// nesting is the stack of containers skip is inside: a bit per level, set
// for an object. The first 64 levels need no memory of their own.
type nesting struct {
	depth int
	low   uint64
	high  []uint64 // levels from 64 up, allocated only for such input
}

// push enters a container; it fails past maxDepth counted from base, the
// depth of the object the skipped value sits in.
func (n *nesting) push(object bool, base int) bool {
	if base+n.depth >= maxDepth {
		return false
	}
	var bit uint64
	if object {
		bit = 1
	}
	d := n.depth
	n.depth++
	if d < 64 {
		n.low = n.low&^(1<<d) | bit<<d
		return true
	}
	w, k := (d-64)/64, (d-64)%64
	if w == len(n.high) {
		n.high = append(n.high, 0)
	}
	n.high[w] = n.high[w]&^(1<<k) | bit<<k
	return true
}

func (n *nesting) pop() { n.depth-- }

// inObject reports whether the innermost container is an object.
func (n *nesting) inObject() bool {
	d := n.depth - 1
	if d < 64 {
		return n.low>>d&1 == 1
	}
	return n.high[(d-64)/64]>>((d-64)%64)&1 == 1
}
