package fakecli

import (
	"encoding/json"
	"time"
)

// Session-scoped methods: create, resume, send, history, aggregates over
// the store, delete, detach, and answers to tool calls.

// sessionParams are the members of session.create and session.resume the
// fake looks at; everything else (provider, model, flags) is accepted.
type sessionParams struct {
	SessionID string `json:"sessionId"`
	Tools     []struct {
		Name string `json:"name"`
	} `json:"tools"`
	RequestUserInput bool `json:"requestUserInput"`
}

func (p *sessionParams) attachment() *attachment {
	a := &attachment{userInput: p.RequestUserInput}
	for _, t := range p.Tools {
		if t.Name != "" {
			a.tools = append(a.tools, t.Name)
		}
	}
	return a
}

type sessionResult struct {
	SessionID     string `json:"sessionId"`
	StartTime     string `json:"startTime"`
	IsRemote      bool   `json:"isRemote"`
	Mode          string `json:"mode"`
	WorkspacePath string `json:"workspacePath"`
	Server        string `json:"server"`
}

func (s *Server) sessionResult(id string, start time.Time) sessionResult {
	return sessionResult{
		SessionID:     id,
		StartTime:     formatTime(start),
		Mode:          "interactive",
		WorkspacePath: "/fakecli/" + s.cfg.Name + "/session-state/" + id,
		Server:        s.cfg.Name,
	}
}

// handleCreate loads a new session and attaches it to c. Like the CLI, it
// also succeeds for an ID that is already loaded (attaching c, subject to
// the tool-name clash rule) or persisted.
func handleCreate(s *Server, c *conn, req *request) (any, *RPCError) {
	var p sessionParams
	if err := decode(req, &p); err != nil {
		return nil, err
	}
	if p.SessionID == "" {
		p.SessionID = newUUID()
	}
	if s.fsProviderGone() {
		return nil, failed(req.method, "session construction failed: GenericFailure, %v", errFsProviderGone)
	}
	s.mu.Lock()
	ss, clash := s.attachLocked(c, p.SessionID, p.attachment())
	s.mu.Unlock()
	if ss == nil {
		return nil, failed(req.method, "External tool name clash: %s already registered by another connection", clash)
	}
	now := time.Now()
	start, created := s.store.ensure(p.SessionID, now)
	req.after = func() {
		s.lifecycle("session.created", p.SessionID, start, now)
		if created {
			// Only the create that made the entry writes its first event.
			s.emit(ss, "session.start", mustJSON(map[string]any{"sessionId": p.SessionID, "version": 1,
				"producer": "fakecli", "copilotVersion": s.cfg.Version, "startTime": formatTime(start),
				"server": s.cfg.Name}), true)
		}
	}
	return s.sessionResult(p.SessionID, start), nil
}

// handleResume loads a persisted session (or joins the loaded one) and
// attaches it to c.
func handleResume(s *Server, c *conn, req *request) (any, *RPCError) {
	var p sessionParams
	if err := decode(req, &p); err != nil {
		return nil, err
	}
	if s.fsProviderGone() {
		return nil, failed(req.method, "session resume failed: %v", errFsProviderGone)
	}
	start, ok := s.store.startTime(p.SessionID)
	if !ok {
		return nil, failed(req.method, "Failed to load session events: Session not found: %s", p.SessionID)
	}
	s.mu.Lock()
	ss, clash := s.attachLocked(c, p.SessionID, p.attachment())
	s.mu.Unlock()
	if ss == nil {
		return nil, failed(req.method, "External tool name clash: %s already registered by another connection", clash)
	}
	now := time.Now()
	data := mustJSON(map[string]any{"resumeTime": formatTime(now), "server": s.cfg.Name, "eventCount": len(s.storeEvents(p.SessionID))})
	req.after = func() {
		s.lifecycle("session.created", p.SessionID, start, now)
		s.emit(ss, "session.resume", data, true)
	}
	return s.sessionResult(p.SessionID, start), nil
}

func (s *Server) storeEvents(id string) [][]byte {
	evs, _ := s.store.events(id)
	return evs
}

// notLoaded is the CLI's answer for a session-scoped request on a server
// where the session is not loaded.
func notLoaded(method, id string) *RPCError {
	return failed(method, "Session not found for sessionId: %s", id)
}

// handleSend queues a turn. Like the CLI, any connection may send to a
// session loaded on this server; the events go to the attached ones.
// Turns of a session are played one at a time, in the order sent.
func handleSend(s *Server, c *conn, req *request) (any, *RPCError) {
	var p struct {
		SessionID string `json:"sessionId"`
		Prompt    string `json:"prompt"`
	}
	if err := decode(req, &p); err != nil {
		return nil, err
	}
	ss := s.loaded(p.SessionID)
	if ss == nil {
		return nil, notLoaded(req.method, p.SessionID)
	}
	s.mu.Lock()
	full := len(ss.queue) >= maxQueuedTurns
	s.mu.Unlock()
	if full {
		return nil, failed(req.method, "too many queued messages for session %s", p.SessionID)
	}
	msgID := newUUID()
	// Queued only once the response is: the turn's events must follow it.
	req.after = func() {
		s.mu.Lock()
		if ss.unloaded() {
			s.mu.Unlock()
			return
		}
		ss.queue = append(ss.queue, queuedTurn{msgID, p.Prompt})
		start := !ss.playing
		ss.playing = true
		s.mu.Unlock()
		if start {
			s.wg.Add(1)
			go s.playTurns(ss)
		}
	}
	return struct {
		MessageID string `json:"messageId"`
	}{msgID}, nil
}

func handleGetMessages(s *Server, c *conn, req *request) (any, *RPCError) {
	var p struct {
		SessionID string `json:"sessionId"`
	}
	if err := decode(req, &p); err != nil {
		return nil, err
	}
	evs, ok := s.store.events(p.SessionID)
	if !ok || s.loaded(p.SessionID) == nil {
		return nil, failed(req.method, "Session not found: %s", p.SessionID)
	}
	n := 12
	for _, e := range evs {
		n += len(e) + 1
	}
	b := make([]byte, 0, n)
	b = append(b, `{"events":[`...)
	for i, e := range evs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, e...)
	}
	return append(b, "]}"...), nil
}

type listedSession struct {
	SessionID    string `json:"sessionId"`
	StartTime    string `json:"startTime"`
	ModifiedTime string `json:"modifiedTime"`
	Summary      string `json:"summary"`
	Name         string `json:"name"`
	IsRemote     bool   `json:"isRemote"`
	IsDetached   bool   `json:"isDetached"`
	ClientName   string `json:"clientName"`
}

func handleList(s *Server, c *conn, req *request) (any, *RPCError) {
	entries := s.store.listed()
	out := make([]listedSession, len(entries))
	for i, e := range entries {
		out[i] = listedSession{SessionID: e.ID, StartTime: formatTime(e.Start), ModifiedTime: formatTime(e.Modified),
			Summary: e.Summary, Name: e.Summary, ClientName: "sdk"}
	}
	return struct {
		Sessions []listedSession `json:"sessions"`
	}{out}, nil
}

func handleGetLastID(s *Server, c *conn, req *request) (any, *RPCError) {
	entries := s.store.listed()
	if len(entries) == 0 {
		return json.RawMessage(`{}`), nil
	}
	return struct {
		SessionID string `json:"sessionId"`
	}{entries[0].ID}, nil
}

// handleDelete removes a session from the store and unloads it. Like the
// CLI, an unknown ID is a result with success false, not an error.
func handleDelete(s *Server, c *conn, req *request) (any, *RPCError) {
	var p struct {
		SessionID string `json:"sessionId"`
	}
	if err := decode(req, &p); err != nil {
		return nil, err
	}
	start, _ := s.store.startTime(p.SessionID)
	if !s.store.remove(p.SessionID) {
		return struct {
			Success bool   `json:"success"`
			Error   string `json:"error"`
		}{false, "Session file not found for " + p.SessionID}, nil
	}
	s.mu.Lock()
	if ss := s.sessions[p.SessionID]; ss != nil {
		s.unloadLocked(ss)
	}
	s.mu.Unlock()
	req.after = func() { s.lifecycle("session.deleted", p.SessionID, start, time.Now()) }
	return json.RawMessage(`{"success":true}`), nil
}

// handleDetach detaches the session from c, unloading it when no other
// connection holds it. It always succeeds, as the CLI's does.
func handleDetach(s *Server, c *conn, req *request) (any, *RPCError) {
	var p struct {
		SessionID string `json:"sessionId"`
	}
	if err := decode(req, &p); err != nil {
		return nil, err
	}
	s.mu.Lock()
	if ss := c.sessions[p.SessionID]; ss != nil {
		s.detachLocked(c, ss)
	}
	s.mu.Unlock()
	return json.RawMessage(`{"success":true}`), nil
}

// handleToolResult answers a pending external tool call. Any connection may
// answer while the session is loaded; an unknown or already answered
// requestId gets success false.
func handleToolResult(s *Server, c *conn, req *request) (any, *RPCError) {
	var p struct {
		SessionID string          `json:"sessionId"`
		RequestID string          `json:"requestId"`
		Result    json.RawMessage `json:"result"`
		Error     string          `json:"error"`
	}
	if err := decode(req, &p); err != nil {
		return nil, err
	}
	s.mu.Lock()
	ss := s.sessions[p.SessionID]
	var ch chan reply
	if ss != nil {
		ch = ss.tools[p.RequestID]
		delete(ss.tools, p.RequestID)
	}
	s.mu.Unlock()
	if ss == nil {
		return nil, notLoaded(req.method, p.SessionID)
	}
	if ch == nil {
		return json.RawMessage(`{"success":false}`), nil
	}
	r := reply{Result: p.Result}
	if p.Error != "" {
		r.Error = &RPCError{Code: CodeInternal, Message: p.Error}
	}
	ch <- r // buffered, and only the one who removed it from tools sends
	return json.RawMessage(`{"success":true}`), nil
}

// handlePermission answers permission replies. The fake never asks for a
// permission, so there is never one pending.
func handlePermission(s *Server, c *conn, req *request) (any, *RPCError) {
	var p struct {
		SessionID string `json:"sessionId"`
	}
	if err := decode(req, &p); err != nil {
		return nil, err
	}
	if s.loaded(p.SessionID) == nil {
		return nil, notLoaded(req.method, p.SessionID)
	}
	return json.RawMessage(`{"success":false}`), nil
}
