package frame

import (
	"bytes"
	"testing"
)

func TestEventHeadFastPath(t *testing.T) {
	body := benchEvent(40 << 10)
	var m Meta
	if !eventHead(body, &m) {
		t.Fatal("the CLI's layout missed the fast path")
	}
	for _, b := range []string{
		`{"jsonrpc":"2.0","method":"session.event","params":{"sessionId":"a\u0062","event":{"type":"x"}}}`,
		`{"jsonrpc":"2.0","method":"session.event","params":{"sessionId":"s","event":{"type":"x\"y"}}}`,
		`{"jsonrpc":"2.0","method":"session.event","params":{"sessionId":"s","ev":{"type":"x"}}}`,
		`{"jsonrpc":"2.0", "method":"session.event","params":{"sessionId":"s","event":{"type":"x"}}}`,
	} {
		if eventHead([]byte(b), &m) {
			t.Errorf("fast path took %s", b)
		}
	}
}

func TestScanHead(t *testing.T) {
	const event = `{"jsonrpc":"2.0","method":"session.event","params":{"sessionId":"s1","event":{"type":"assistant.message_delta","data":`
	tests := []struct {
		name, body string
		// whole: ScanHead must scan the body whole (same result as Scan).
		whole     bool
		kind      Kind
		sessionID string
		eventType string
	}{
		{name: "event stops after type", body: event + `{"deltaContent":"hi"},"id":"e"}}}`, kind: KindNotification, sessionID: "s1", eventType: "assistant.message_delta"},
		{name: "payload not walked", body: event + `{"deltaContent":"unterminated`, kind: KindNotification, sessionID: "s1", eventType: "assistant.message_delta"},
		{name: "sessionId after event", body: `{"method":"session.event","params":{"event":{"type":"session.idle"},"sessionId":"s2","x":[}`, kind: KindNotification, sessionID: "s2", eventType: "session.idle"},
		{name: "type after data", body: `{"method":"session.event","params":{"sessionId":"s3","event":{"data":{"type":"inner"},"type":"session.idle"}}}`, whole: true, kind: KindNotification, sessionID: "s3", eventType: "session.idle"},
		{name: "id ahead: a request", body: `{"id":7,"method":"session.event","params":{"sessionId":"s4","event":{"type":"t"}}}`, whole: true, kind: KindRequest, sessionID: "s4", eventType: "t"},
		{name: "params ahead of method", body: `{"params":{"sessionId":"s5","event":{"type":"t"}},"method":"session.event","id":1}`, whole: true, kind: KindRequest, sessionID: "s5", eventType: "t"},
		{name: "lifecycle stops after sessionId", body: `{"method":"session.lifecycle","params":{"type":"session.updated","sessionId":"s6","metadata":{"x`, kind: KindNotification, sessionID: "s6"},
		{name: "other method", body: `{"method":"session.other","params":{"sessionId":"s6","event":{"type":"t"}}}`, whole: true, kind: KindNotification, sessionID: "s6", eventType: "t"},
		{name: "other method, id after params", body: `{"method":"session.send","params":{"sessionId":"s6"},"id":9}`, whole: true, kind: KindRequest, sessionID: "s6"},
		{name: "escaped method", body: `{"method":"session\u002eevent","params":{"sessionId":"s7","event":{"type":"t"}}}`, whole: true, kind: KindNotification, sessionID: "s7", eventType: "t"},
		{name: "no sessionId", body: `{"method":"session.event","params":{"event":{"type":"t","data":{}}}}`, whole: true, kind: KindNotification, eventType: "t"},
		{name: "response stops at result", body: `{"jsonrpc":"2.0","id":3,"result":{"events":[{"unterminated`, kind: KindResponse},
		{name: "error response stops at error", body: `{"jsonrpc":"2.0","id":3,"error":{"code":`, kind: KindResponse},
		{name: "result ahead of id", body: `{"jsonrpc":"2.0","result":{"sessionId":"s8"},"id":3}`, whole: true, kind: KindResponse},
		{name: "method ahead of result", body: `{"method":"m","id":3,"result":1}`, whole: true, kind: KindRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := []byte(tt.body)
			var head, full Meta
			if err := ScanHead(body, &head); err != nil {
				t.Fatalf("ScanHead: %v", err)
			}
			if head.Kind != tt.kind || string(head.SessionID.Of(body)) != tt.sessionID || string(head.EventType.Of(body)) != tt.eventType {
				t.Fatalf("ScanHead = %v %q %q, want %v %q %q", head.Kind, head.SessionID.Of(body), head.EventType.Of(body), tt.kind, tt.sessionID, tt.eventType)
			}
			if tt.kind != KindResponse && string(head.Method.Of(body)) == "" {
				t.Fatal("no method")
			}
			err := Scan(body, &full)
			if tt.whole && (err != nil || full != head) {
				t.Fatalf("Scan = %+v, %v; ScanHead = %+v: must agree", full, err, head)
			}
		})
	}
}

// TestScanHeadBody40KiB checks the point of ScanHead: on a big event it
// reads the head only, and it agrees with Scan on the fields kept.
func TestScanHeadBody40KiB(t *testing.T) {
	body := benchEvent(40 << 10)
	var head, full Meta
	if err := ScanHead(body, &head); err != nil {
		t.Fatal(err)
	}
	if err := Scan(body, &full); err != nil {
		t.Fatal(err)
	}
	if head != full {
		t.Fatalf("ScanHead %+v, Scan %+v", head, full)
	}
	// Cut the payload: ScanHead never looks there, Scan refuses it.
	cut := body[:1<<10]
	if err := ScanHead(cut, &head); err != nil || string(head.EventType.Of(cut)) != "model.messages_snapshot" {
		t.Fatalf("ScanHead on a cut event: %v %+v", err, head)
	}
	if Scan(cut, &full) == nil {
		t.Fatal("Scan accepted a cut body")
	}
}

// FuzzScanHead checks that ScanHead never panics, accepts what Scan accepts,
// and agrees with Scan on every field wherever the body repeats none of the
// member names the two look at (a repeated member is where trusting the
// head may differ, by design).
func FuzzScanHead(f *testing.F) {
	for _, c := range scanCases {
		f.Add([]byte(c.body))
	}
	f.Add([]byte(`{"jsonrpc":"2.0","method":"session.event","params":{"sessionId":"s","event":{"type":"x","data":{"a":1}}}}`))
	f.Add([]byte(`{"method":"session.event","params":{"event":{"type":"x"},"sessionId":"s"},"id":1}`))
	f.Add([]byte(`{"jsonrpc":"2.0","method":"session.event","params":{"sessionId":"a\"b","event":{"type":"x"}}}`))
	f.Add([]byte(`{"jsonrpc":"2.0","method":"session.event","params":{"sessionId":"","event":{"type":"x"}}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		// The fast path agrees with the walk wherever it answers.
		var fast, walked Meta
		if eventHead(body, &fast) {
			s := scanner{b: body, head: true}
			if err := s.scan(&walked); err != nil || fast != walked {
				t.Fatalf("eventHead(%q) = %+v; the walk gives %+v, %v", body, fast, walked, err)
			}
		}
		var head, full Meta
		herr := ScanHead(body, &head)
		if Scan(body, &full) != nil {
			return
		}
		if herr != nil {
			t.Fatalf("ScanHead(%q) = %v, Scan accepted it", body, herr)
		}
		for _, name := range []string{"id", "method", "params", "sessionId", "event", "type"} {
			if bytes.Count(body, []byte(name)) > 1 || bytes.Contains(body, []byte(`\`)) {
				return
			}
		}
		// What ScanHead trusts by design: a session.event or
		// session.lifecycle is a notification, and a response's id comes
		// ahead of its result, whatever follows.
		if full.Kind == KindRequest && (head.Kind == KindNotification && head.notice(body) || head.Kind == KindResponse) {
			return
		}
		if head != full {
			t.Fatalf("ScanHead(%q) = %+v, Scan = %+v", body, head, full)
		}
	})
}

// notice reports whether m's method is one ScanHead takes for a notification.
func (m *Meta) notice(body []byte) bool {
	return noticeOf(m.Method.Of(body), m.MethodEscaped) != noticeNone
}
