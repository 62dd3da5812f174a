package frame

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// scanCase is one Scan input with the fields expected from it. Empty strings
// mean absent (or empty: the encoding/json check tells the two apart).
type scanCase struct {
	name      string
	body      string
	err       error
	kind      Kind
	id        string // raw JSON value
	method    string // raw, inside the quotes
	sessionID string // raw, inside the quotes
	escaped   bool
	result    bool
	error     bool
}

var scanCases = []scanCase{
	// Requests, notifications and responses with every kind of id.
	{name: "request number id", body: `{"jsonrpc":"2.0","id":1,"method":"ping"}`, kind: KindRequest, id: `1`, method: `ping`},
	{name: "request string id", body: `{"jsonrpc":"2.0","id":"c-7","method":"ping"}`, kind: KindRequest, id: `"c-7"`, method: `ping`},
	{name: "request null id", body: `{"id":null,"method":"ping"}`, kind: KindRequest, id: `null`, method: `ping`},
	{name: "request negative float id", body: `{"id":-1.5e3,"method":"ping"}`, kind: KindRequest, id: `-1.5e3`, method: `ping`},
	{name: "id after method", body: `{"method":"ping","id":12}`, kind: KindRequest, id: `12`, method: `ping`},
	{name: "id after params", body: `{"method":"session.send","params":{"sessionId":"s1","prompt":"hi"},"id":3}`, kind: KindRequest, id: `3`, method: `session.send`, sessionID: `s1`},
	{name: "id between method and params", body: `{"method":"session.send","id":"x","params":{"sessionId":"s1"}}`, kind: KindRequest, id: `"x"`, method: `session.send`, sessionID: `s1`},
	{name: "id with escaped quote", body: `{"id":"a\"b","method":"m"}`, kind: KindRequest, id: `"a\"b"`, method: `m`},
	{name: "empty method", body: `{"id":1,"method":""}`, kind: KindRequest, id: `1`},
	{
		name:      "session.send",
		body:      `{"jsonrpc":"2.0","id":2,"method":"session.send","params":{"sessionId":"user-42-abc","prompt":"ping"}}`,
		kind:      KindRequest,
		id:        `2`,
		method:    `session.send`,
		sessionID: `user-42-abc`,
	},
	{name: "notification", body: `{"jsonrpc":"2.0","method":"session.event","params":{"sessionId":"s","event":{}}}`, kind: KindNotification, method: `session.event`, sessionID: `s`},
	{name: "notification without params", body: `{"method":"exit"}`, kind: KindNotification, method: `exit`},
	{name: "response result", body: `{"jsonrpc":"2.0","id":0,"result":{"ok":true,"protocolVersion":3}}`, kind: KindResponse, id: `0`, result: true},
	{name: "response null result", body: `{"id":"r","result":null}`, kind: KindResponse, id: `"r"`, result: true},
	{name: "response error", body: `{"jsonrpc":"2.0","id":5,"error":{"code":-32001,"message":"authentication required"}}`, kind: KindResponse, id: `5`, error: true},
	{name: "response error null id", body: `{"id":null,"error":{"code":-32700,"message":"parse error"}}`, kind: KindResponse, id: `null`, error: true},
	{name: "response id last", body: `{"result":[1,{"a":[]}],"id":9}`, kind: KindResponse, id: `9`, result: true},
	{name: "result with braces in strings", body: `{"id":1,"result":{"text":"} ] { [ \"}\" \\","n":[{"x":"]"}]}}`, kind: KindResponse, id: `1`, result: true},
	{name: "empty object", body: `{}`, kind: KindInvalid},
	{name: "id only", body: `{"id":1}`, kind: KindInvalid, id: `1`},
	{name: "result without id", body: `{"result":1}`, kind: KindInvalid, result: true},

	// Where sessionId is, and is not, taken from.
	{name: "sessionId at top level ignored", body: `{"method":"m","sessionId":"top","params":{}}`, kind: KindNotification, method: `m`},
	{name: "nested sessionId ignored", body: `{"method":"m","params":{"event":{"sessionId":"inner"},"list":[{"sessionId":"x"}]}}`, kind: KindNotification, method: `m`},
	{name: "nested before top", body: `{"method":"m","params":{"event":{"sessionId":"inner"},"sessionId":"outer"}}`, kind: KindNotification, method: `m`, sessionID: `outer`},
	{name: "sessionId in result ignored", body: `{"id":1,"result":{"sessionId":"r"}}`, kind: KindResponse, id: `1`, result: true},
	{name: "sessionId in error ignored", body: `{"id":1,"error":{"data":{"sessionId":"r"}}}`, kind: KindResponse, id: `1`, error: true},
	{name: "non-string sessionId", body: `{"method":"m","params":{"sessionId":17}}`, kind: KindNotification, method: `m`},
	{name: "null sessionId", body: `{"method":"m","params":{"sessionId":null}}`, kind: KindNotification, method: `m`},
	{name: "object sessionId", body: `{"method":"m","params":{"sessionId":{"sessionId":"x"}}}`, kind: KindNotification, method: `m`},
	{name: "empty sessionId", body: `{"method":"m","params":{"sessionId":""}}`, kind: KindNotification, method: `m`},
	{name: "params as array", body: `{"id":1,"method":"m","params":["sessionId","s",{"sessionId":"t"}]}`, kind: KindRequest, id: `1`, method: `m`},
	{name: "params as string", body: `{"id":1,"method":"m","params":"{\"sessionId\":\"s\"}"}`, kind: KindRequest, id: `1`, method: `m`},
	{name: "params null", body: `{"id":1,"method":"m","params":null}`, kind: KindRequest, id: `1`, method: `m`},
	{name: "sessionId key with a different case", body: `{"method":"m","params":{"sessionid":"a","SessionId":"b"}}`, kind: KindNotification, method: `m`},
	{
		name:      "sessionId after a large nested value",
		body:      `{"method":"session.event","params":{"event":` + nestedValue(200) + `,"sessionId":"late"}}`,
		kind:      KindNotification,
		method:    `session.event`,
		sessionID: `late`,
	},
	{
		name:      "sessionId after deep nesting",
		body:      `{"method":"m","params":{"a":` + strings.Repeat(`[{"x":`, 500) + `1` + strings.Repeat(`}]`, 500) + `,"sessionId":"deep"}}`,
		kind:      KindNotification,
		method:    `m`,
		sessionID: `deep`,
	},

	// Escapes.
	{name: "value ending in backslash", body: `{"id":"a\\","method":"m\\"}`, kind: KindRequest, id: `"a\\"`, method: `m\\`, escaped: true},
	{name: "many backslashes", body: `{"id":"\\\\\\","method":"m","params":{"x":"\\\"\\","sessionId":"s\\\\"}}`, kind: KindRequest, id: `"\\\\\\"`, method: `m`, sessionID: `s\\\\`, escaped: true},
	{name: "escaped quote in sessionId", body: `{"method":"m","params":{"sessionId":"a\"b"}}`, kind: KindNotification, method: `m`, sessionID: `a\"b`, escaped: true},
	{name: "unicode escape in method", body: `{"method":"p\u0069ng"}`, kind: KindNotification, method: `p\u0069ng`, escaped: true},
	{name: "escape elsewhere is not Escaped", body: `{"id":"\n","method":"m","params":{"text":"\"q\"","sessionId":"s"}}`, kind: KindRequest, id: `"\n"`, method: `m`, sessionID: `s`},
	{name: "key containing quote", body: `{"i\"d":1,"method":"m"}`, kind: KindNotification, method: `m`},
	{name: "escaped member names", body: `{"\u0069d":4,"\u006dethod":"m","p\u0061rams":{"session\u0049d":"s"}}`, kind: KindRequest, id: `4`, method: `m`, sessionID: `s`},
	{name: "escaped solidus in name", body: `{"i\/d":1,"\/method":"m"}`, kind: KindInvalid},
	{name: "unicode escape to non-ASCII name", body: `{"\u0130d":1,"method":"m"}`, kind: KindNotification, method: `m`},
	{name: "non-ASCII strings", body: `{"method":"m","params":{"text":"héllo ✓ 🙂","sessionId":"sé"}}`, kind: KindNotification, method: `m`, sessionID: `sé`},

	// Repeated members: the last one wins, as in JSON.parse on the CLI side.
	{name: "repeated id", body: `{"id":1,"method":"m","id":2}`, kind: KindRequest, id: `2`, method: `m`},
	{name: "escaped repeat of id", body: `{"id":1,"method":"m","\u0069d":"x"}`, kind: KindRequest, id: `"x"`, method: `m`},
	{name: "repeated method", body: `{"method":"a","method":"b"}`, kind: KindNotification, method: `b`},
	{name: "repeated sessionId", body: `{"method":"m","params":{"sessionId":"a","sessionId":"b"}}`, kind: KindNotification, method: `m`, sessionID: `b`},
	{name: "sessionId overridden by non-string", body: `{"method":"m","params":{"sessionId":"a","sessionId":null}}`, kind: KindNotification, method: `m`},
	{name: "params overridden", body: `{"method":"m","params":{"sessionId":"a"},"params":{"x":1}}`, kind: KindNotification, method: `m`},
	{name: "params overridden by array", body: `{"method":"m","params":{"sessionId":"a"},"params":[]}`, kind: KindNotification, method: `m`},
	{name: "escape only in a replaced method", body: `{"method":"\u0061","method":"b"}`, kind: KindNotification, method: `b`},

	// Whitespace everywhere JSON allows it.
	{
		name:      "whitespace",
		body:      " \t\r\n{ \"id\" \n:\t7 ,\r\n\"method\" : \"m\" , \"params\" : { \"sessionId\" : \"s\" , \"x\" : [ 1 , { } ] } , \"result\" : null } \n",
		kind:      KindRequest,
		id:        `7`,
		method:    `m`,
		sessionID: `s`,
		result:    true,
	},
	{name: "whitespace in empty containers", body: `{ "id" : 1 , "result" : { } , "params" : { } }`, kind: KindResponse, id: `1`, result: true},

	// Bodies Scan refuses.
	{name: "empty", body: ``, err: ErrNotJSON},
	{name: "whitespace only", body: " \n", err: ErrNotJSON},
	{name: "array", body: `[{"id":1}]`, err: ErrNotJSON},
	{name: "string", body: `"id"`, err: ErrNotJSON},
	{name: "not JSON", body: `Content-Length: 5`, err: ErrNotJSON},
	{name: "truncated after brace", body: `{`, err: ErrNotJSON},
	{name: "truncated in key", body: `{"id`, err: ErrNotJSON},
	{name: "truncated after colon", body: `{"id":`, err: ErrNotJSON},
	{name: "truncated in value", body: `{"id":1,"method":"pi`, err: ErrNotJSON},
	{name: "truncated in params", body: `{"id":1,"params":{"sessionId":"s"`, err: ErrNotJSON},
	{name: "truncated in nested value", body: `{"id":1,"result":{"a":[1,2`, err: ErrNotJSON},
	{name: "truncated after value", body: `{"id":1`, err: ErrNotJSON},
	{name: "escaped closing quote", body: `{"id":"\"}`, err: ErrNotJSON},
	{name: "trailing garbage", body: `{"id":1}x`, err: ErrNotJSON},
	{name: "two objects", body: `{"id":1}{"id":2}`, err: ErrNotJSON},
	{name: "trailing comma", body: `{"id":1,}`, err: ErrNotJSON},
	{name: "missing colon", body: `{"id" 1}`, err: ErrNotJSON},
	{name: "missing comma", body: `{"id":1 "method":"m"}`, err: ErrNotJSON},
	{name: "unquoted key", body: `{id:1}`, err: ErrNotJSON},
	{name: "missing value", body: `{"id":}`, err: ErrNotJSON},
	{name: "method not a string", body: `{"id":1,"method":5}`, err: ErrNotJSON},
	{name: "method null", body: `{"id":1,"method":null}`, err: ErrNotJSON},
	{name: "params trailing comma", body: `{"params":{"a":1,}}`, err: ErrNotJSON},

	// Invalid JSON anywhere, however deep, is refused as a syntax error.
	{name: "params array not closed", body: `{"jsonrpc":"2.0","id":5,"method":"ping","params":[}}`, err: ErrSyntax},
	{name: "trailing comma in nested array", body: `{"id":1,"result":{"a":[1,]}}`, err: ErrSyntax},
	{name: "missing colon in nested object", body: `{"id":1,"result":{"a" 1}}`, err: ErrSyntax},
	{name: "missing comma in array", body: `{"id":1,"result":[1 2]}`, err: ErrSyntax},
	{name: "mismatched closers", body: `{"id":1,"result":{"a":[1}]}`, err: ErrSyntax},
	{name: "number with leading zero", body: `{"id":01}`, err: ErrSyntax},
	{name: "number without fraction digits", body: `{"id":1.}`, err: ErrSyntax},
	{name: "number without exponent digits", body: `{"id":1e+}`, err: ErrSyntax},
	{name: "bare minus", body: `{"id":-}`, err: ErrSyntax},
	{name: "misspelt literal", body: `{"id":1,"result":tru}`, err: ErrSyntax},
	{name: "control byte in string", body: "{\"id\":1,\"result\":\"a\tb\"}", err: ErrSyntax},
	{name: "bad escape", body: `{"id":1,"result":"\q"}`, err: ErrSyntax},
	{name: "short unicode escape", body: `{"id":1,"result":"\u12"}`, err: ErrSyntax},
	{name: "bad escape in session id", body: `{"method":"m","params":{"sessionId":"\x"}}`, err: ErrSyntax},
	{name: "bad escape in key", body: `{"\x":1}`, err: ErrSyntax},
	{name: "object key not a string", body: `{"id":1,"result":{1:2}}`, err: ErrSyntax},
	{name: "valid non-object", body: `[1,{"a":"b"}]`, err: ErrNotJSON},
}

// nestedValue returns a JSON object of about n members with nested objects,
// arrays and strings full of braces and escapes.
func nestedValue(n int) string {
	var b strings.Builder
	b.WriteString(`{`)
	for i := range n {
		if i > 0 {
			b.WriteString(`,`)
		}
		fmt.Fprintf(&b, `"k%d":{"sessionId":"no-%d","t":"{[\"\\%d]}","a":[%d,{"b":null},[]],"ok":true}`, i, i, i, i)
	}
	b.WriteString(`}`)
	return b.String()
}

func TestScan(t *testing.T) {
	for _, tt := range scanCases {
		t.Run(tt.name, func(t *testing.T) {
			body := []byte(tt.body)
			var m Meta
			err := Scan(body, &m)
			if !errors.Is(err, tt.err) {
				t.Fatalf("error %v, want %v", err, tt.err)
			}
			if err == nil {
				got := scanCase{
					kind:      m.Kind,
					id:        string(m.ID.Of(body)),
					method:    string(m.Method.Of(body)),
					sessionID: string(m.SessionID.Of(body)),
					escaped:   m.MethodEscaped || m.SessionIDEscaped,
					result:    m.HasResult,
					error:     m.HasError,
				}
				want := tt
				want.name, want.body, want.err = "", "", nil
				if got != want {
					t.Errorf("got  %+v\nwant %+v", got, want)
				}
			}
			if err := compareWithJSON(body); err != nil {
				t.Error(err)
			}
		})
	}
}

// Scan tells invalid JSON (ErrSyntax) from valid JSON that is not a JSON-RPC
// object (ErrNotJSON alone), and keeps an id read before the error.
func TestScanSyntaxErrors(t *testing.T) {
	var m Meta
	body := []byte(`{"jsonrpc":"2.0","id":5,"method":"ping","params":[}}`)
	if err := Scan(body, &m); !errors.Is(err, ErrSyntax) || string(m.ID.Of(body)) != "5" {
		t.Fatalf("Scan = %v with id %q, want ErrSyntax with id 5", err, m.ID.Of(body))
	}
	for _, body := range []string{`[]`, `"x"`, `{"id":1,"method":[]}`} {
		if err := Scan([]byte(body), &m); !errors.Is(err, ErrNotJSON) || errors.Is(err, ErrSyntax) {
			t.Errorf("Scan(%s) = %v, want ErrNotJSON and not ErrSyntax", body, err)
		}
	}
}

// Nesting is limited as encoding/json limits it, at every place a value
// can sit, without recursion.
func TestScanNestingDepth(t *testing.T) {
	for _, depth := range []int{63, 64, 65, 200, maxDepth - 3, maxDepth - 2, maxDepth - 1, maxDepth, maxDepth + 1} {
		inner := strings.Repeat(`[{"a":`, depth/2) + `1` + strings.Repeat(`}]`, depth/2)
		for _, body := range []string{
			`{"id":1,"result":` + inner + `}`,
			`{"method":"m","params":{"x":` + inner + `}}`,
			`{"method":"session.event","params":{"event":{"data":` + inner + `}}}`,
			inner,
		} {
			if err := compareWithJSON([]byte(body)); err != nil {
				t.Fatalf("depth %d: %.200v", depth, err)
			}
		}
	}
}

// Scan reuses a Meta: nothing of an earlier message survives.
func TestScanResetsMeta(t *testing.T) {
	m := Meta{Kind: KindRequest, ID: Span{1, 2}, Method: Span{3, 4}, SessionID: Span{5, 6}, MethodEscaped: true, SessionIDEscaped: true, HasResult: true, HasError: true}
	if err := Scan([]byte(`{}`), &m); err != nil {
		t.Fatal(err)
	}
	if m != (Meta{}) {
		t.Fatalf("Meta after scanning {} = %+v", m)
	}
	m = Meta{Kind: KindRequest, ID: Span{1, 2}}
	if err := Scan([]byte(`nope`), &m); err == nil || m.ID != (Span{}) {
		t.Fatalf("Meta after an error = %+v, %v", m, err)
	}
}

func TestScanAllocs(t *testing.T) {
	body := []byte(`{"jsonrpc":"2.0","id":2,"method":"session.send","params":{"sessionId":"user-42-abc","prompt":"p\"ing"}}`)
	var m Meta
	if n := testing.AllocsPerRun(100, func() { _ = Scan(body, &m) }); n != 0 {
		t.Fatalf("Scan allocates %v times", n)
	}
}

// refMeta is what encoding/json finds in a body: the last member of a name
// wins, and names are compared after unescaping, as JSON.parse does.
type refMeta struct {
	id        json.RawMessage // nil when absent
	method    *string
	sessionID *string
	result    bool
	error     bool
	badMethod bool // a method member is not a string: Scan must refuse the body
}

func (r refMeta) kind() Kind {
	switch {
	case r.method != nil && r.id != nil:
		return KindRequest
	case r.method != nil:
		return KindNotification
	case r.id != nil && (r.result || r.error):
		return KindResponse
	}
	return KindInvalid
}

// refScan decodes body with encoding/json. ok is false when body is not a
// valid JSON object.
func refScan(body []byte) (r refMeta, ok bool) {
	if !json.Valid(body) || !bytes.HasPrefix(bytes.TrimLeft(body, " \t\r\n"), []byte("{")) {
		return r, false
	}
	ok = eachMember(body, func(name string, v json.RawMessage) {
		switch name {
		case "id":
			r.id = v
		case "method":
			r.method = jsonString(v)
			if r.method == nil {
				r.badMethod = true
			}
		case "params":
			r.sessionID = nil
			if v[0] == '{' {
				eachMember(v, func(name string, v json.RawMessage) {
					if name == "sessionId" {
						r.sessionID = jsonString(v)
					}
				})
			}
		case "result":
			r.result = true
		case "error":
			r.error = true
		}
	})
	return r, ok
}

// eachMember calls fn for every member of the JSON object obj, in order.
func eachMember(obj []byte, fn func(name string, v json.RawMessage)) bool {
	dec := json.NewDecoder(bytes.NewReader(obj))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return false
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		name, ok := tok.(string)
		if !ok {
			return false
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return false
		}
		fn(name, v)
	}
	return true
}

// jsonString returns the decoded string v, or nil when v is not a string.
func jsonString(v json.RawMessage) *string {
	if len(v) == 0 || v[0] != '"' {
		return nil
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return nil
	}
	return &s
}

// unquoteSpan decodes the raw string contents a Method or SessionID span holds.
func unquoteSpan(raw []byte) (string, error) {
	q := make([]byte, 0, len(raw)+2)
	q = append(append(append(q, '"'), raw...), '"')
	var s string
	err := json.Unmarshal(q, &s)
	return s, err
}

// compareWithJSON checks Scan against encoding/json. Scan must never panic;
// it must refuse with ErrSyntax exactly what json.Valid refuses, and on a
// valid JSON object agree with encoding/json on every field.
func compareWithJSON(body []byte) error {
	var m Meta
	err := Scan(body, &m)
	if valid := json.Valid(body); valid == errors.Is(err, ErrSyntax) {
		return fmt.Errorf("Scan(%q) = %v, json.Valid says %v", body, err, valid)
	}
	ref, ok := refScan(body)
	if !ok {
		if err == nil {
			return fmt.Errorf("Scan(%q) accepted a body that is not a JSON object", body)
		}
		return nil
	}
	if ref.badMethod {
		if err == nil || errors.Is(err, ErrSyntax) {
			return fmt.Errorf("Scan(%q) = %v on a method that is not a string, want ErrNotJSON", body, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("Scan(%q) = %v on valid JSON", body, err)
	}
	if m.Kind != ref.kind() {
		return fmt.Errorf("Scan(%q).Kind = %v, encoding/json says %v", body, m.Kind, ref.kind())
	}
	if ref.id == nil {
		if m.ID != (Span{}) {
			return fmt.Errorf("Scan(%q).ID = %q, want absent", body, m.ID.Of(body))
		}
	} else if !bytes.Equal(m.ID.Of(body), ref.id) {
		return fmt.Errorf("Scan(%q).ID = %q, encoding/json says %q", body, m.ID.Of(body), ref.id)
	}
	if err := compareString(body, "Method", m.Method, ref.method); err != nil {
		return err
	}
	if err := compareString(body, "SessionID", m.SessionID, ref.sessionID); err != nil {
		return err
	}
	if esc := bytes.IndexByte(m.Method.Of(body), '\\') >= 0; m.MethodEscaped != esc {
		return fmt.Errorf("Scan(%q).MethodEscaped = %v, want %v", body, m.MethodEscaped, esc)
	}
	if esc := bytes.IndexByte(m.SessionID.Of(body), '\\') >= 0; m.SessionIDEscaped != esc {
		return fmt.Errorf("Scan(%q).SessionIDEscaped = %v, want %v", body, m.SessionIDEscaped, esc)
	}
	if m.HasResult != ref.result || m.HasError != ref.error {
		return fmt.Errorf("Scan(%q) HasResult, HasError = %v, %v; encoding/json says %v, %v",
			body, m.HasResult, m.HasError, ref.result, ref.error)
	}
	return nil
}

func compareString(body []byte, field string, got Span, want *string) error {
	if want == nil {
		if got != (Span{}) {
			return fmt.Errorf("Scan(%q).%s = %q, want absent", body, field, got.Of(body))
		}
		return nil
	}
	if got.Start <= 0 || body[got.Start-1] != '"' || int(got.End) >= len(body) || body[got.End] != '"' {
		return fmt.Errorf("Scan(%q).%s = %v, not the inside of a string", body, field, got)
	}
	s, err := unquoteSpan(got.Of(body))
	if err != nil {
		return fmt.Errorf("Scan(%q).%s = %q: %v", body, field, got.Of(body), err)
	}
	if s != *want {
		return fmt.Errorf("Scan(%q).%s = %q, encoding/json says %q", body, field, s, *want)
	}
	return nil
}
