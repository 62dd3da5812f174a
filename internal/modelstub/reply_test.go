package modelstub

import (
	"encoding/json"
	"testing"
)

func msg(role, content string) chatMessage {
	b, _ := json.Marshal(content)
	return chatMessage{Role: role, Content: b}
}

func tool(name, schema string) chatTool {
	var t chatTool
	t.Type = "function"
	t.Function.Name = name
	t.Function.Parameters = json.RawMessage(schema)
	return t
}

func TestDecide(t *testing.T) {
	const datetime = "<current_datetime>2026-11-23T19:04:55.101+00:00</current_datetime>\n\n"
	lookup := tool("lookup", `{"type":"object","properties":{"zeta":{"type":"string"},"key":{"type":"string"}},"required":["key"]}`)
	noRequired := tool("noreq", `{"type":"object","properties":{"zeta":{},"alpha":{}}}`)
	noSchema := tool("bare", ``)
	assistantCall := chatMessage{Role: "assistant", Content: json.RawMessage("null"), ToolCalls: []toolCall{{ID: "call_9", Type: "function"}}}
	assistantCall.ToolCalls[0].Function.Name = "lookup"
	toolResult := msg("tool", "VALUE-42")
	toolResult.ToolCallID = "call_9"

	tests := []struct {
		name string
		req  chatRequest
		want answer
	}{
		{
			name: "first turn",
			req:  chatRequest{Messages: []chatMessage{msg("system", "sys"), msg("user", datetime+"hello world")}},
			want: answer{Text: "reply #1: hello world"},
		},
		{
			name: "history counts user messages",
			req: chatRequest{Messages: []chatMessage{
				msg("system", "sys"), msg("user", "a"), msg("assistant", "reply #1: a"),
				msg("user", "b"), msg("assistant", "reply #2: b"), msg("user", datetime+"third"),
			}},
			want: answer{Text: "reply #3: third"},
		},
		{
			name: "content as parts",
			req: chatRequest{Messages: []chatMessage{{Role: "user",
				Content: json.RawMessage(`[{"type":"text","text":"part one, "},{"type":"image_url","image_url":{}},{"type":"text","text":"part two"}]`)}}},
			want: answer{Text: "reply #1: part one, part two"},
		},
		{
			name: "tool call uses first required parameter",
			req:  chatRequest{Messages: []chatMessage{msg("user", datetime+"call tool lookup with the key")}, Tools: []chatTool{noSchema, lookup}},
			want: answer{ToolCallID: "call_1_1", ToolName: "lookup", ToolArguments: `{"key":"the key"}`},
		},
		{
			name: "tool call without required takes first property by name",
			req:  chatRequest{Messages: []chatMessage{msg("user", "Call Tool noreq with x")}, Tools: []chatTool{noRequired}},
			want: answer{ToolCallID: "call_1_1", ToolName: "noreq", ToolArguments: `{"alpha":"x"}`},
		},
		{
			name: "tool call without schema uses input",
			req:  chatRequest{Messages: []chatMessage{msg("user", "call tool bare with y")}, Tools: []chatTool{noSchema}},
			want: answer{ToolCallID: "call_1_1", ToolName: "bare", ToolArguments: `{"input":"y"}`},
		},
		{
			name: "tool not offered",
			req:  chatRequest{Messages: []chatMessage{msg("user", "call tool missing with z")}, Tools: []chatTool{lookup}},
			want: answer{Text: "reply #1: tool missing is not offered"},
		},
		{
			name: "malformed tool command is plain text",
			req:  chatRequest{Messages: []chatMessage{msg("user", "call tool lookup")}, Tools: []chatTool{lookup}},
			want: answer{Text: "reply #1: call tool lookup"},
		},
		{
			name: "tool result",
			req: chatRequest{Messages: []chatMessage{
				msg("system", "sys"), msg("user", "call tool lookup with k"), assistantCall, toolResult,
			}, Tools: []chatTool{lookup}},
			want: answer{Text: "reply #1: tool lookup returned: VALUE-42"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := decide(tt.req); got != tt.want {
				t.Errorf("decide = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestPromptText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"  padded \n", "padded"},
		{"<current_datetime>2026</current_datetime>\n\nhello", "hello"},
		{"<a>\nmulti\nline\n</a>\n<b x=\"1\">y</b>\nbody\n<reminder>\nr\n</reminder>", "body"},
		{"text with <b>inline</b> tags", "text with <b>inline</b> tags"},
		{"<unclosed>\nhello", "<unclosed>\nhello"},
		{"line one\nline two", "line one\nline two"},
		{"<only>x</only>", ""},
	}
	for _, tt := range tests {
		if got := promptText(tt.in); got != tt.want {
			t.Errorf("promptText(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
