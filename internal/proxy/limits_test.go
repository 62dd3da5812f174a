package proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rpcproxy/rpcproxy/internal/frame"
	"github.com/rpcproxy/rpcproxy/internal/health"
)

// onlyClient returns the proxy's one client connection.
func (c *cluster) onlyClient() *clientConn {
	c.t.Helper()
	c.srv.mu.Lock()
	defer c.srv.mu.Unlock()
	if len(c.srv.clients) != 1 {
		c.t.Fatalf("proxy has %d clients, want 1", len(c.srv.clients))
	}
	for cc := range c.srv.clients {
		return cc
	}
	return nil
}

// readRefusal sends a request (unless id is "null": then nothing) and reads
// what the proxy sends a connection it refuses: one JSON-RPC error with that
// id, then the end of the stream.
func readRefusal(t testing.TB, conn net.Conn, id string) *rpcError {
	t.Helper()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if id != "null" {
		w := frame.NewWriter(conn)
		_ = w.Write([]byte(`{"jsonrpc":"2.0","id":` + id + `,"method":"connect","params":{}}`))
		if err := w.Flush(); err != nil {
			t.Fatalf("refused connection: write: %v", err)
		}
	}
	r := frame.NewReader(conn, nil, frame.Limits{})
	buf, err := r.Read()
	if err != nil {
		t.Fatalf("refused connection: no error frame: %v", err)
	}
	var m message
	err = json.Unmarshal(buf.B, &m)
	buf.Release()
	if err != nil || string(m.ID) != id || m.Error == nil {
		t.Fatalf("refused connection: got %+v (%v), want an error with id %s", m, err, id)
	}
	if _, err := r.Read(); !errors.Is(err, io.EOF) {
		t.Fatalf("refused connection: after the error got %v, want EOF", err)
	}
	return m.Error
}

func countLines(logs, substr string) int {
	n := 0
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, substr) {
			n++
		}
	}
	return n
}

// Past max_connections a connection's first request is answered with
// -32036 and the connection closed; one log line covers a burst; a slot
// freed by a client that leaves is taken again.
func TestMaxConnections(t *testing.T) {
	c := newCluster(t, clusterOptions{backends: 1, proxy: func(cfg *Config) { cfg.MaxConnections = 2 }})
	first := c.client()
	c.client()
	for i := 0; i < 5; i++ {
		conn, err := net.Dial("tcp", c.addr)
		if err != nil {
			t.Fatal(err)
		}
		e := readRefusal(t, conn, fmt.Sprint(i+1))
		conn.Close()
		if e.Code != codeTooManyConnections || !strings.Contains(e.Message, "max_connections") {
			t.Fatalf("refusal: %d %q", e.Code, e.Message)
		}
	}
	if n := c.srv.LimitHits(LimitConnections); n != 5 {
		t.Fatalf("LimitHits(LimitConnections) = %d, want 5", n)
	}
	if n := countLines(c.logs.String(), "connection refused"); n != 1 {
		t.Fatalf("%d log lines for 5 refused connections, want 1", n)
	}
	// Refused connections that send nothing wait for their first request,
	// maxRefusing at most: one more is told at once, with id null.
	silent := make([]net.Conn, maxRefusing)
	for i := range silent {
		conn, err := net.Dial("tcp", c.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		silent[i] = conn
	}
	eventually(t, 5*time.Second, "the silent connections to be refused", func() bool {
		c.srv.mu.Lock()
		defer c.srv.mu.Unlock()
		return len(c.srv.refusing) == maxRefusing
	})
	conn, err := net.Dial("tcp", c.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	readRefusal(t, conn, "null")
	// The silent ones are closed after refuseTimeout.
	for _, conn := range silent {
		_ = conn.SetReadDeadline(time.Now().Add(refuseTimeout + 5*time.Second))
		if _, err := conn.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Fatalf("silent refused connection: read %v, want EOF", err)
		}
	}

	first.conn.Close()
	eventually(t, 5*time.Second, "the first client to be gone", func() bool { return c.srv.Clients() == 1 })
	c.client().mustCall("ping", map[string]any{}, nil)
}

// max_connections_per_ip counts connections by source address: a second
// one from 127.0.0.1 is refused while one from 127.0.0.2 is served.
func TestMaxConnectionsPerIP(t *testing.T) {
	c := newCluster(t, clusterOptions{backends: 1, proxy: func(cfg *Config) { cfg.MaxConnectionsPerIP = 1 }})
	c.client()
	conn, err := net.Dial("tcp", c.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if e := readRefusal(t, conn, `"c-1"`); e.Code != codeTooManyConnections || !strings.Contains(e.Message, "max_connections_per_ip") {
		t.Fatalf("refusal: %d %q", e.Code, e.Message)
	}
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	other, err := d.Dial("tcp", c.addr)
	if err != nil {
		t.Skipf("cannot dial from 127.0.0.2: %v", err)
	}
	defer other.Close()
	w := frame.NewWriter(other)
	_ = w.Write([]byte(`{"jsonrpc":"2.0","id":1,"method":"ping","params":{}}`))
	_ = w.Flush()
	_ = other.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf, err := frame.NewReader(other, nil, frame.Limits{}).Read()
	if err != nil {
		t.Fatalf("client from another address: %v", err)
	}
	defer buf.Release()
	if !strings.Contains(string(buf.B), `"result"`) {
		t.Fatalf("client from another address got %s", buf.B)
	}
	if n := c.srv.LimitHits(LimitConnectionsPerIP); n != 1 {
		t.Fatalf("LimitHits(LimitConnectionsPerIP) = %d, want 1", n)
	}
}

// A session beyond max_sessions_per_client is refused with -32034 and
// reaches no backend; deleting or detaching one frees its place.
func TestMaxSessionsPerClient(t *testing.T) {
	c := newCluster(t, clusterOptions{proxy: func(cfg *Config) { cfg.MaxSessions = 3 }})
	cl := c.client()
	for i := 0; i < 3; i++ {
		createSession(t, cl, fmt.Sprintf("cap-%d", i))
	}
	refused := func(sid string) {
		t.Helper()
		m := cl.call("session.create", map[string]any{"sessionId": sid, "model": "gpt-4.1"})
		if m.Error == nil || m.Error.Code != codeTooManySessions {
			t.Fatalf("session.create of %s past the limit: %+v, want error %d", sid, m.Error, codeTooManySessions)
		}
		if n := c.holders(sid); n != 0 {
			t.Fatalf("refused session %s is loaded on %d backends", sid, n)
		}
	}
	refused("cap-3")
	// Any request naming a new session would take a place: refused too.
	if m := cl.call("session.send", map[string]any{"sessionId": "cap-x", "prompt": "hi"}); m.Error == nil || m.Error.Code != codeTooManySessions {
		t.Fatalf("session.send of an unknown session past the limit: %+v", m.Error)
	}
	// Deleting an unknown session takes no place, even at the limit.
	cl.mustCall("session.delete", map[string]any{"sessionId": "never-created"}, nil)

	cl.mustCall("session.delete", map[string]any{"sessionId": "cap-0"}, nil)
	createSession(t, cl, "cap-3")
	refused("cap-4")
	cl.mustCall("session.detach", map[string]any{"sessionId": "cap-1"}, nil)
	createSession(t, cl, "cap-4")
	refused("cap-5")
	if n := c.srv.LimitHits(LimitSessions); n != 4 {
		t.Fatalf("LimitHits(LimitSessions) = %d, want 4", n)
	}
}

// 100,000 sessions created and deleted on one connection (20,000 under
// -race) leave a small session map: released sessions do not accumulate.
func TestDeletedSessionsLeaveTheMap(t *testing.T) {
	if testing.Short() {
		t.Skip("100,000 sessions")
	}
	const window = 500
	total := 100_000
	if raceDetector {
		total = 20_000 // the race detector makes it ten times slower
	}
	// Checks an hour apart: a busy machine must not take a backend down.
	c := newCluster(t, clusterOptions{backends: 2, health: health.Config{Interval: time.Hour, Timeout: time.Hour},
		proxy: func(cfg *Config) { cfg.MaxSessions = window }})
	// A raw client that keeps only the answers: the test client keeps a
	// channel per session for its events, which 100,000 sessions would
	// fill memory with.
	conn, err := net.Dial("tcp", c.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	answers := make(chan message, window)
	go func() {
		defer close(answers)
		r := frame.NewReader(conn, nil, frame.Limits{})
		for {
			buf, err := r.Read()
			if err != nil {
				return
			}
			var m message
			if json.Unmarshal(buf.B, &m) == nil && m.Method == "" {
				answers <- m
			}
			buf.Release()
		}
	}()
	w := frame.NewWriter(conn)
	nextID := 0
	// round sends one request for each of n sessions from base, then
	// waits for every answer.
	round := func(base, n int, method string, params map[string]any) {
		t.Helper()
		for i := 0; i < n; i++ {
			nextID++
			params["sessionId"] = fmt.Sprintf("churn-%d", base+i)
			body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": nextID, "method": method, "params": params})
			_ = w.Write(body)
		}
		if err := w.Flush(); err != nil {
			t.Fatalf("write: %v", err)
		}
		for i := 0; i < n; i++ {
			select {
			case m, ok := <-answers:
				if !ok {
					t.Fatalf("%s: connection closed", method)
				}
				if m.Error != nil {
					t.Fatalf("%s: %s", method, m.Error.Message)
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("%s: no answer", method)
			}
		}
	}
	round(0, 1, "connect", map[string]any{})
	for base := 0; base < total; base += window {
		round(base, window, "session.create", map[string]any{"model": "m"})
		round(base, window, "session.delete", map[string]any{})
	}
	cc := c.onlyClient()
	cc.mu.Lock()
	entries, live := len(cc.sessions), cc.lim.live
	cc.mu.Unlock()
	if entries > maxReleased || live != 0 {
		t.Fatalf("after %d sessions created and deleted: %d map entries, %d live; want at most %d and 0", total, entries, live, maxReleased)
	}
	for _, b := range c.fakes {
		if n := c.srv.SessionCount(b.Addr()); n != 0 {
			t.Fatalf("backend %s: %d sessions placed, want 0", b.Addr(), n)
		}
	}
}

// A create/resume with params over max_session_params_bytes is refused with
// -32035, reaches no backend and leaves nothing behind.
func TestMaxSessionParams(t *testing.T) {
	c := newCluster(t, clusterOptions{proxy: func(cfg *Config) { cfg.MaxSessionParams = 4096 }})
	cl := c.client()
	big := strings.Repeat("x", 8192)
	for _, method := range []string{"session.create", "session.resume"} {
		m := cl.call(method, map[string]any{"sessionId": "big", "model": "m", "systemMessage": map[string]any{"content": big}})
		if m.Error == nil || m.Error.Code != codeParamsTooLarge {
			t.Fatalf("%s with 8 KiB params: %+v, want error %d", method, m.Error, codeParamsTooLarge)
		}
	}
	if n := c.holders("big"); n != 0 {
		t.Fatalf("refused session loaded on %d backends", n)
	}
	cc := c.onlyClient()
	cc.mu.Lock()
	entries := len(cc.sessions)
	cc.mu.Unlock()
	if entries != 0 {
		t.Fatalf("refused creates left %d session entries", entries)
	}
	createSession(t, cl, "small")
	if n := c.srv.LimitHits(LimitSessionParams); n != 2 {
		t.Fatalf("LimitHits(LimitSessionParams) = %d, want 2", n)
	}
}

// The params one client makes the proxy keep over all its sessions are
// capped: past MaxClientParams a create gets -32035 and takes no place;
// deleting a session gives its share back; re-creating a session replaces
// its share rather than adding to it.
func TestMaxClientParams(t *testing.T) {
	c := newCluster(t, clusterOptions{proxy: func(cfg *Config) { cfg.MaxSessionParams = 16 << 10; cfg.MaxClientParams = 40 << 10 }})
	cl := c.client()
	params := func(sid string) map[string]any {
		return map[string]any{"sessionId": sid, "model": "m", "systemMessage": map[string]any{"content": strings.Repeat("x", 12<<10)}}
	}
	for i := 0; i < 3; i++ {
		cl.mustCall("session.create", params(fmt.Sprintf("kept-%d", i)), nil)
	}
	cl.mustCall("session.resume", params("kept-0"), nil) // replaces its share
	m := cl.call("session.create", params("one-too-many"))
	if m.Error == nil || m.Error.Code != codeParamsTooLarge {
		t.Fatalf("create past the client's params limit: %+v, want error %d", m.Error, codeParamsTooLarge)
	}
	if n := c.holders("one-too-many"); n != 0 {
		t.Fatalf("refused session loaded on %d backends", n)
	}
	cc := c.onlyClient()
	if kept := cc.keptParams(); kept > 40<<10 {
		t.Fatalf("client keeps %d bytes of params, limit %d", kept, 40<<10)
	}
	cl.mustCall("session.delete", map[string]any{"sessionId": "kept-1"}, nil)
	cl.mustCall("session.create", params("one-too-many"), nil)
}

// A registration sent again replaces the earlier one: a new upstream
// replays one per method, and the replay is accepted there.
func TestRegistrationsKeptOnePerMethod(t *testing.T) {
	c := newCluster(t, clusterOptions{})
	cl := c.client()
	for i := 0; i < 50; i++ {
		cl.mustCall("sessionFs.setProvider", map[string]any{"initialCwd": fmt.Sprintf("/w/%d", i)}, nil)
	}
	cc := c.onlyClient()
	cc.mu.Lock()
	regs := append([]registration(nil), cc.regs...)
	cc.mu.Unlock()
	if len(regs) != 1 || !strings.Contains(string(regs[0].params), "/w/49") {
		t.Fatalf("kept %d registrations, want the latest one alone", len(regs))
	}
	// Sessions on every backend open new upstreams, which replay it.
	for i := 0; i < 12; i++ {
		createSession(t, cl, fmt.Sprintf("reg-%d", i))
	}
	if n := len(cc.upstreamList()); n != len(c.fakes) {
		t.Fatalf("client uses %d backends, want %d", n, len(c.fakes))
	}
}

// A fan-out counts as one request in flight: with every backend frozen,
// 20,000 session.list get exactly max_pending through and the rest refused
// with -32032; the ones let through are answered once the backends thaw.
func TestFanOutsCountAgainstPending(t *testing.T) {
	// Checks an hour apart: the frozen backends stay in the ring.
	c := newCluster(t, clusterOptions{health: health.Config{Interval: time.Hour, Timeout: time.Hour}})
	cl := c.client()
	cl.mustCall("session.list", map[string]any{}, nil) // opens an upstream to every backend
	for _, f := range c.fakes {
		f.Freeze()
		t.Cleanup(f.Thaw)
	}
	const total = 20_000
	maxPending := c.srv.cfg.MaxPending
	answers := make([]chan message, total)
	for i := range answers {
		answers[i] = cl.start("session.list", map[string]any{})
	}
	open := make(map[int]bool, total)
	for i := range answers {
		open[i] = true
	}
	// Every refusal comes at once; the requests let through wait for the
	// backends.
	refused := 0
	eventually(t, 30*time.Second, fmt.Sprintf("%d refusals", total-maxPending), func() bool {
		for i := range open {
			select {
			case m := <-answers[i]:
				if m.Error == nil || m.Error.Code != codeOverloaded {
					t.Fatalf("session.list %d answered while its backends are frozen: %+v", i, m)
				}
				refused++
				delete(open, i)
			default:
			}
		}
		return refused >= total-maxPending
	})
	if len(open) != maxPending {
		t.Fatalf("%d session.list in flight, want %d", len(open), maxPending)
	}
	for _, f := range c.fakes {
		f.Thaw()
	}
	for i := range open {
		if m := wait(t, answers[i], "session.list"); m.Error != nil {
			t.Fatalf("session.list %d after thaw: %s", i, m.Error.Message)
		}
	}
	cc := c.onlyClient()
	eventually(t, 5*time.Second, "no request in flight", func() bool { return cc.pending.Load() == 0 })
	if n := cl.call("session.list", map[string]any{}); n.Error != nil {
		t.Fatalf("session.list once answered: %s", n.Error.Message)
	}
}

// With a token, 200 connections that each sent one refused ping are closed
// after the handshake timeout; an authenticated one stays.
func TestUnauthenticatedClosedAfterHandshakeTimeout(t *testing.T) {
	const timeout = 500 * time.Millisecond
	c := newCluster(t, clusterOptions{backends: 1, token: "s3cret", proxy: func(cfg *Config) { cfg.HandshakeTimeout = timeout }})
	good := dialClient(t, c.addr)
	good.mustCall("connect", map[string]any{"token": "s3cret"}, nil)
	clients := make([]*testClient, 200)
	for i := range clients {
		clients[i] = dialClient(t, c.addr)
		m := clients[i].call("ping", map[string]any{})
		if m.Error == nil || m.Error.Code != codeAuthRequired {
			t.Fatalf("ping before connect: %+v, want error %d", m.Error, codeAuthRequired)
		}
	}
	for i, cl := range clients {
		if !cl.closedByPeer(10 * time.Second) {
			t.Fatalf("client %d still open long after the handshake timeout", i)
		}
	}
	good.mustCall("ping", map[string]any{}, nil)
	if n := c.srv.LimitHits(LimitHandshake); n != 200 {
		t.Fatalf("LimitHits(LimitHandshake) = %d, want 200", n)
	}
	if n := countLines(c.logs.String(), "not authenticated within the handshake timeout"); n != 1 {
		t.Fatalf("%d log lines for 200 closed clients, want 1", n)
	}
}

// The third wrong token is answered, then the connection is closed; the
// connection costs one log line.
func TestWrongTokensClose(t *testing.T) {
	// A long handshake timeout: only the wrong tokens may close it.
	c := newCluster(t, clusterOptions{backends: 1, token: "s3cret", proxy: func(cfg *Config) { cfg.HandshakeTimeout = time.Minute }})
	cl := dialClient(t, c.addr)
	for i := 1; i <= maxAuthFailures; i++ {
		m := cl.call("connect", map[string]any{"token": fmt.Sprintf("guess-%d", i)})
		if m.Error == nil || m.Error.Code != codeAuthFailed {
			t.Fatalf("wrong token %d: %+v, want error %d", i, m.Error, codeAuthFailed)
		}
		if i < maxAuthFailures && cl.closedByPeer(0) {
			t.Fatalf("closed after %d wrong tokens", i)
		}
	}
	if !cl.closedByPeer(5 * time.Second) {
		t.Fatalf("still open after %d wrong tokens", maxAuthFailures)
	}
	if n := countLines(c.logs.String(), "failed authentication"); n != 1 {
		t.Fatalf("%d log lines for %d wrong tokens, want 1", n, maxAuthFailures)
	}
	if n := c.srv.LimitHits(LimitAuthFailures); n != 1 {
		t.Fatalf("LimitHits(LimitAuthFailures) = %d, want 1", n)
	}
	// A right token after two wrong ones is accepted.
	ok := dialClient(t, c.addr)
	for i := 1; i < maxAuthFailures; i++ {
		ok.call("connect", map[string]any{"token": "wrong"})
	}
	ok.mustCall("connect", map[string]any{"token": "s3cret"}, nil)
	ok.mustCall("ping", map[string]any{}, nil)
}

// client_idle_timeout closes a client with no session that sends nothing;
// a client holding a session, or one that keeps sending, stays.
func TestClientIdleTimeout(t *testing.T) {
	const idle = 300 * time.Millisecond
	c := newCluster(t, clusterOptions{backends: 1, proxy: func(cfg *Config) { cfg.ClientIdleTimeout = idle }})
	start := time.Now()
	holder := c.client()
	createSession(t, holder, "idle-held")
	chatty := c.client()
	idler := c.client()
	// The chatty client has no session but keeps talking: each ping within
	// a period keeps it open while the idler is closed.
	for !idler.closedByPeer(0) {
		chatty.mustCall("ping", map[string]any{}, nil)
		if idler.closedByPeer(idle / 4) {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatal("idle client without a session still open")
		}
	}
	// Two more periods: the holder has been quiet longer than the idler
	// was, the chatty one keeps talking; neither may be closed.
	for end := time.Now().Add(2 * idle); time.Now().Before(end); {
		chatty.mustCall("ping", map[string]any{}, nil)
		time.Sleep(idle / 4)
	}
	chatty.mustCall("ping", map[string]any{}, nil)
	holder.mustCall("ping", map[string]any{}, nil)
	if n := c.srv.LimitHits(LimitIdle); n != 1 {
		t.Fatalf("LimitHits(LimitIdle) = %d, want 1", n)
	}
}

// A session.resume the backend refuses (an unknown session) gives its place
// back: 200 of them, with 64 KiB of params each, leave no live session and
// a small map, so neither MaxSessions nor the kept params fill up.
func TestRefusedResumeGivesBackItsPlace(t *testing.T) {
	c := newCluster(t, clusterOptions{})
	cl := c.client()
	big := strings.Repeat("p", 64<<10)
	const n = 200
	answers := make([]chan message, n)
	for i := range answers {
		answers[i] = cl.start("session.resume", map[string]any{"sessionId": fmt.Sprintf("ghost-%d", i), "systemMessage": map[string]any{"content": big}})
	}
	for i, ch := range answers {
		if m := wait(t, ch, "session.resume"); m.Error == nil {
			t.Fatalf("resume of unknown session ghost-%d succeeded", i)
		}
	}
	cc := c.onlyClient()
	cc.mu.Lock()
	entries, live := len(cc.sessions), cc.lim.live
	cc.mu.Unlock()
	if live != 0 || entries > maxReleased {
		t.Fatalf("after %d refused resumes: %d live sessions, %d map entries; want 0 and at most %d", n, live, entries, maxReleased)
	}
	for _, f := range c.fakes {
		if k := c.srv.SessionCount(f.Addr()); k != 0 {
			t.Fatalf("backend %s: %d sessions placed, want 0", f.Addr(), k)
		}
	}
	// A session the client does hold is kept when a later request fails.
	createSession(t, cl, "real")
	if m := cl.call("session.send", map[string]any{"sessionId": "real", "prompt": 42}); m.Error == nil {
		t.Fatal("session.send with a number for a prompt succeeded")
	}
	cc.mu.Lock()
	live = cc.lim.live
	cc.mu.Unlock()
	if live != 1 {
		t.Fatalf("live sessions after a create: %d, want 1", live)
	}
}
