package fakecli

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Prompt prefixes that script a turn.
const (
	// AskPrefix makes the turn ask the client the rest of the prompt with a
	// userInput.request and echo the answer.
	AskPrefix = "ask:"
	// ToolPrefix makes the turn call the session's first registered
	// external tool with the rest of the prompt and echo its result.
	ToolPrefix = "tool:"
)

// Answer returns the assistant.message content the fake gives for turn n
// (counting from 1) of a session: "echo from <name>: <prompt> (turn <n>)".
// ask: and tool: turns append " [answer: …]" or " [tool <name>: …]".
func Answer(name, prompt string, n int) string {
	return fmt.Sprintf("echo from %s: %s (turn %d)", name, prompt, n)
}

// maxQueuedTurns bounds the messages waiting for their turn in one session.
const maxQueuedTurns = 256

// playTurns is a session's turn worker: it plays queued turns in order
// until the queue is empty or the session is unloaded.
func (s *Server) playTurns(ss *session) {
	defer s.wg.Done()
	for {
		s.mu.Lock()
		if len(ss.queue) == 0 || ss.unloaded() || s.closing() {
			ss.playing = false
			s.mu.Unlock()
			return
		}
		t := ss.queue[0]
		ss.queue = ss.queue[1:]
		s.mu.Unlock()
		s.activeTurns.Add(1)
		s.runTurn(ss, t.messageID, t.prompt)
		s.activeTurns.Add(-1)
	}
}

// runTurn plays one turn of a session: the user message, the scripted
// exchange if any, the deltas and the answer, then the idle events. It
// returns early when the session is unloaded or the server closes.
func (s *Server) runTurn(ss *session, msgID, prompt string) {
	n := s.store.Turns(ss.id) + 1
	turnID := strconv.Itoa(n - 1)
	turnData := mustJSON(struct {
		TurnID string `json:"turnId"`
	}{turnID})
	if !s.emit(ss, "user.message", mustJSON(struct {
		Content   string `json:"content"`
		MessageID string `json:"messageId"`
	}{prompt, msgID}), true) {
		return
	}
	if !s.emit(ss, "assistant.turn_start", turnData, true) {
		return
	}

	content := Answer(s.cfg.Name, prompt, n)
	switch {
	case strings.HasPrefix(prompt, AskPrefix):
		answer, ok := s.askUser(ss, strings.TrimSpace(prompt[len(AskPrefix):]))
		if !ok {
			return
		}
		content += " [answer: " + answer + "]"
	case strings.HasPrefix(prompt, ToolPrefix):
		name, result, ok := s.callTool(ss, strings.TrimSpace(prompt[len(ToolPrefix):]))
		if !ok {
			return
		}
		if name == "" {
			content += " [no tools]"
		} else {
			content += " [tool " + name + ": " + result + "]"
		}
	}

	replyID := newUUID()
	var scratch []byte
	for i := range max(0, s.cfg.EventsPerTurn-fixedTurnEvents) {
		scratch = append(scratch[:0], `{"messageId":"`...)
		scratch = append(scratch, replyID...)
		scratch = append(scratch, `","deltaContent":`...)
		scratch = append(scratch, s.fillers[i%len(s.fillers)]...)
		scratch = append(scratch, '}')
		if !s.emit(ss, "assistant.message_delta", scratch, false) {
			return
		}
	}
	if !s.emit(ss, "assistant.message", mustJSON(struct {
		MessageID            string   `json:"messageId"`
		OriginatingMessageID string   `json:"originatingMessageId"`
		Content              string   `json:"content"`
		ToolRequests         []string `json:"toolRequests"`
	}{replyID, msgID, content, []string{}}), true) {
		return
	}
	if !s.emit(ss, "assistant.turn_end", turnData, true) {
		return
	}
	start, modified, ok := s.store.endTurn(ss.id, time.Now(), prompt)
	if !ok {
		return // deleted meanwhile
	}
	s.turns.Add(1)
	s.lifecycle("session.updated", ss.id, start, modified)
	if s.emit(ss, "assistant.idle", []byte(`{}`), false) {
		s.emit(ss, "session.idle", []byte(`{"mode":"interactive"}`), false)
	}
}

// askUser asks the question of the connections attached to the session
// that registered requestUserInput (all attached ones if none did), each
// with a userInput.request; the first answer wins, as with the CLI. It
// reports false when the session or server ended meanwhile.
func (s *Server) askUser(ss *session, question string) (string, bool) {
	reqID := newUUID()
	if !s.emit(ss, "user_input.requested", mustJSON(struct {
		RequestID     string `json:"requestId"`
		Question      string `json:"question"`
		AllowFreeform bool   `json:"allowFreeform"`
	}{reqID, question, true}), false) {
		return "", false
	}

	s.mu.Lock()
	var targets []*conn
	for _, c := range ss.order {
		if ss.attached[c].userInput {
			targets = append(targets, c)
		}
	}
	if len(targets) == 0 {
		targets = ss.order
	}
	s.mu.Unlock()

	params := mustJSON(struct {
		SessionID     string `json:"sessionId"`
		Question      string `json:"question"`
		AllowFreeform bool   `json:"allowFreeform"`
	}{ss.id, question, true})
	ch := make(chan reply, len(targets))
	type call struct {
		c  *conn
		id uint64
	}
	calls := make([]call, 0, len(targets))
	for _, c := range targets {
		if id, ok := c.call("userInput.request", params, ch); ok {
			calls = append(calls, call{c, id})
		}
	}
	defer func() {
		for _, cl := range calls {
			cl.c.cancelCall(cl.id)
		}
	}()

	answer := "(nobody to ask)"
	timer := time.NewTimer(s.cfg.ReplyTimeout)
	defer timer.Stop()
wait:
	for waiting := len(calls); waiting > 0; waiting-- {
		select {
		case r := <-ch:
			if r.Error != nil {
				answer = "(error: " + r.Error.Message + ")"
				continue
			}
			var res struct {
				Answer string `json:"answer"`
			}
			if err := json.Unmarshal(r.Result, &res); err != nil {
				answer = "(bad answer)"
				continue
			}
			answer = res.Answer
			break wait
		case <-timer.C:
			answer = "(no answer)"
			break wait
		case <-ss.done:
			return "", false
		case <-s.done:
			return "", false
		}
	}
	ok := s.emit(ss, "user_input.completed", mustJSON(struct {
		RequestID   string `json:"requestId"`
		Answer      string `json:"answer"`
		WasFreeform bool   `json:"wasFreeform"`
	}{reqID, answer, true}), false)
	return answer, ok
}

// callTool calls the first external tool registered for the session with
// an external_tool.requested event and waits for its result from
// session.tools.handlePendingToolCall. It returns "" as the name when no
// tool is registered, and false when the session or server ended meanwhile.
func (s *Server) callTool(ss *session, input string) (name, result string, ok bool) {
	reqID := newUUID()
	ch := make(chan reply, 1)
	s.mu.Lock()
	for _, c := range ss.order {
		if a := ss.attached[c]; len(a.tools) > 0 {
			name = a.tools[0]
			break
		}
	}
	if name != "" {
		ss.tools[reqID] = ch
	}
	s.mu.Unlock()
	if name == "" {
		return "", "", true
	}
	s.pendingCalls.Add(1)
	defer func() {
		s.mu.Lock()
		delete(ss.tools, reqID)
		s.mu.Unlock()
		s.pendingCalls.Add(-1)
	}()

	if !s.emit(ss, "external_tool.requested", mustJSON(struct {
		RequestID  string            `json:"requestId"`
		SessionID  string            `json:"sessionId"`
		ToolCallID string            `json:"toolCallId"`
		ToolName   string            `json:"toolName"`
		Arguments  map[string]string `json:"arguments"`
	}{reqID, ss.id, "call_" + reqID[:8], name, map[string]string{"input": input}}), true) {
		return name, "", false
	}
	timer := time.NewTimer(s.cfg.ReplyTimeout)
	defer timer.Stop()
	select {
	case r := <-ch:
		result = toolText(r)
	case <-timer.C:
		result = "(no result)"
	case <-ss.done:
		return name, "", false
	case <-s.done:
		return name, "", false
	}
	ok = s.emit(ss, "external_tool.completed", mustJSON(struct {
		RequestID string `json:"requestId"`
	}{reqID}), true)
	return name, result, ok
}

// toolText renders a tool result the way the model would see it: a string
// as is, a result object by its textResultForLlm, anything else as JSON.
func toolText(r reply) string {
	if r.Error != nil {
		return "(error: " + r.Error.Message + ")"
	}
	var str string
	if err := json.Unmarshal(r.Result, &str); err == nil {
		return str
	}
	var obj struct {
		TextResultForLlm *string `json:"textResultForLlm"`
	}
	if err := json.Unmarshal(r.Result, &obj); err == nil && obj.TextResultForLlm != nil {
		return *obj.TextResultForLlm
	}
	return string(r.Result)
}
