package fakecli

import (
	"slices"
	"time"

	"github.com/rpcproxy/rpcproxy/internal/frame"
)

// session is a session loaded on one server: loaded while at least one
// connection is attached, unloaded when the last one detaches or closes.
// Its fields marked so are guarded by Server.mu.
type session struct {
	id       string
	evPrefix []byte        // `{"jsonrpc":…,"params":{"sessionId":"…","event":`
	done     chan struct{} // closed on unload; ends the session's turns

	attached map[*conn]*attachment // guarded
	order    []*conn               // attached conns in attach order, copy-on-write; guarded
	tools    map[string]chan reply // pending external tool calls by requestId; guarded
	lastID   string                // id of the latest event, the next one's parentId; guarded
	queue    []queuedTurn          // messages sent and not yet played, in order; guarded
	playing  bool                  // a turn worker is running for the session; guarded
}

// queuedTurn is a session.send waiting for its turn.
type queuedTurn struct {
	messageID string
	prompt    string
}

// attachment is what one connection registered for a session.
type attachment struct {
	tools     []string
	userInput bool
}

func newSession(id string) *session {
	prefix := append([]byte(`{"jsonrpc":"2.0","method":"session.event","params":{"sessionId":`), appendJSONString(nil, id)...)
	prefix = append(prefix, `,"event":`...)
	return &session{
		id:       id,
		evPrefix: prefix,
		done:     make(chan struct{}),
		attached: make(map[*conn]*attachment),
		tools:    make(map[string]chan reply),
	}
}

// unloaded reports whether the session has been unloaded.
func (ss *session) unloaded() bool {
	select {
	case <-ss.done:
		return true
	default:
		return false
	}
}

// attach loads the session if needed and attaches c with att, unless
// another connection holding it registered a tool of the same name.
// s.mu must be held.
func (s *Server) attachLocked(c *conn, id string, att *attachment) (*session, string) {
	ss := s.sessions[id]
	if ss != nil {
		for other, a := range ss.attached {
			if other == c {
				continue
			}
			for _, name := range att.tools {
				if slices.Contains(a.tools, name) {
					return nil, name
				}
			}
		}
	} else {
		ss = newSession(id)
		s.sessions[id] = ss
	}
	if _, ok := ss.attached[c]; !ok {
		ss.order = append(slices.Clip(ss.order), c)
	}
	ss.attached[c] = att
	c.sessions[id] = ss
	return ss, ""
}

// detachLocked detaches c from the session and unloads the session when no
// connection holds it. s.mu must be held.
func (s *Server) detachLocked(c *conn, ss *session) {
	if _, ok := ss.attached[c]; !ok {
		return
	}
	delete(ss.attached, c)
	delete(c.sessions, ss.id)
	ss.order = slices.DeleteFunc(slices.Clone(ss.order), func(o *conn) bool { return o == c })
	if len(ss.attached) == 0 {
		s.unloadLocked(ss)
	}
}

// unloadLocked drops a loaded session: "Last RPC connection closed".
// s.mu must be held.
func (s *Server) unloadLocked(ss *session) {
	for c := range ss.attached {
		delete(c.sessions, ss.id)
	}
	clear(ss.attached)
	ss.order = nil
	ss.queue = nil
	if s.sessions[ss.id] == ss {
		delete(s.sessions, ss.id)
	}
	close(ss.done)
}

// dropConn forgets a closed connection: its sessions are detached (and
// unloaded when it was the last holder) and its pending calls fail.
func (s *Server) dropConn(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	for _, ss := range c.sessions {
		s.detachLocked(c, ss)
	}
	s.mu.Unlock()

	c.callMu.Lock()
	calls := c.calls
	c.calls = make(map[uint64]chan<- reply)
	c.callMu.Unlock()
	for range calls {
		s.pendingCalls.Add(-1)
	}
	for _, ch := range calls {
		select {
		case ch <- reply{Error: &RPCError{Code: CodeInternal, Message: "connection closed"}}:
		default:
		}
	}
}

// loaded returns the session loaded on this server, or nil.
func (s *Server) loaded(id string) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions[id]
}

// emit sends one session.event to every connection attached to the
// session, persisting it first when persist is set. data is the event's
// data object as JSON. It reports false once the session is unloaded.
func (s *Server) emit(ss *session, typ string, data []byte, persist bool) bool {
	if !s.gate(ss.done) {
		return false
	}
	if s.closing() {
		return false // a killed process writes nothing more
	}
	now := time.Now()
	var idbuf [36]byte
	evID := appendUUID(idbuf[:0])

	s.mu.Lock()
	if ss.unloaded() {
		s.mu.Unlock()
		return false
	}
	parent := ss.lastID
	ss.lastID = string(evID)
	targets := ss.order
	s.mu.Unlock()

	size := len(ss.evPrefix) + len(typ) + len(data) + 160
	b := frame.Get(size)
	b.B = append(b.B[:0], ss.evPrefix...)
	start := len(b.B)
	b.B = append(b.B, `{"type":`...)
	b.B = appendJSONString(b.B, typ)
	b.B = append(b.B, `,"data":`...)
	b.B = append(b.B, data...)
	b.B = append(b.B, `,"id":"`...)
	b.B = append(b.B, evID...)
	b.B = append(b.B, `","timestamp":"`...)
	b.B = appendTimestamp(b.B, now)
	b.B = append(b.B, `","parentId":`...)
	if parent == "" {
		b.B = append(b.B, "null"...)
	} else {
		b.B = appendJSONString(b.B, parent)
	}
	if !persist {
		b.B = append(b.B, `,"ephemeral":true`...)
	}
	b.B = append(b.B, '}')
	if persist && !s.store.appendEvent(ss.id, now, slices.Clone(b.B[start:])) {
		b.Release()
		return false
	}
	b.B = append(b.B, "}}"...)
	s.fanout(b, targets)
	return true
}

// fanout queues b to every target connection, a copy each but the last,
// and takes ownership of b.
func (s *Server) fanout(b *frame.Buffer, targets []*conn) {
	if len(targets) == 0 {
		b.Release()
		return
	}
	for _, c := range targets[:len(targets)-1] {
		if c.sendBytes(b.B) {
			s.notifications.Add(1)
		}
	}
	if targets[len(targets)-1].send(b) {
		s.notifications.Add(1)
	}
}

// lifecycle sends a session.lifecycle notification to every authenticated
// connection on the server, as the CLI does, attached or not.
func (s *Server) lifecycle(typ, sessionID string, start, modified time.Time) {
	if s.cfg.NoLifecycle {
		return
	}
	p := make([]byte, 0, 160+len(sessionID))
	p = append(p, `{"type":`...)
	p = appendJSONString(p, typ)
	p = append(p, `,"sessionId":`...)
	p = appendJSONString(p, sessionID)
	p = append(p, `,"metadata":{"startTime":"`...)
	p = appendTimestamp(p, start)
	p = append(p, `","modifiedTime":"`...)
	p = appendTimestamp(p, modified)
	p = append(p, `"}}`...)
	b := frame.Get(len(p) + 64)
	b.B = appendNotification(b.B[:0], "session.lifecycle", p)

	s.mu.Lock()
	targets := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		if c.authed.Load() {
			targets = append(targets, c)
		}
	}
	s.mu.Unlock()
	// Nobody waits for these: a connection whose queue is full loses the
	// notification instead of stalling the turn or request that caused it.
	for i, c := range targets {
		m := b
		if i < len(targets)-1 {
			m = frame.Copy(b.B)
		}
		select {
		case c.out <- m:
			s.notifications.Add(1)
		default:
			m.Release()
			s.dropped.Add(1)
		}
	}
	if len(targets) == 0 {
		b.Release()
	}
}
