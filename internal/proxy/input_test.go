package proxy

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rpcproxy/rpcproxy/internal/frame"
	"github.com/rpcproxy/rpcproxy/internal/router"
)

// rawCall sends body as it is and waits for the answer with the given raw id.
func (c *testClient) rawCall(id, body string) message {
	c.t.Helper()
	ch := c.expect(id)
	c.raw(body)
	return wait(c.t, ch, body)
}

// A client frame that is not valid JSON is answered with a parse error
// carrying the id when one was read (else null) and never reaches a
// backend; one that is JSON but not a JSON-RPC object gets an invalid
// request. The client stays connected, as it does with the CLI. (A frame
// that reached the backend would be answered by it with id null, which the
// proxy cannot route back: the wait for the id below would time out.)
func TestInvalidJSONAnsweredByProxy(t *testing.T) {
	c := newCluster(t, clusterOptions{backends: 1})
	cl := c.client()
	tests := []struct {
		body, id string
		code     int
	}{
		{`{"jsonrpc":"2.0","id":5,"method":"ping","params":[}}`, `5`, codeParseError},
		{`{"jsonrpc":"2.0","id":"s-1","method":"ping","params":{"a":"\q"}}`, `"s-1"`, codeParseError},
		{`{"jsonrpc":"2.0","id":{"x":1},"method":"ping","params":[1,]}`, `null`, codeParseError},
		{`{"jsonrpc":"2.0","method":"ping","params":{"a":01}}`, `null`, codeParseError},
		{`[{"jsonrpc":"2.0","id":9,"method":"ping"}]`, `null`, codeInvalidRequest},
		{`{"jsonrpc":"2.0","id":10,"method":5}`, `10`, codeInvalidRequest},
	}
	for _, tt := range tests {
		m := cl.rawCall(tt.id, tt.body)
		if m.Error == nil || m.Error.Code != tt.code || string(m.ID) != tt.id {
			t.Errorf("%s: got id %s %+v, want id %s code %d", tt.body, m.ID, m.Error, tt.id, tt.code)
		}
	}
	if got := cl.call("ping", nil); got.Error != nil {
		t.Fatalf("ping after bad input: %+v", got.Error)
	}
	if cl.closedByPeer(0) {
		t.Fatal("client closed after bad input")
	}
}

// An escaped method name gets the route of its decoded form, which is what
// the backend executes: runtime\u002eshutdown is refused like runtime.shutdown.
func TestEscapedMethodIsDecoded(t *testing.T) {
	c := newCluster(t, clusterOptions{backends: 1})
	cl := c.client()
	m := cl.rawCall(`"e1"`, `{"jsonrpc":"2.0","id":"e1","method":"runtime\u002eshutdown"}`)
	if m.Error == nil || m.Error.Code != -32601 || !strings.Contains(m.Error.Message, "not available through rpcproxy") {
		t.Fatalf("escaped runtime.shutdown: %+v %s", m.Error, m.Result)
	}
	if got := cl.call("ping", nil); got.Error != nil {
		t.Fatalf("backend gone after an escaped shutdown: %+v", got.Error)
	}
}

// escapeAll spells every character of s as a \u escape.
func escapeAll(s string) string {
	var b strings.Builder
	for _, r := range s {
		fmt.Fprintf(&b, `\u%04X`, r)
	}
	return b.String()
}

func TestRouteOfDecodesEscapes(t *testing.T) {
	tests := []struct {
		method string
		params string
		want   router.Class
	}{
		{"connect", `{}`, router.ClassLocal},
		{"ping", `{}`, router.ClassQuery},
		{"models.list", `{"sessionId":"s\u002d1"}`, router.ClassSession},
		{"session.list", `{}`, router.ClassAggregate},
		{"sessionFs.setProvider", `{}`, router.ClassRegistration},
		{"user.settings.set", `{}`, router.ClassGlobalWrite},
		{"runtime.shutdown", `{}`, router.ClassRefused},
		{"session.send", `{"sessionId":"s1"}`, router.ClassSession},
	}
	for _, tt := range tests {
		for _, spelt := range []string{
			tt.method,
			strings.ReplaceAll(tt.method, ".", `\u002e`),
			strings.ReplaceAll(tt.method, ".", `\u002E`),
			`\` + "u00" + fmt.Sprintf("%x", tt.method[0]) + tt.method[1:],
			escapeAll(tt.method),
		} {
			body := []byte(`{"jsonrpc":"2.0","id":1,"method":"` + spelt + `","params":` + tt.params + `}`)
			var m frame.Meta
			if err := frame.Scan(body, &m); err != nil {
				t.Fatalf("%s: %v", body, err)
			}
			if _, r := routeOf(body, &m); r.Class != tt.want {
				t.Errorf("%s: class %v, want %v", body, r.Class, tt.want)
			}
			if got := string(methodName(body, &m)); got != tt.method {
				t.Errorf("%s: method %q", body, got)
			}
		}
	}
}

// FuzzRouteOf checks that the proxy routes every request by what
// encoding/json (like every JSON parser behind it) reads in it: the class
// of the raw frame is the class of its decoded method and session id.
func FuzzRouteOf(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"runtime\u002eshutdown"}`,
		`{"jsonrpc":"2.0","id":1,"method":"ping","params":{"sessionId":"a\"b"}}`,
		`{"id":1,"method":"session.list","method":"runtime.shutdown"}`,
		`{"id":1,"\u006dethod":"user.settings.set","params":{"session\u0049d":""}}`,
		`{"id":1,"method":"models\/list","params":{"sessionId":"\ud800"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var m frame.Meta
		if frame.Scan(body, &m) != nil || m.Kind != frame.KindRequest {
			return
		}
		var msg map[string]json.RawMessage
		var method string
		if err := json.Unmarshal(body, &msg); err != nil {
			t.Fatalf("Scan accepted %q, encoding/json refuses it: %v", body, err)
		}
		if err := json.Unmarshal(msg["method"], &method); err != nil {
			t.Fatalf("Scan found a request in %q without a string method: %v", body, err)
		}
		var sid string
		var params map[string]json.RawMessage
		if json.Unmarshal(msg["params"], &params) == nil {
			_ = json.Unmarshal(params["sessionId"], &sid)
		}
		want := router.Lookup([]byte(method), sid != "")
		gotSID, got := routeOf(body, &m)
		if got != want || string(gotSID) != sid {
			t.Fatalf("%q: route %v sid %q, encoding/json reads method %q sid %q: route %v", body, got, gotSID, method, sid, want)
		}
	})
}

// Every write starts under a fresh deadline, however large the frame: after
// the connections sat idle for twice the write timeout, a 1 MiB answer
// (the session's messages) comes back to the client and a 1 MiB prompt goes
// to the backend, each the first frame on its connection after the idle
// time. (A frame larger than the write buffer is written inside Write, not
// at a flush; with the deadline pushed out only at flushes it went out
// under the stale one and failed.)
func TestLargeFramesAfterIdle(t *testing.T) {
	const timeout = 200 * time.Millisecond
	c := newCluster(t, clusterOptions{backends: 1, writeTimeout: timeout})
	cl := c.client()
	createSession(t, cl, "idle-1")
	prompt := strings.Repeat("large prompt ", (1<<20)/13)
	if got := turn(t, cl, "idle-1", prompt); !strings.Contains(got, prompt) {
		t.Fatalf("first turn: got %d bytes", len(got))
	}
	time.Sleep(2 * timeout) // idle: every deadline set so far is past
	var history json.RawMessage
	cl.mustCall("session.getMessages", map[string]any{"sessionId": "idle-1"}, &history)
	if len(history) < 1<<20 {
		t.Fatalf("session.getMessages: %d bytes, want the 1 MiB prompt in it", len(history))
	}
	time.Sleep(2 * timeout)
	if got := turn(t, cl, "idle-1", prompt); !strings.Contains(got, prompt) {
		t.Fatalf("large turn after idle: got %d bytes", len(got))
	}
}
