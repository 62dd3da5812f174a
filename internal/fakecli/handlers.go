package fakecli

import (
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/rpcproxy/rpcproxy/internal/frame"
)

// request is one client request being handled.
type request struct {
	id     []byte // raw JSON id, echoed in the response
	method string
	params json.RawMessage
	// after, when set by a handler, runs once the response is queued:
	// what a request starts (a turn, events) must follow its response.
	after func()
}

// handler answers a request on c with a result (any JSON-encodable value,
// or raw JSON as []byte) or an error. Handlers run on c's reader goroutine
// and must not block on anything but queueing to a connection.
type handler func(s *Server, c *conn, req *request) (any, *RPCError)

// handlers is the method table. Anything else is MethodNotFound.
var handlers map[string]handler

func init() {
	handlers = map[string]handler{
		"connect":                             handleConnect,
		"ping":                                handlePing,
		"status.get":                          handleStatus,
		"auth.getStatus":                      handleAuthStatus,
		"models.list":                         handleModels,
		"tools.list":                          handleTools,
		"session.create":                      handleCreate,
		"session.resume":                      handleResume,
		"session.send":                        handleSend,
		"session.getMessages":                 handleGetMessages,
		"session.list":                        handleList,
		"session.getLastId":                   handleGetLastID,
		"session.delete":                      handleDelete,
		"session.detach":                      handleDetach,
		"sessionFs.setProvider":               handleSetFsProvider,
		"llmInference.setProvider":            handleSetLLMProvider,
		"session.tools.handlePendingToolCall": handleToolResult,
		"session.permissions.handlePendingPermissionRequest": handlePermission,
	}
}

// dispatch answers one request and runs what it started.
func (s *Server) dispatch(c *conn, req *request) {
	var (
		result any
		rerr   *RPCError
	)
	switch h, ok := handlers[req.method]; {
	case !c.authed.Load() && req.method != "connect":
		rerr = &RPCError{Code: CodeAuthRequired, Message: msgAuthRequired}
	case !ok:
		rerr = &RPCError{Code: CodeMethodNotFound, Message: "Unhandled method " + req.method}
	default:
		result, rerr = h(s, c, req)
	}
	var b *frame.Buffer
	if rerr != nil {
		b = frame.Get(len(req.id) + len(rerr.Message) + 64)
		b.B = appendError(b.B[:0], req.id, rerr)
	} else {
		var raw []byte
		switch r := result.(type) {
		case []byte:
			raw = r
		case json.RawMessage:
			raw = r
		default:
			raw = mustJSON(result)
		}
		b = frame.Get(len(req.id) + len(raw) + 32)
		b.B = appendResult(b.B[:0], req.id, raw)
	}
	s.requests.Add(1)
	if c.send(b) && req.after != nil {
		req.after()
	}
}

// decode unmarshals params into v; absent params decode as {}.
func decode(req *request, v any) *RPCError {
	if len(req.params) == 0 || string(req.params) == "null" {
		return nil
	}
	if err := json.Unmarshal(req.params, v); err != nil {
		return invalidParams(req.method, err)
	}
	return nil
}

func handleConnect(s *Server, c *conn, req *request) (any, *RPCError) {
	var p struct {
		Token              string   `json:"token"`
		SupportedTaskKinds []string `json:"supportedTaskKinds"`
	}
	if err := decode(req, &p); err != nil {
		return nil, err
	}
	switch {
	case s.cfg.Token != "" && p.Token != s.cfg.Token:
		return nil, &RPCError{Code: CodeAuthFailed, Message: msgAuthFailed}
	case s.cfg.Token == "" && p.Token != "":
		return nil, &RPCError{Code: CodeAuthNotConfigured, Message: msgAuthNotConfigured}
	}
	c.authed.Store(true)
	kinds := []string{"agent", "shell"}
	if slices.Contains(p.SupportedTaskKinds, "client") {
		kinds = append(kinds, "client")
	}
	return struct {
		OK              bool     `json:"ok"`
		ProtocolVersion int      `json:"protocolVersion"`
		Version         string   `json:"version"`
		TaskKinds       []string `json:"taskKinds"`
	}{true, s.cfg.ProtocolVersion, s.cfg.Version, kinds}, nil
}

func handlePing(s *Server, c *conn, req *request) (any, *RPCError) {
	var p struct {
		Message string `json:"message"`
	}
	if err := decode(req, &p); err != nil {
		return nil, err
	}
	msg := "pong"
	if p.Message != "" {
		msg = "pong: " + p.Message
	}
	// The CLI sends the timestamp as an ISO string, not epoch milliseconds.
	return struct {
		Message         string `json:"message"`
		Timestamp       string `json:"timestamp"`
		ProtocolVersion int    `json:"protocolVersion"`
	}{msg, time.Now().UTC().Format(time.RFC3339Nano), s.cfg.ProtocolVersion}, nil
}

func handleStatus(s *Server, c *conn, req *request) (any, *RPCError) {
	return struct {
		Version         string `json:"version"`
		ProtocolVersion int    `json:"protocolVersion"`
		Server          string `json:"server"`
	}{s.cfg.Version, s.cfg.ProtocolVersion, s.cfg.Name}, nil
}

func handleAuthStatus(s *Server, c *conn, req *request) (any, *RPCError) {
	return map[string]any{"isAuthenticated": true, "authType": "api-key", "statusMessage": "fakecli " + s.cfg.Name}, nil
}

type modelInfo struct {
	ID           string         `json:"id"`
	Name         string         `json:"name"`
	Capabilities map[string]any `json:"capabilities"`
}

var models = []modelInfo{
	{"fake-small", "Fake Small", map[string]any{"supports": map[string]any{}, "limits": map[string]any{"max_context_window_tokens": 128000}}},
	{"fake-large", "Fake Large", map[string]any{"supports": map[string]any{}, "limits": map[string]any{"max_context_window_tokens": 200000}}},
}

func handleModels(s *Server, c *conn, req *request) (any, *RPCError) {
	return struct {
		Models []modelInfo `json:"models"`
	}{models}, nil
}

func handleTools(s *Server, c *conn, req *request) (any, *RPCError) {
	return json.RawMessage(`{"tools":[]}`), nil
}

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

// errFsProviderGone is what the CLI answers once the connection that
// hosts session storage has left.
var errFsProviderGone = errors.New("session filesystem permission path authority is disconnected")

// fsProviderGone reports a sessionFs provider whose connection closed.
func (s *Server) fsProviderGone() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fsProvider != nil && s.fsProvider.closed()
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

func handleSetFsProvider(s *Server, c *conn, req *request) (any, *RPCError) {
	return s.claimProvider(c, req.method, &s.fsProvider, "session filesystem provider", "sessionFs.setProvider")
}

func handleSetLLMProvider(s *Server, c *conn, req *request) (any, *RPCError) {
	return s.claimProvider(c, req.method, &s.llmProvider, "LLM inference provider", "llmInference.setProvider")
}

// claimProvider makes c the owner of a process-wide registration. As in
// the CLI, a registration is refused while any session is loaded, and an
// owner stays the owner even after its connection has closed.
func (s *Server) claimProvider(c *conn, method string, owner **conn, what, call string) (any, *RPCError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.sessions) > 0 {
		return nil, failed(method, "Cannot set %s while sessions are active. Call %s before creating any sessions.", what, call)
	}
	if *owner != nil && *owner != c {
		return nil, failed(method, "Another client is already the %s.", what)
	}
	*owner = c
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
