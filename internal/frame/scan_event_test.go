package frame

import "testing"

func TestScanEventType(t *testing.T) {
	tests := []struct{ body, want string }{
		{`{"jsonrpc":"2.0","method":"session.event","params":{"sessionId":"s","event":{"type":"session.idle","data":{},"id":"x"}}}`, "session.idle"},
		{`{"method":"session.event","params":{"event":{"data":{"type":"inner"},"type":"assistant.message"},"sessionId":"s"}}`, "assistant.message"},
		{`{"method":"session.event","params":{"sessionId":"s","event":"not an object"}}`, ""},
		{`{"method":"session.event","params":{"sessionId":"s","data":{"event":{"type":"nested"}}}}`, ""},
		{`{"method":"x","params":{"event":{"type":1}}}`, ""},
	}
	for _, tt := range tests {
		var m Meta
		if err := Scan([]byte(tt.body), &m); err != nil {
			t.Fatalf("%s: %v", tt.body, err)
		}
		if got := string(m.EventType.Of([]byte(tt.body))); got != tt.want {
			t.Errorf("%s: EventType %q, want %q", tt.body, got, tt.want)
		}
	}
}
