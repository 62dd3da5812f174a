// Package modelstub is a small, deterministic OpenAI-compatible model server
// for tests: the Copilot CLI, configured with a BYOK provider pointing at it,
// gets replies that let a test check both correctness and conversation
// history. It uses only the standard library.
//
// It serves POST /v1/chat/completions, streamed (SSE chat.completion.chunk
// events, then "data: [DONE]") or not, as the request asks, and GET
// /v1/models; paths work with or without the /v1 prefix. With N the number of
// user messages in the conversation:
//
//   - a conversation ending in a tool result gets
//     "reply #N: tool <name> returned: <result>";
//   - a last user message "call tool <name> with <arg>" gets a tool call of
//     <name> with {"<param>":"<arg>"} when the request offers that tool
//     (<param>: its first required parameter, else its first by name, else
//     "input"), and "reply #N: tool <name> is not offered" otherwise;
//   - anything else gets "reply #N: <last user text>".
//
// Context blocks the CLI wraps around a prompt, such as
// "<current_datetime>…</current_datetime>", are not part of <last user text>.
package modelstub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultModel is the model id advertised when Config.Model is empty.
const DefaultModel = "stub-model"

// Defaults for Config fields left zero.
const (
	DefaultChunkRunes   = 16
	DefaultMaxBodyBytes = 32 << 20
)

// Config configures a Server. The zero value works.
type Config struct {
	// Model is the model id listed by GET /v1/models and used in replies
	// to requests that name none. Empty means DefaultModel.
	Model string
	// ChunkRunes is how many runes of reply text go in one streamed chunk.
	// Zero means DefaultChunkRunes.
	ChunkRunes int
	// MaxBodyBytes bounds a request body. Zero means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Logger receives one line per request (method, path, outcome; never
	// message contents). Nil discards.
	Logger *slog.Logger
	// Trace, when set, receives every request's method, path and body, one
	// request per line: a debugging aid for seeing what a client sends.
	Trace io.Writer
}

// Stats counts what a Server has answered since it started.
type Stats struct {
	Completions int64 // chat-completions answered, streamed or not
	Streamed    int64 // of which streamed as SSE
	ToolCalls   int64 // replies that asked for a tool call
	ToolResults int64 // conversations that ended in a tool result
	Models      int64 // GET /v1/models and /v1/models/{id}
	Unknown     int64 // requests to paths the stub does not serve
	BadRequests int64 // unreadable or undecodable requests
}

// Server answers OpenAI chat-completions requests. It is an http.Handler and
// can also listen by itself (Start). Safe for concurrent use.
type Server struct {
	cfg Config
	log *slog.Logger

	completions, streamed, toolCalls, toolResults atomic.Int64
	models, unknown, badRequests                  atomic.Int64
	seq                                           atomic.Int64

	traceMu sync.Mutex

	mu       sync.Mutex
	httpSrv  *http.Server
	listener net.Listener
	served   chan struct{} // closed when the serve goroutine returns
	closed   bool
}

// New returns a Server for cfg.
func New(cfg Config) *Server {
	if cfg.Model == "" {
		cfg.Model = DefaultModel
	}
	if cfg.ChunkRunes <= 0 {
		cfg.ChunkRunes = DefaultChunkRunes
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Server{cfg: cfg, log: log}
}

// Stats returns the counters so far.
func (s *Server) Stats() Stats {
	return Stats{
		Completions: s.completions.Load(),
		Streamed:    s.streamed.Load(),
		ToolCalls:   s.toolCalls.Load(),
		ToolResults: s.toolResults.Load(),
		Models:      s.models.Load(),
		Unknown:     s.unknown.Load(),
		BadRequests: s.badRequests.Load(),
	}
}

// Start listens on addr (e.g. "127.0.0.1:0") and serves in the background
// until Close. It returns the base URL to configure as a provider's baseUrl,
// "http://host:port/v1".
func (s *Server) Start(addr string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.httpSrv != nil {
		return "", errors.New("modelstub: already started or closed")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("modelstub: listen %s: %w", addr, err)
	}
	s.listener = ln
	s.httpSrv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	s.served = make(chan struct{})
	go s.serve(s.httpSrv, ln, s.served)
	return "http://" + ln.Addr().String() + "/v1", nil
}

func (s *Server) serve(srv *http.Server, ln net.Listener, done chan<- struct{}) {
	defer close(done)
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		s.log.Error("modelstub: serve stopped", "err", err)
	}
}

// Close stops a Server started with Start, closing open connections, and
// waits for its serve loop to end. It is safe to call more than once.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	srv, done := s.httpSrv, s.served
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := srv.Shutdown(ctx)
	if err != nil {
		err = srv.Close()
	}
	<-done
	return err
}

// ServeHTTP routes a request: POST …/chat/completions, GET …/models[/id].
// Paths are matched with or without the /v1 prefix; anything else gets an
// OpenAI-style 404 and is logged.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimSuffix(r.URL.Path, "/")
	path = strings.TrimPrefix(path, "/v1")
	var body []byte
	if r.Body != nil {
		var err error
		body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
		if err != nil {
			s.badRequests.Add(1)
			s.log.Warn("modelstub: unreadable request body", "method", r.Method, "path", r.URL.Path, "err", err)
			writeError(w, http.StatusBadRequest, "invalid_request_error", "unreadable body: "+err.Error())
			return
		}
	}
	s.trace(r, body)
	switch {
	case path == "/chat/completions" && r.Method == http.MethodPost:
		s.chatCompletions(w, body)
	case path == "/models" && r.Method == http.MethodGet:
		s.models.Add(1)
		s.log.Debug("modelstub: models listed")
		writeJSON(w, http.StatusOK, map[string]any{
			"object": "list",
			"data":   []any{s.modelObject(s.cfg.Model)},
		})
	case strings.HasPrefix(path, "/models/") && r.Method == http.MethodGet:
		s.models.Add(1)
		writeJSON(w, http.StatusOK, s.modelObject(strings.TrimPrefix(path, "/models/")))
	default:
		s.unknown.Add(1)
		s.log.Warn("modelstub: unknown request", "method", r.Method, "path", r.URL.Path)
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("modelstub serves no %s %s", r.Method, r.URL.Path))
	}
}

func (s *Server) modelObject(id string) map[string]any {
	return map[string]any{"id": id, "object": "model", "created": 0, "owned_by": "modelstub"}
}

func (s *Server) chatCompletions(w http.ResponseWriter, body []byte) {
	var req chatRequest
	if err := json.Unmarshal(body, &req); err != nil {
		s.badRequests.Add(1)
		s.log.Warn("modelstub: undecodable chat request", "err", err)
		writeError(w, http.StatusBadRequest, "invalid_request_error", "invalid JSON: "+err.Error())
		return
	}
	if len(req.Messages) == 0 {
		s.badRequests.Add(1)
		writeError(w, http.StatusBadRequest, "invalid_request_error", "messages must not be empty")
		return
	}
	reply := decide(req)
	s.completions.Add(1)
	if reply.IsToolCall() {
		s.toolCalls.Add(1)
	}
	if req.Messages[len(req.Messages)-1].Role == "tool" {
		s.toolResults.Add(1)
	}
	model := req.Model
	if model == "" {
		model = s.cfg.Model
	}
	id := fmt.Sprintf("chatcmpl-stub-%d", s.seq.Add(1))
	s.log.Debug("modelstub: chat completion", "id", id, "stream", req.Stream,
		"messages", len(req.Messages), "tools", len(req.Tools), "tool_call", reply.IsToolCall())
	if req.Stream {
		s.streamed.Add(1)
		s.stream(w, id, model, reply, req.StreamOptions != nil && req.StreamOptions.IncludeUsage, estimateTokens(body))
		return
	}
	msg := &respMessage{Role: "assistant"}
	finish := "stop"
	if reply.IsToolCall() {
		msg.ToolCalls = []toolCall{newToolCall(reply, nil)}
		finish = "tool_calls"
	} else {
		text := reply.Text
		msg.Content = &text
	}
	u := usageFor(estimateTokens(body), reply)
	writeJSON(w, http.StatusOK, completion{
		ID: id, Object: "chat.completion", Created: time.Now().Unix(), Model: model,
		Choices: []completionChoice{{Index: 0, Message: msg, FinishReason: &finish}},
		Usage:   &u,
	})
}

// stream writes reply as server-sent chat.completion.chunk events ending
// with "data: [DONE]".
func (s *Server) stream(w http.ResponseWriter, id, model string, reply answer, withUsage bool, promptTokens int) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	created := time.Now().Unix()
	send := func(c completion) bool {
		c.ID, c.Object, c.Created, c.Model = id, "chat.completion.chunk", created, model
		b, err := json.Marshal(c)
		if err != nil {
			return false
		}
		if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
			return false
		}
		if flusher != nil {
			flusher.Flush()
		}
		return true
	}
	delta := func(d respMessage, finish *string) completion {
		return completion{Choices: []completionChoice{{Index: 0, Delta: &d, FinishReason: finish}}}
	}
	empty := ""
	if !send(delta(respMessage{Role: "assistant", Content: &empty}, nil)) {
		return
	}
	finish := "stop"
	if reply.IsToolCall() {
		finish = "tool_calls"
		zero := 0
		head := newToolCall(reply, &zero)
		head.Function.Arguments = ""
		if !send(delta(respMessage{ToolCalls: []toolCall{head}}, nil)) {
			return
		}
		for _, part := range chunks(reply.ToolArguments, s.cfg.ChunkRunes) {
			var tc toolCall
			tc.Index = &zero
			tc.Function.Arguments = part
			if !send(delta(respMessage{ToolCalls: []toolCall{tc}}, nil)) {
				return
			}
		}
	} else {
		for _, part := range chunks(reply.Text, s.cfg.ChunkRunes) {
			if !send(delta(respMessage{Content: &part}, nil)) {
				return
			}
		}
	}
	if !send(delta(respMessage{}, &finish)) {
		return
	}
	if withUsage {
		u := usageFor(promptTokens, reply)
		if !send(completion{Choices: []completionChoice{}, Usage: &u}) {
			return
		}
	}
	if _, err := io.WriteString(w, "data: [DONE]\n\n"); err == nil && flusher != nil {
		flusher.Flush()
	}
}

func newToolCall(r answer, index *int) toolCall {
	var tc toolCall
	tc.Index = index
	tc.ID = r.ToolCallID
	tc.Type = "function"
	tc.Function.Name = r.ToolName
	tc.Function.Arguments = r.ToolArguments
	return tc
}

// chunks splits s into pieces of at most n runes; an empty s gives none.
func chunks(s string, n int) []string {
	var out []string
	r := []rune(s)
	for len(r) > 0 {
		k := min(n, len(r))
		out = append(out, string(r[:k]))
		r = r[k:]
	}
	return out
}

// estimateTokens is a rough token count (4 bytes a token): enough for the
// usage fields that clients like to see.
func estimateTokens(body []byte) int { return len(body)/4 + 1 }

func usageFor(prompt int, r answer) usage {
	completion := len(r.Text)/4 + len(r.ToolArguments)/4 + 1
	return usage{PromptTokens: prompt, CompletionTokens: completion, TotalTokens: prompt + completion}
}

func (s *Server) trace(r *http.Request, body []byte) {
	if s.cfg.Trace == nil {
		return
	}
	s.traceMu.Lock()
	defer s.traceMu.Unlock()
	fmt.Fprintf(s.cfg.Trace, "%s %s %s\n", r.Method, r.URL.Path, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func writeError(w http.ResponseWriter, status int, typ, msg string) {
	var e apiError
	e.Error.Message, e.Error.Type = msg, typ
	writeJSON(w, status, e)
}
