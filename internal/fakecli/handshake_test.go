package fakecli

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// TestHandshake checks the token rules of protocol.md's table, message by
// message on one connection, as the CLI answered them.
func TestHandshake(t *testing.T) {
	type step struct {
		method string
		params any
		code   int // 0: must succeed
	}
	tests := []struct {
		name  string
		token string
		steps []step
	}{
		{"token set, requests before connect", "sekret", []step{
			{"ping", map[string]any{}, CodeAuthRequired},
			{"status.get", map[string]any{}, CodeAuthRequired},
			{"session.create", map[string]any{"sessionId": "x"}, CodeAuthRequired},
		}},
		{"token set, wrong then right token on one socket", "sekret", []step{
			{"connect", map[string]any{"token": "wrong"}, CodeAuthFailed},
			{"connect", map[string]any{}, CodeAuthFailed},
			{"ping", map[string]any{}, CodeAuthRequired},
			{"connect", map[string]any{"token": "sekret"}, 0},
			{"ping", map[string]any{}, 0},
			{"status.get", map[string]any{}, 0},
		}},
		{"no token, connect with a token", "", []step{
			{"connect", map[string]any{"token": "x"}, CodeAuthNotConfigured},
			{"connect", map[string]any{"token": ""}, 0},
		}},
		{"no token, connect {}", "", []step{
			{"connect", map[string]any{}, 0},
		}},
		{"no token, ping without connect", "", []step{
			{"ping", nil, 0},
			{"models.list", nil, 0},
		}},
		{"unknown method", "", []step{
			{"no.such.method", map[string]any{}, CodeMethodNotFound},
			{"ping", map[string]any{}, 0},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startServer(t, Config{Token: tt.token})
			c := dial(t, s)
			for _, st := range tt.steps {
				if st.code == 0 {
					call(t, c, st.method, st.params)
					continue
				}
				callErr(t, c, st.method, st.params, st.code, "")
			}
		})
	}
}

func TestConnectResult(t *testing.T) {
	s := startServer(t, Config{Name: "b1"})
	c := dial(t, s)
	for _, tt := range []struct {
		kinds []string
		want  string
	}{
		{[]string{"agent", "client", "shell"}, `{"ok":true,"protocolVersion":3,"version":"1.0.102","taskKinds":["agent","shell","client"]}`},
		{[]string{"agent"}, `{"ok":true,"protocolVersion":3,"version":"1.0.102","taskKinds":["agent","shell"]}`},
	} {
		got := call(t, c, "connect", map[string]any{"supportedTaskKinds": tt.kinds})
		if string(got) != tt.want {
			t.Errorf("connect %v = %s, want %s", tt.kinds, got, tt.want)
		}
	}
	var st map[string]any
	if err := json.Unmarshal(call(t, c, "status.get", nil), &st); err != nil {
		t.Fatal(err)
	}
	if want := map[string]any{"version": "1.0.102", "protocolVersion": 3.0, "server": "b1"}; !reflect.DeepEqual(st, want) {
		t.Errorf("status.get = %v, want %v", st, want)
	}
}

func TestPing(t *testing.T) {
	s := startServer(t, Config{ProtocolVersion: 7})
	c := dial(t, s)
	for _, tt := range []struct {
		params any
		want   string
	}{{nil, "pong"}, {map[string]any{"message": "hi"}, "pong: hi"}} {
		var res struct {
			Message         string `json:"message"`
			Timestamp       string `json:"timestamp"`
			ProtocolVersion int    `json:"protocolVersion"`
		}
		if err := c.Call(ctx(t), "ping", tt.params, &res); err != nil {
			t.Fatal(err)
		}
		if res.Message != tt.want || res.ProtocolVersion != 7 {
			t.Errorf("ping %v = %+v, want message %q protocolVersion 7", tt.params, res, tt.want)
		}
		if ts, err := time.Parse(time.RFC3339Nano, res.Timestamp); err != nil || time.Since(ts) > time.Minute {
			t.Errorf("ping timestamp %q: %v", res.Timestamp, err)
		}
	}
}

// TestNotificationIgnored checks that a client notification gets no answer
// and does not disturb the connection.
func TestNotificationIgnored(t *testing.T) {
	s := startServer(t, Config{})
	c := connected(t, s)
	if err := c.Notify("some.notification", map[string]any{"x": 1}); err != nil {
		t.Fatal(err)
	}
	call(t, c, "ping", nil)
	if got := s.Stats().Requests; got != 2 {
		t.Errorf("Requests = %d, want 2 (connect and ping)", got)
	}
}

// TestMalformedFrameClosesConnection sends bodies that are not JSON-RPC
// messages; each must close its connection and leave the server serving.
func TestMalformedFrameClosesConnection(t *testing.T) {
	s := startServer(t, Config{})
	for _, body := range []string{
		`hello`,
		`[1,2]`,
		`{"jsonrpc":"2.0"}`,
		`{"jsonrpc":"2.0","id":1,"method":"ping","params":{"message":"\x"}}`,
	} {
		c := dial(t, s)
		if err := c.WriteRaw([]byte(body)); err != nil {
			t.Fatal(err)
		}
		select {
		case <-c.Done():
		case <-time.After(testTimeout):
			t.Fatalf("connection still open after %q", body)
		}
	}
	call(t, connected(t, s), "ping", nil)
	waitFor(t, "closed connections dropped", func() bool { return s.Stats().Conns == 1 })
}
