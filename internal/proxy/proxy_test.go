package proxy

import (
	"encoding/json"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rpcproxy/rpcproxy/internal/frame"
	"github.com/rpcproxy/rpcproxy/internal/health"
)

func TestHandshakeWithoutToken(t *testing.T) {
	c := newCluster(t, clusterOptions{})
	cl := dialClient(t, c.addr)
	// An older SDK pings instead of connecting.
	var pong struct {
		ProtocolVersion int `json:"protocolVersion"`
	}
	cl.mustCall("ping", nil, &pong)
	if pong.ProtocolVersion != 3 {
		t.Fatalf("ping: protocolVersion %d", pong.ProtocolVersion)
	}
	// A token sent to a proxy that has none: -32003, as the CLI answers.
	if m := cl.call("connect", map[string]any{"token": "x"}); m.Error == nil || m.Error.Code != codeAuthNotConfig {
		t.Fatalf("connect with a token: %+v", m)
	}
	var res struct {
		OK              bool   `json:"ok"`
		ProtocolVersion int    `json:"protocolVersion"`
		Version         string `json:"version"`
	}
	cl.mustCall("connect", map[string]any{}, &res)
	if !res.OK || res.ProtocolVersion != 3 || res.Version != "1.0.102" {
		t.Fatalf("connect result %+v", res)
	}
}

func TestHandshakeWithToken(t *testing.T) {
	// The proxy checks its own token; each backend gets its own.
	c := newCluster(t, clusterOptions{token: "proxy-secret", backendToken: "backend-secret"})
	cl := dialClient(t, c.addr)
	if m := cl.call("status.get", nil); m.Error == nil || m.Error.Code != codeAuthRequired {
		t.Fatalf("request before connect: %+v", m)
	}
	if m := cl.call("connect", map[string]any{"token": "wrong"}); m.Error == nil || m.Error.Code != codeAuthFailed {
		t.Fatalf("wrong token: %+v", m)
	}
	if m := cl.call("connect", map[string]any{}); m.Error == nil || m.Error.Code != codeAuthFailed {
		t.Fatalf("no token: %+v", m)
	}
	// The socket stays open after a failed attempt.
	cl.mustCall("connect", map[string]any{"token": "proxy-secret"}, nil)
	createSession(t, cl, "tok-1")
	if got := turn(t, cl, "tok-1", "hello"); !strings.Contains(got, "hello") {
		t.Fatalf("reply %q", got)
	}
	if strings.Contains(c.logs.String(), "proxy-secret") || strings.Contains(c.logs.String(), "backend-secret") {
		t.Fatal("a token reached the log")
	}
}

// One SDK connection, many sessions: spread over the backends, every reply right.
func TestSessionsSpreadOverBackends(t *testing.T) {
	c := newCluster(t, clusterOptions{})
	cl := c.client()
	const n = 12
	for i := 0; i < n; i++ {
		createSession(t, cl, fmt.Sprintf("user-%d", i))
	}
	// All turns at once: events of different sessions interleave on the
	// one client connection, each session's in order.
	for i := 0; i < n; i++ {
		cl.start("session.send", map[string]any{"sessionId": fmt.Sprintf("user-%d", i), "prompt": fmt.Sprintf("prompt %d", i)})
	}
	used := map[string]bool{}
	for i := 0; i < n; i++ {
		sid := fmt.Sprintf("user-%d", i)
		types, content := cl.waitIdle(sid)
		if !strings.Contains(content, fmt.Sprintf("prompt %d", i)) {
			t.Errorf("%s: reply %q", sid, content)
		}
		if i := indexOf(types, "user.message"); i < 0 || i > indexOf(types, "assistant.message") || types[len(types)-2] != "assistant.idle" {
			t.Errorf("%s: events out of order: %v", sid, types)
		}
		f := c.holder(sid)
		if f == nil {
			t.Fatalf("%s: on no backend", sid)
		}
		if !strings.Contains(content, f.Name()) {
			t.Errorf("%s: answered by %q, loaded on %s", sid, content, f.Name())
		}
		used[f.Name()] = true
	}
	if len(used) < 2 {
		t.Fatalf("sessions landed on %d backend(s), want at least 2", len(used))
	}
	// One upstream per backend for this client, never more.
	for _, f := range c.fakes {
		if st := f.Stats(); st.Conns > 2 { // the health probe and this client
			t.Errorf("%s: %d connections", f.Name(), st.Conns)
		}
	}
}

// Two backends both ask the client something with the same id: the client
// sees distinct ids and each answer goes back to the backend that asked.
func TestServerToClientRequestIDs(t *testing.T) {
	c := newCluster(t, clusterOptions{backends: 2})
	cl := c.client()
	// Find two sessions on different backends.
	var sids []string
	seen := map[string]bool{}
	for i := 0; len(sids) < 2 && i < 100; i++ {
		sid := fmt.Sprintf("ask-%d", i)
		createSession(t, cl, sid)
		if f := c.holder(sid); !seen[f.Name()] {
			seen[f.Name()] = true
			sids = append(sids, sid)
		}
	}
	if len(sids) < 2 {
		t.Fatal("could not place sessions on two backends")
	}
	for _, sid := range sids {
		cl.mustCall("session.send", map[string]any{"sessionId": sid, "prompt": "ask:favourite colour"}, nil)
	}
	ids := map[string]string{}
	for range sids {
		select {
		case req := <-cl.requests:
			var p struct {
				SessionID string `json:"sessionId"`
			}
			json.Unmarshal(req.Params, &p)
			if prev, dup := ids[string(req.ID)]; dup {
				t.Fatalf("id %s given to %s and %s", req.ID, prev, p.SessionID)
			}
			ids[string(req.ID)] = p.SessionID
			cl.respond(req.ID, map[string]any{"answer": "blue for " + p.SessionID})
		case <-time.After(5 * time.Second):
			t.Fatal("no server→client request")
		}
	}
	for _, sid := range sids {
		if got := cl.waitAssistant(sid); !strings.Contains(got, "blue for "+sid) {
			t.Errorf("%s: answer went astray: %q", sid, got)
		}
	}
}

func TestToolCallRoundTrip(t *testing.T) {
	c := newCluster(t, clusterOptions{})
	cl := c.client()
	createSession(t, cl, "tool-1")
	cl.mustCall("session.send", map[string]any{"sessionId": "tool-1", "prompt": "tool:lookup"}, nil)
	ch := cl.sessionEvents("tool-1")
	deadline := time.After(5 * time.Second)
	for {
		select {
		case m := <-ch:
			var p struct {
				Event struct {
					Type string `json:"type"`
					Data struct {
						RequestID string `json:"requestId"`
					} `json:"data"`
				} `json:"event"`
			}
			json.Unmarshal(m.Params, &p)
			if p.Event.Type != "external_tool.requested" {
				continue
			}
			cl.mustCall("session.tools.handlePendingToolCall", map[string]any{
				"sessionId": "tool-1", "requestId": p.Event.Data.RequestID, "result": "42 widgets",
			}, nil)
			if got := cl.waitAssistant("tool-1"); !strings.Contains(got, "42 widgets") {
				t.Fatalf("tool result not in reply: %q", got)
			}
			return
		case <-deadline:
			t.Fatal("no external_tool.requested event")
		}
	}
}

func TestAggregatesMergeEveryBackend(t *testing.T) {
	c := newCluster(t, clusterOptions{})
	cl := c.client()
	for i := 0; i < 9; i++ {
		sid := fmt.Sprintf("agg-%d", i)
		createSession(t, cl, sid)
		turn(t, cl, sid, "hi")
		time.Sleep(2 * time.Millisecond) // modifiedTime has millisecond resolution
	}
	var list struct {
		Sessions []struct {
			SessionID string `json:"sessionId"`
		} `json:"sessions"`
	}
	cl.mustCall("session.list", map[string]any{}, &list)
	if len(list.Sessions) != 9 {
		t.Fatalf("session.list: %d sessions, want 9", len(list.Sessions))
	}
	if list.Sessions[0].SessionID != "agg-8" {
		t.Fatalf("session.list: newest first, got %s first", list.Sessions[0].SessionID)
	}
	var last struct {
		SessionID string `json:"sessionId"`
	}
	cl.mustCall("session.getLastId", map[string]any{}, &last)
	if last.SessionID != "agg-8" {
		t.Fatalf("getLastId = %q, want agg-8", last.SessionID)
	}
	// Deleting goes to the session's backend; it leaves the listing.
	cl.mustCall("session.delete", map[string]any{"sessionId": "agg-8"}, nil)
	cl.mustCall("session.list", map[string]any{}, &list)
	for _, s := range list.Sessions {
		if s.SessionID == "agg-8" {
			t.Fatal("deleted session still listed")
		}
	}
}

// A process-wide registration goes to the backends the client uses, is
// replayed on the ones it opens later, and a refusal reaches the client.
func TestRegistrationReplayAndRefusal(t *testing.T) {
	c := newCluster(t, clusterOptions{})
	cl := c.client()
	cl.mustCall("sessionFs.setProvider", map[string]any{"initialCwd": "/"}, nil)
	for i := 0; i < 12; i++ {
		createSession(t, cl, fmt.Sprintf("fs-%d", i))
	}
	// Another client claiming the same processes is refused by a backend.
	other := c.client()
	createSession(t, other, "fs-other")
	m := other.call("sessionFs.setProvider", map[string]any{"initialCwd": "/"})
	if m.Error == nil {
		t.Fatal("second provider accepted: the refusal was dropped")
	}
	// Upstreams the first client opened after registering got the replay:
	// every backend now refuses a third client.
	third := c.client()
	for i := 0; i < 30; i++ {
		createSession(t, third, fmt.Sprintf("fs-third-%d", i))
	}
	if m := third.call("sessionFs.setProvider", map[string]any{}); m.Error == nil {
		t.Fatal("a backend the first client used has no provider: replay missing")
	}
}

// Clients that come and go leave nothing behind: upstream connections,
// goroutines, loaded sessions.
func TestClientDisconnectLeaksNothing(t *testing.T) {
	c := newCluster(t, clusterOptions{})
	// Warm up: with shared upstreams, open every one of them (clients
	// held at once take the least used link, or open one; sessions reach
	// every backend), since they outlive the clients.
	var warmed []*testClient
	for i := 0; i < max(1, c.srv.cfg.ConnectionsPerBackend); i++ {
		warm := c.client()
		warmed = append(warmed, warm)
		seen := map[string]bool{}
		for j := 0; len(seen) < len(c.fakes); j++ {
			sid := fmt.Sprintf("warm-%d-%d", i, j)
			if b := c.table.Ring().Lookup([]byte(sid)); b != nil && !seen[b.Name] {
				seen[b.Name] = true
				createSession(t, warm, sid)
				turn(t, warm, sid, "hi")
			}
		}
	}
	for _, warm := range warmed {
		warm.conn.Close()
	}
	eventually(t, 5*time.Second, "warm-up clients gone", func() bool { return c.srv.Clients() == 0 })
	base := runtime.NumGoroutine()
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			cl := c.client()
			for j := 0; j < 3; j++ {
				sid := fmt.Sprintf("leak-%d-%d", i, j)
				createSession(t, cl, sid)
				turn(t, cl, sid, "x")
			}
			cl.conn.Close()
		}(i)
	}
	wg.Wait()
	eventually(t, 5*time.Second, "clients closed", func() bool { return c.srv.Clients() == 0 })
	// The health probe's connection stays, and the shared upstreams when
	// there are (they outlive clients; the sessions on them do not).
	maxConns := 1 + c.srv.cfg.ConnectionsPerBackend
	eventually(t, 5*time.Second, "upstreams closed and sessions unloaded", func() bool {
		for _, f := range c.fakes {
			if st := f.Stats(); st.Conns > maxConns || st.Sessions > 0 {
				return false
			}
		}
		return true
	})
	eventually(t, 5*time.Second, "goroutines back to baseline", func() bool { return runtime.NumGoroutine() <= base+2 })
	for _, f := range c.fakes {
		if n := c.srv.SessionCount(f.Addr()); n != 0 {
			t.Errorf("%s: %d sessions still counted", f.Name(), n)
		}
	}
}

// Closing a backend with requests in flight answers them with a retryable
// error naming the backend; the client's other sessions carry on.
func TestBackendLossAnswersPending(t *testing.T) {
	c := newCluster(t, clusterOptions{backends: 2})
	cl := c.client()
	var onA, onB string
	for i := 0; (onA == "" || onB == "") && i < 100; i++ {
		sid := fmt.Sprintf("loss-%d", i)
		createSession(t, cl, sid)
		if c.holder(sid) == c.fakes[0] {
			onA = sid
		} else if onB == "" {
			onB = sid
		}
	}
	// A question the client never answers keeps the backend's turn open;
	// then a request that stays pending while the backend goes away.
	c.fakes[0].Freeze()
	pending := cl.start("session.getMessages", map[string]any{"sessionId": onA})
	time.Sleep(20 * time.Millisecond)
	c.fakes[0].Close()
	m := wait(t, pending, "pending request on a lost backend")
	if m.Error == nil || m.Error.Code != codeBackendUnavailable {
		t.Fatalf("pending request: %+v", m)
	}
	var data errorData
	json.Unmarshal(m.Error.Data, &data)
	if !data.Retryable || data.Backend != c.fakes[0].Addr() {
		t.Fatalf("error data %s", m.Error.Data)
	}
	if got := turn(t, cl, onB, "still here"); !strings.Contains(got, "still here") {
		t.Fatalf("other session: %q", got)
	}
}

func TestAllBackendsDownFailsFast(t *testing.T) {
	c := newCluster(t, clusterOptions{backends: 2})
	cl := c.client()
	createSession(t, cl, "down-1")
	for _, f := range c.fakes {
		f.Close()
	}
	eventually(t, 5*time.Second, "ring empty", func() bool { return c.table.Ring().Len() == 0 })
	start := time.Now()
	m := cl.call("session.send", map[string]any{"sessionId": "down-1", "prompt": "x"})
	if m.Error == nil || (m.Error.Code != codeNoBackend && m.Error.Code != codeBackendUnavailable) {
		t.Fatalf("all down: %+v", m)
	}
	if m2 := cl.call("models.list", nil); m2.Error == nil || m2.Error.Code != codeNoBackend {
		t.Fatalf("all down, query: %+v", m2)
	}
	t.Logf("answered in %v", time.Since(start))
}

// Bad input closes only the client that sent it; the proxy and other
// clients go on, and logs never hold message contents.
func TestBadInput(t *testing.T) {
	c := newCluster(t, clusterOptions{limits: frame.Limits{MaxBody: 1 << 20, MaxHeaderLine: 256, FrameTimeout: 200 * time.Millisecond}})
	good := c.client()
	createSession(t, good, "good-1")
	tests := []struct {
		name  string
		input string
	}{
		{"malformed header", "Content-Length 12\r\n\r\n{}"},
		{"content-length over limit", "Content-Length: 99999999\r\n\r\n"},
		{"header line over limit", "X-Junk: " + strings.Repeat("a", 1000) + "\r\n\r\n"},
		{"half a frame, then stall", "Content-Length: 100\r\n\r\n{\"jsonrpc\":"},
		{"no content-length", "Content-Type: x\r\n\r\n{}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", c.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.Write([]byte(tt.input))
			conn.SetReadDeadline(time.Now().Add(3 * time.Second))
			r := frame.NewReader(conn, nil, frame.Limits{})
			_, err = r.Read()
			if err == nil || strings.Contains(err.Error(), "timeout") {
				t.Fatalf("connection not closed: %v", err)
			}
		})
	}
	// A request with an id but no method gets an error, and the client stays.
	bad := dialClient(t, c.addr)
	invalid := bad.expect(`"x1"`)
	bad.raw(`{"jsonrpc":"2.0","id":"x1"}`)
	if m := wait(t, invalid, "invalid request"); m.Error == nil || m.Error.Code != codeInvalidRequest {
		t.Fatalf("invalid request: %+v", m)
	}
	if got := turn(t, good, "good-1", "SECRET-PROMPT"); !strings.Contains(got, "SECRET-PROMPT") {
		t.Fatalf("good client: %q", got)
	}
	logs := c.logs.String()
	for _, secret := range []string{"SECRET-PROMPT", "SECRET-API-KEY"} {
		if strings.Contains(logs, secret) {
			t.Errorf("%s reached the log", secret)
		}
	}
	if !strings.Contains(logs, "[WARN]") {
		t.Error("bad input was not logged at warn")
	}
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}

// Global writes reach every backend; a method the table does not know is
// routed by its sessionId when it has one, else sent to one backend.
func TestGlobalWritesAndUnknownMethods(t *testing.T) {
	// Probes once at start (connect + ping), then not again during the test.
	c := newCluster(t, clusterOptions{health: health.Config{Interval: time.Hour, Timeout: time.Second}})
	eventually(t, 5*time.Second, "first probes done", func() bool {
		for _, f := range c.fakes {
			if f.Stats().Requests < 2 {
				return false
			}
		}
		return true
	})
	cl := c.client()
	before := make([]uint64, len(c.fakes))
	for i, f := range c.fakes {
		before[i] = f.Stats().Requests
	}
	// The fakes do not implement it: every one answers MethodNotFound, and
	// the client gets that backend error, not silence.
	m := cl.call("user.settings.set", map[string]any{"key": "x", "value": 1})
	if m.Error == nil || m.Error.Code != -32601 {
		t.Fatalf("global write: %+v", m)
	}
	// A fake counts a request after answering it: allow it a moment. (An
	// upstream opened for the write sends its connect first.)
	eventually(t, 2*time.Second, "the global write counted on every backend", func() bool {
		for i, f := range c.fakes {
			if f.Stats().Requests != before[i]+2 { // connect + the write
				return false
			}
		}
		return true
	})
	createSession(t, cl, "unknown-1")
	holder := c.holder("unknown-1")
	for i, f := range c.fakes {
		before[i] = f.Stats().Requests
	}
	cl.call("session.some.futureMethod", map[string]any{"sessionId": "unknown-1"})
	cl.call("some.futureQuery", map[string]any{})
	total := func() (n int) {
		for i, f := range c.fakes {
			n += int(f.Stats().Requests - before[i])
		}
		return n
	}
	eventually(t, 2*time.Second, "both unknown requests counted", func() bool { return total() >= 2 })
	time.Sleep(20 * time.Millisecond) // a third, wrongly sent request would show by now
	if n := total(); n != 2 {
		t.Fatalf("two unknown requests reached backends %d times, want 2", n)
	}
	if holder.Stats().Requests == before[c.indexOf(holder)] {
		t.Error("session-scoped unknown method did not reach the session's backend")
	}
	if m := cl.call("runtime.shutdown", map[string]any{}); m.Error == nil {
		t.Fatal("runtime.shutdown passed through the proxy")
	}
}

// A backend broadcasts session.lifecycle to every connection; through the
// proxy a client gets those of its own sessions only.
func TestLifecycleOfOwnSessionsOnly(t *testing.T) {
	c := newCluster(t, clusterOptions{backends: 1})
	a, b := c.client(), c.client()
	createSession(t, b, "b-own")
	turn(t, b, "b-own", "hi")
	createSession(t, a, "a-own")
	turn(t, a, "a-own", "hi")
	lifecycleOf := func(cl *testClient) map[string]int {
		seen := map[string]int{}
		for {
			select {
			case m := <-cl.notes:
				var p struct {
					SessionID string `json:"sessionId"`
				}
				json.Unmarshal(m.Params, &p)
				if m.Method == "session.lifecycle" {
					seen[p.SessionID]++
				}
			case <-time.After(200 * time.Millisecond):
				return seen
			}
		}
	}
	seenA := lifecycleOf(a)
	if seenA["a-own"] == 0 || seenA["b-own"] != 0 {
		t.Fatalf("client a saw lifecycle %v: want its own session only", seenA)
	}
	seenB := lifecycleOf(b)
	if seenB["b-own"] == 0 || seenB["a-own"] != 0 {
		t.Fatalf("client b saw lifecycle %v: want its own session only", seenB)
	}
}

// A client that connects and sends nothing is closed after the handshake timeout.
func TestSilentClientClosed(t *testing.T) {
	c := newCluster(t, clusterOptions{})
	conn, err := net.Dial("tcp", c.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	start := time.Now()
	if _, err := conn.Read(make([]byte, 1)); err == nil || time.Since(start) > 8*time.Second {
		t.Fatalf("silent client not closed: %v after %v", err, time.Since(start))
	}
}
