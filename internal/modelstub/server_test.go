package modelstub

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func newTestServer(t *testing.T) (*Server, *httptest.Server) {
	t.Helper()
	stub := New(Config{ChunkRunes: 4})
	ts := httptest.NewServer(stub)
	t.Cleanup(ts.Close)
	return stub, ts
}

func post(t *testing.T, url, body string) *http.Response {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

const lookupTool = `{"type":"function","function":{"name":"lookup","parameters":{"type":"object","properties":{"key":{"type":"string"}},"required":["key"]}}}`

func TestCompletionNotStreamed(t *testing.T) {
	stub, ts := newTestServer(t)
	resp := post(t, ts.URL+"/v1/chat/completions",
		`{"model":"m1","messages":[{"role":"system","content":"s"},{"role":"user","content":"hi there"}]}`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("content type %q", ct)
	}
	var c struct {
		Object  string `json:"object"`
		Model   string `json:"model"`
		Choices []struct {
			Message struct {
				Role    string  `json:"role"`
				Content *string `json:"content"`
			} `json:"message"`
			FinishReason string `json:"finish_reason"`
		} `json:"choices"`
		Usage *usage `json:"usage"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&c); err != nil {
		t.Fatal(err)
	}
	if c.Object != "chat.completion" || c.Model != "m1" || len(c.Choices) != 1 {
		t.Fatalf("unexpected completion %+v", c)
	}
	ch := c.Choices[0]
	if ch.Message.Role != "assistant" || ch.Message.Content == nil || *ch.Message.Content != "reply #1: hi there" || ch.FinishReason != "stop" {
		t.Errorf("unexpected choice %+v", ch)
	}
	if c.Usage == nil || c.Usage.TotalTokens != c.Usage.PromptTokens+c.Usage.CompletionTokens {
		t.Errorf("bad usage %+v", c.Usage)
	}
	if s := stub.Stats(); s.Completions != 1 || s.Streamed != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestToolCallNotStreamed(t *testing.T) {
	stub, ts := newTestServer(t)
	resp := post(t, ts.URL+"/v1/chat/completions",
		`{"messages":[{"role":"user","content":"call tool lookup with abc"}],"tools":[`+lookupTool+`]}`)
	var c struct {
		Model   string `json:"model"`
		Choices []struct {
			Message struct {
				Content   json.RawMessage `json:"content"`
				ToolCalls []toolCall      `json:"tool_calls"`
			} `json:"message"`
			FinishReason string `json:"finish_reason"`
		} `json:"choices"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&c); err != nil {
		t.Fatal(err)
	}
	if c.Model != DefaultModel {
		t.Errorf("model %q, want default %q", c.Model, DefaultModel)
	}
	m := c.Choices[0].Message
	if c.Choices[0].FinishReason != "tool_calls" || len(m.ToolCalls) != 1 {
		t.Fatalf("unexpected choice %+v", c.Choices[0])
	}
	tc := m.ToolCalls[0]
	if tc.ID == "" || tc.Type != "function" || tc.Function.Name != "lookup" || tc.Function.Arguments != `{"key":"abc"}` || tc.Index != nil {
		t.Errorf("unexpected tool call %+v", tc)
	}
	if s := stub.Stats(); s.ToolCalls != 1 {
		t.Errorf("stats %+v", s)
	}
}

// sseChunks reads an SSE stream into its decoded chunks and reports whether
// it ended with [DONE].
func sseChunks(t *testing.T, r io.Reader) ([]completion, bool) {
	t.Helper()
	var out []completion
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			t.Fatalf("unexpected SSE line %q", line)
		}
		if data == "[DONE]" {
			if sc.Scan() && sc.Text() != "" {
				t.Fatalf("data after [DONE]: %q", sc.Text())
			}
			return out, true
		}
		var c completion
		if err := json.Unmarshal([]byte(data), &c); err != nil {
			t.Fatalf("chunk %q: %v", data, err)
		}
		if c.Object != "chat.completion.chunk" {
			t.Fatalf("chunk object %q", c.Object)
		}
		out = append(out, c)
	}
	return out, false
}

func TestCompletionStreamed(t *testing.T) {
	stub, ts := newTestServer(t)
	resp := post(t, ts.URL+"/v1/chat/completions",
		`{"stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"one"},{"role":"assistant","content":"reply #1: one"},{"role":"user","content":"stream me please"}]}`)
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	chunks, done := sseChunks(t, resp.Body)
	if !done {
		t.Fatal("stream did not end with [DONE]")
	}
	var text strings.Builder
	var finish string
	var sawUsage, sawRole bool
	ids := map[string]bool{}
	for _, c := range chunks {
		ids[c.ID] = true
		if c.Usage != nil {
			sawUsage = true
			if len(c.Choices) != 0 {
				t.Errorf("usage chunk has choices")
			}
			continue
		}
		d := c.Choices[0].Delta
		if d.Role == "assistant" {
			sawRole = true
		}
		if d.Content != nil {
			text.WriteString(*d.Content)
		}
		if c.Choices[0].FinishReason != nil {
			finish = *c.Choices[0].FinishReason
		}
	}
	if got, want := text.String(), "reply #2: stream me please"; got != want {
		t.Errorf("streamed text %q, want %q", got, want)
	}
	if finish != "stop" || !sawUsage || !sawRole || len(ids) != 1 {
		t.Errorf("finish=%q usage=%v role=%v ids=%v", finish, sawUsage, sawRole, ids)
	}
	if len(chunks) < 5 {
		t.Errorf("expected the text in several chunks, got %d chunks", len(chunks))
	}
	if s := stub.Stats(); s.Completions != 1 || s.Streamed != 1 {
		t.Errorf("stats %+v", s)
	}
}

func TestToolCallStreamed(t *testing.T) {
	_, ts := newTestServer(t)
	resp := post(t, ts.URL+"/v1/chat/completions",
		`{"stream":true,"messages":[{"role":"user","content":"call tool lookup with a longer argument"}],"tools":[`+lookupTool+`]}`)
	chunks, done := sseChunks(t, resp.Body)
	if !done {
		t.Fatal("stream did not end with [DONE]")
	}
	var name, id, finish string
	var args strings.Builder
	for _, c := range chunks {
		if c.Usage != nil {
			t.Fatal("usage chunk without include_usage")
		}
		for _, tc := range c.Choices[0].Delta.ToolCalls {
			if tc.Index == nil || *tc.Index != 0 {
				t.Fatalf("tool call delta without index 0: %+v", tc)
			}
			if tc.Function.Name != "" {
				name, id = tc.Function.Name, tc.ID
			}
			args.WriteString(tc.Function.Arguments)
		}
		if c.Choices[0].FinishReason != nil {
			finish = *c.Choices[0].FinishReason
		}
	}
	if name != "lookup" || id == "" || finish != "tool_calls" || args.String() != `{"key":"a longer argument"}` {
		t.Errorf("name=%q id=%q finish=%q args=%q", name, id, finish, args.String())
	}
}

func TestToolResultConversation(t *testing.T) {
	stub, ts := newTestServer(t)
	resp := post(t, ts.URL+"/chat/completions", `{"messages":[
		{"role":"user","content":"call tool lookup with k"},
		{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"lookup","arguments":"{\"key\":\"k\"}"}}]},
		{"role":"tool","tool_call_id":"c1","content":"RESULT-K"}],"tools":[`+lookupTool+`]}`)
	var c completion
	if err := json.NewDecoder(resp.Body).Decode(&c); err != nil {
		t.Fatal(err)
	}
	if got := *c.Choices[0].Message.Content; got != "reply #1: tool lookup returned: RESULT-K" {
		t.Errorf("reply %q", got)
	}
	if s := stub.Stats(); s.ToolResults != 1 || s.ToolCalls != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestModelsAndUnknownPaths(t *testing.T) {
	stub, ts := newTestServer(t)
	resp, err := http.Get(ts.URL + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct {
		Object string `json:"object"`
		Data   []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	if list.Object != "list" || len(list.Data) != 1 || list.Data[0].ID != DefaultModel {
		t.Errorf("models %+v", list)
	}
	resp2, err := http.Get(ts.URL + "/v1/models/other")
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != http.StatusOK {
		t.Errorf("GET model status %d", resp2.StatusCode)
	}

	for _, path := range []string{"/v1/responses", "/v1/embeddings", "/"} {
		r := post(t, ts.URL+path, `{}`)
		var e apiError
		if err := json.NewDecoder(r.Body).Decode(&e); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if r.StatusCode != http.StatusNotFound || e.Error.Message == "" {
			t.Errorf("%s: status %d error %+v", path, r.StatusCode, e)
		}
	}
	if s := stub.Stats(); s.Models != 2 || s.Unknown != 3 {
		t.Errorf("stats %+v", s)
	}
}

func TestBadRequests(t *testing.T) {
	stub, ts := newTestServer(t)
	for _, body := range []string{`{not json`, `{"messages":[]}`} {
		if r := post(t, ts.URL+"/v1/chat/completions", body); r.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: status %d", body, r.StatusCode)
		}
	}
	if s := stub.Stats(); s.BadRequests != 2 || s.Completions != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestBodyLimit(t *testing.T) {
	stub := New(Config{MaxBodyBytes: 64})
	ts := httptest.NewServer(stub)
	defer ts.Close()
	r := post(t, ts.URL+"/v1/chat/completions", `{"messages":[{"role":"user","content":"`+strings.Repeat("x", 200)+`"}]}`)
	if r.StatusCode != http.StatusBadRequest {
		t.Errorf("status %d", r.StatusCode)
	}
}

func TestStartClose(t *testing.T) {
	var trace strings.Builder
	stub := New(Config{Trace: &trace})
	url, err := stub.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(url, "http://127.0.0.1:") || !strings.HasSuffix(url, "/v1") {
		t.Fatalf("url %q", url)
	}
	if _, err := stub.Start("127.0.0.1:0"); err == nil {
		t.Error("second Start succeeded")
	}
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Post(url+"/chat/completions", "application/json",
		strings.NewReader(`{"messages":[{"role":"user","content":"over tcp"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "reply #1: over tcp") {
		t.Errorf("body %s", body)
	}
	if err := stub.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := stub.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := client.Get(url + "/models"); err == nil {
		t.Error("server still answering after Close")
	}
	if !strings.Contains(trace.String(), "POST /v1/chat/completions") {
		t.Errorf("trace %q", trace.String())
	}
}
