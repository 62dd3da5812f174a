package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/rpcproxy/rpcproxy/internal/frame"
	"github.com/rpcproxy/rpcproxy/internal/router"
)

// upstream is one client's own connection to one backend. The CLI keeps
// state per connection (tools, providers, loaded sessions), so upstreams are
// never shared between clients, and one lives as long as its client.
//
// The client's reader goroutine is the only writer (w); the upstream's
// reader goroutine reads. pending is shared and guarded by mu.
type upstream struct {
	c       *clientConn
	backend *router.Backend
	conn    net.Conn
	r       *frame.Reader
	w       *frame.Writer

	unflushed int // frames written since the last flush

	mu      sync.Mutex
	closed  bool
	nextID  uint64
	pending map[uint64]pendingReq
}

// pendingReq is a request in flight on an upstream: either the client's own
// (answered with the client's id) or one part of a fan-out.
type pendingReq struct {
	client rawID
	fan    *fanOut
	part   int
	wait   chan internalResult // the proxy's own request (callSync)
	turn   *session            // the session whose turn this session.send starts
	sent   int64               // unix nanoseconds, when a request timeout is set
}

// own reports whether the request is the client's own, counted against its limit.
func (p *pendingReq) own() bool { return p.fan == nil && p.wait == nil }

var errUpstreamClosed = errors.New("upstream connection closed")

// dialUpstream connects to b and performs the handshake as this client:
// connect with b's token (ping for servers that predate connect), then the
// client's process-wide registrations. It runs on the client's reader
// goroutine, bounded by the handshake timeout. A backend's JSON-RPC refusal
// is returned as *rpcError.
func dialUpstream(c *clientConn, b *router.Backend) (*upstream, error) {
	cfg := &c.srv.cfg
	d := net.Dialer{Timeout: cfg.DialTimeout}
	conn, err := d.Dial("tcp", b.Addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", b.Addr, err)
	}
	u := &upstream{
		c:       c,
		backend: b,
		conn:    conn,
		r:       frame.NewReader(conn, conn, cfg.Limits),
		w:       frame.NewWriter(newDeadlineWriter(conn, cfg.WriteTimeout)),
		pending: make(map[uint64]pendingReq),
	}
	// Every backend frame is done with (written to the client, decoded or
	// dropped) before the next is read: bodies can stay in the read buffer.
	u.r.Lend()
	_ = conn.SetDeadline(time.Now().Add(cfg.HandshakeTimeout))
	result, err := u.call("connect", c.upstreamConnectParams(b.Token))
	var re *rpcError
	if errors.As(err, &re) && re.Code == -32601 {
		result, err = u.call("ping", nil)
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	c.srv.SetInfo(result)
	c.mu.Lock()
	regs := append([]registration(nil), c.regs...)
	c.mu.Unlock()
	for _, reg := range regs {
		if _, err := u.call(reg.method, reg.params); err != nil {
			conn.Close()
			return nil, err
		}
	}
	// The write deadline stays: u.w's deadlineWriter keeps it fresh.
	_ = conn.SetReadDeadline(time.Time{})
	return u, nil
}

// call sends a request and waits for its answer, reading the connection
// directly. Only for the handshake, before the reader goroutine starts.
func (u *upstream) call(method string, params json.RawMessage) (json.RawMessage, error) {
	u.nextID++
	id := u.nextID
	if err := u.w.Write(requestBody(id, method, params)); err != nil {
		return nil, err
	}
	if err := u.w.Flush(); err != nil {
		return nil, err
	}
	var m frame.Meta
	for {
		buf, err := u.r.Read()
		if err != nil {
			return nil, fmt.Errorf("%s handshake with %s: %w", method, u.backend.Addr, err)
		}
		if frame.Scan(buf.B, &m) != nil || m.Kind != frame.KindResponse {
			buf.Release()
			continue
		}
		got, ok := parseUint(m.ID.Of(buf.B))
		if !ok || got != id {
			buf.Release()
			continue
		}
		result, rerr := decodeResponse(buf.B)
		buf.Release()
		if rerr != nil {
			return nil, rerr
		}
		return result, nil
	}
}

// decodeResponse splits a response into its result or its error.
func decodeResponse(body []byte) (json.RawMessage, *rpcError) {
	var resp struct {
		Result json.RawMessage `json:"result"`
		Error  *rpcError       `json:"error"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return nil, &rpcError{Code: codeInternal, Message: "backend sent an undecodable response"}
	}
	if resp.Error != nil {
		return nil, resp.Error
	}
	return resp.Result, nil
}

// start runs the upstream's reader goroutine, owned by the client.
func (u *upstream) start() {
	u.c.wg.Add(1)
	go u.readLoop()
}

// readLoop passes the backend's frames to the client: responses with the
// client's id restored, server→client requests with an id unique on the
// client connection, notifications untouched.
func (u *upstream) readLoop() {
	defer u.c.wg.Done()
	c := u.c
	var m frame.Meta
	for {
		buf, err := u.r.Read()
		if err != nil {
			u.fail(err)
			return
		}
		// flush: nothing more at hand, so what this reader wrote to the
		// client goes out after this frame, whether the frame itself is
		// written, dropped or answers the proxy.
		flush := !u.r.Ready()
		if !u.handle(buf, &m, flush) && flush {
			c.flush()
		}
	}
}

// handle passes one backend frame on and reports whether it was written to
// the client with flush (so the caller need not flush).
func (u *upstream) handle(buf *frame.Buffer, m *frame.Meta, flush bool) bool {
	c := u.c
	// The backend is trusted past the head of its events and answers: they
	// are most of the bytes, and nothing after their head routes them.
	if err := frame.ScanHead(buf.B, m); err != nil {
		c.log().Warn("backend frame is not a JSON object; dropped", "backend", u.backend.Name, "bytes", len(buf.B))
		buf.Release()
		return false
	}
	switch m.Kind {
	case frame.KindNotification:
		if !c.wants(u, buf.B, m) {
			buf.Release()
			return false
		}
		c.noteTurnEnd(buf.B, m)
		c.send(outFrame{buf: buf}, flush)
		return true
	case frame.KindResponse:
		return u.deliver(buf, m, flush)
	case frame.KindRequest:
		id := c.registerS2C(u, m.ID.Of(buf.B))
		c.send(outFrame{buf: buf, idStart: m.ID.Start, idEnd: m.ID.End, id: id}, flush)
		return true
	}
	c.log().Warn("backend message is neither request, response nor notification; dropped", "backend", u.backend.Name)
	buf.Release()
	return false
}

// deliver routes a backend's response to whoever asked, and reports whether
// it was written to the client (with flush).
func (u *upstream) deliver(buf *frame.Buffer, m *frame.Meta, flush bool) bool {
	id, ok := parseUint(m.ID.Of(buf.B))
	u.mu.Lock()
	p, found := u.pending[id]
	if found {
		delete(u.pending, id)
	}
	u.mu.Unlock()
	if !ok || !found {
		u.c.log().Debug("backend answered an unknown request; dropped", "backend", u.backend.Name)
		buf.Release()
		return false
	}
	if p.fan != nil || p.wait != nil {
		result, rerr := decodeResponse(buf.B)
		buf.Release()
		if p.wait != nil {
			p.wait <- internalResult{result: result, err: rerr}
			return false
		}
		p.fan.deliver(p.part, result, rerr)
		return false
	}
	if p.turn != nil && m.HasError {
		p.turn.inTurn.Store(false) // the send was refused: no turn runs
	}
	u.c.pending.Add(-1)
	u.c.send(outFrame{buf: buf, idStart: m.ID.Start, idEnd: m.ID.End, id: p.client}, flush)
	return true
}

// forward writes a client request with a fresh upstream id and records p for
// its answer. A write failure fails the upstream, which answers p.
func (u *upstream) forward(body []byte, m *frame.Meta, p pendingReq) error {
	id, err := u.track(p)
	if err != nil {
		return err
	}
	var nb [20]byte
	u.writeWithID(body, m.ID, strconv.AppendUint(nb[:0], id, 10))
	return nil
}

// request writes a request the proxy builds itself (fan-out parts).
func (u *upstream) request(method string, params json.RawMessage, p pendingReq) error {
	id, err := u.track(p)
	if err != nil {
		return err
	}
	u.write(requestBody(id, method, params))
	return nil
}

func (u *upstream) track(p pendingReq) (uint64, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return 0, errUpstreamClosed
	}
	u.nextID++
	if u.c.srv.cfg.RequestTimeout > 0 {
		p.sent = time.Now().UnixNano()
	}
	u.pending[u.nextID] = p
	if p.turn != nil {
		// Under u.mu: fail either finds this send pending (the turn never
		// started) or runs before it and it is refused here. A turn marked
		// outside the lock could be "ended" by fail with a session.idle of a
		// turn that was never sent.
		p.turn.inTurn.Store(true)
	}
	if p.own() {
		u.c.pending.Add(1)
	}
	return u.nextID, nil
}

// forget drops a request nobody waits for any more.
func (u *upstream) forget(id uint64) {
	u.mu.Lock()
	delete(u.pending, id)
	u.mu.Unlock()
}

// write and writeWithID buffer a frame; the client's reader flushes. Client reader goroutine only.
func (u *upstream) write(body []byte) {
	if err := u.w.Write(body); err != nil {
		u.fail(err)
		return
	}
	u.wrote()
}

func (u *upstream) writeWithID(body []byte, span frame.Span, id []byte) {
	if err := u.w.WriteWithID(body, int(span.Start), int(span.End), id); err != nil {
		u.fail(err)
		return
	}
	u.wrote()
}

// maxUnflushed bounds the frames buffered for a backend while a client
// keeps its input full, so latency stays bounded under sustained load.
const maxUnflushed = 64

func (u *upstream) wrote() {
	u.unflushed++
	if u.unflushed >= maxUnflushed {
		if err := u.flush(); err != nil {
			u.fail(err)
		}
		return
	}
	u.c.markDirty(u)
}

func (u *upstream) flush() error {
	u.unflushed = 0
	if u.w.Buffered() == 0 {
		return nil
	}
	return u.w.Flush() // under a fresh write deadline: see deadlineWriter
}

// fail ends the upstream after an error: every request pending on it is
// answered with a retryable error naming the backend, the client forgets
// it, and the backend's health hears of it. The client's connection stays
// open for its other sessions. Safe to call more than once.
func (u *upstream) fail(err error) {
	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		return
	}
	u.closed = true
	pending := u.pending
	u.pending = nil
	u.mu.Unlock()
	u.conn.Close()
	c := u.c
	c.dropUpstream(u)
	if c.closing() {
		return
	}
	c.log().Warn("upstream connection lost", "backend", u.backend.Name, "error", err, "pending", len(pending))
	c.srv.reportFailure(u.backend, err)
	lost := proxyError(codeBackendUnavailable, "backend connection lost", errorData{Retryable: true, Backend: u.backend.Name})
	unstarted := map[*session]bool{}
	for _, p := range pending {
		if p.turn != nil {
			unstarted[p.turn] = true
		}
	}
	c.endTurnsOn(u.backend.Name, unstarted)
	for _, p := range pending {
		if p.wait != nil {
			p.wait <- internalResult{err: lost}
			continue
		}
		if p.fan != nil {
			p.fan.deliver(p.part, nil, lost)
			continue
		}
		c.pending.Add(-1)
		c.replyError(p.client.Bytes(), lost)
	}
}

// close shuts the upstream when its client goes; nothing is answered.
func (u *upstream) close() {
	u.mu.Lock()
	u.closed = true
	u.mu.Unlock()
	u.conn.Close()
}

// upstreamConnectParams is the client's connect params with the backend's
// token in place of the client's (sent only when the backend has one).
func (c *clientConn) upstreamConnectParams(token string) json.RawMessage {
	params := map[string]json.RawMessage{}
	if len(c.connectParams) > 0 {
		_ = json.Unmarshal(c.connectParams, &params)
	}
	if token != "" {
		t, _ := json.Marshal(token)
		params["token"] = t
	}
	b, _ := json.Marshal(params)
	return b
}

// overdue reports whether a request has waited longer than timeout.
func (u *upstream) overdue(now time.Time, timeout time.Duration) bool {
	limit := now.Add(-timeout).UnixNano()
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, p := range u.pending {
		if p.sent != 0 && p.sent < limit {
			return true
		}
	}
	return false
}

// pendingID finds the upstream id of the client's request in flight with
// the given client id.
func (u *upstream) pendingID(clientID []byte) (uint64, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for id, p := range u.pending {
		if p.own() && bytes.Equal(p.client.Bytes(), clientID) {
			return id, true
		}
	}
	return 0, false
}
