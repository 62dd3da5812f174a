package modelstub

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// answer is what the stub answers to one chat-completions request: either
// Text, or a call of the tool ToolName with the JSON object ToolArguments.
type answer struct {
	Text          string
	ToolCallID    string
	ToolName      string
	ToolArguments string
}

// IsToolCall reports whether the answer asks the client to run a tool.
func (r answer) IsToolCall() bool { return r.ToolName != "" }

// toolCommand is the prefix of a user message that asks for a tool call:
// "call tool <name> with <argument>".
const toolCommand = "call tool "

// decide computes the deterministic answer to a conversation (the package
// doc states the rules for users). The rules, which tests rely on:
//
//   - N is the number of user messages in the conversation, so a reply shows
//     how much history the client sent.
//   - A conversation ending in a tool result gets
//     "reply #N: tool <name> returned: <result>".
//   - A last user message "call tool <name> with <arg>", when the request
//     offers that tool, gets a call of it with {"<param>":"<arg>"}, <param>
//     being the tool's first required parameter (else its first parameter in
//     name order, else "input").
//   - Any other conversation gets "reply #N: <last user text>".
func decide(req chatRequest) answer {
	users := 0
	lastUser := ""
	for _, m := range req.Messages {
		if m.Role == "user" {
			users++
			lastUser = m.text()
		}
	}
	if n := len(req.Messages); n > 0 && req.Messages[n-1].Role == "tool" {
		last := req.Messages[n-1]
		return answer{Text: fmt.Sprintf("reply #%d: tool %s returned: %s",
			users, toolNameFor(req.Messages, last.ToolCallID, last.Name), last.text())}
	}
	prompt := promptText(lastUser)
	if name, arg, ok := parseToolCommand(prompt); ok {
		tool, offered := findTool(req.Tools, name)
		if !offered {
			return answer{Text: fmt.Sprintf("reply #%d: tool %s is not offered", users, name)}
		}
		args, _ := json.Marshal(map[string]string{toolParameter(tool.Function.Parameters): arg})
		return answer{
			ToolCallID:    fmt.Sprintf("call_%d_%d", users, len(req.Messages)),
			ToolName:      name,
			ToolArguments: string(args),
		}
	}
	return answer{Text: fmt.Sprintf("reply #%d: %s", users, prompt)}
}

// promptText recovers what the application sent from a user message as the
// CLI forwards it: the CLI may prepend context blocks such as
// "<current_datetime>…</current_datetime>" and may append reminder blocks.
// Leading and trailing XML-style blocks on their own lines are dropped and the
// remaining text trimmed.
func promptText(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	// Drop whole <tag>…</tag> blocks at either end.
	for {
		start, end, ok := blockAt(lines, true)
		if !ok {
			break
		}
		lines = append(lines[:start], lines[end+1:]...)
	}
	for {
		start, end, ok := blockAt(lines, false)
		if !ok {
			break
		}
		lines = append(lines[:start], lines[end+1:]...)
	}
	return strings.TrimSpace(strings.Join(lines, "\n"))
}

// blockAt finds an XML-style block (opening tag line through matching closing
// tag) at the first (front) or last non-blank line.
func blockAt(lines []string, front bool) (start, end int, ok bool) {
	first, last := 0, len(lines)-1
	for first <= last && strings.TrimSpace(lines[first]) == "" {
		first++
	}
	for last >= first && strings.TrimSpace(lines[last]) == "" {
		last--
	}
	if first > last {
		return 0, 0, false
	}
	if front {
		tag, ok := openingTag(strings.TrimSpace(lines[first]))
		if !ok {
			return 0, 0, false
		}
		for i := first; i <= last; i++ {
			if strings.Contains(lines[i], "</"+tag+">") {
				return first, i, true
			}
		}
		return 0, 0, false
	}
	closing := strings.TrimSpace(lines[last])
	i := strings.LastIndex(closing, "</")
	if i < 0 || !strings.HasSuffix(closing, ">") {
		return 0, 0, false
	}
	tag := closing[i+2 : len(closing)-1]
	if !validTag(tag) {
		return 0, 0, false
	}
	for j := last; j >= first; j-- {
		if t, ok := openingTag(strings.TrimSpace(lines[j])); ok && t == tag {
			return j, last, true
		}
	}
	return 0, 0, false
}

// openingTag reports the tag name of a line starting with "<tag>" or "<tag attr…>".
func openingTag(line string) (string, bool) {
	if !strings.HasPrefix(line, "<") || strings.HasPrefix(line, "</") {
		return "", false
	}
	end := strings.IndexAny(line, " >")
	if end < 0 || !strings.Contains(line, ">") {
		return "", false
	}
	tag := line[1:end]
	return tag, validTag(tag)
}

func validTag(tag string) bool {
	if tag == "" {
		return false
	}
	for _, r := range tag {
		if !(r == '_' || r == '-' || r == ':' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

func parseToolCommand(prompt string) (name, arg string, ok bool) {
	if len(prompt) < len(toolCommand) || !strings.EqualFold(prompt[:len(toolCommand)], toolCommand) {
		return "", "", false
	}
	rest := strings.TrimSpace(prompt[len(toolCommand):])
	name, arg, found := strings.Cut(rest, " with ")
	name = strings.TrimSpace(name)
	if !found || name == "" || strings.ContainsAny(name, " \t\n") {
		return "", "", false
	}
	return name, strings.TrimSpace(arg), true
}

func findTool(tools []chatTool, name string) (chatTool, bool) {
	for _, t := range tools {
		if t.Function.Name == name {
			return t, true
		}
	}
	return chatTool{}, false
}

// toolParameter picks the argument name for a tool call from its JSON schema.
func toolParameter(schema json.RawMessage) string {
	var s struct {
		Properties map[string]json.RawMessage `json:"properties"`
		Required   []string                   `json:"required"`
	}
	if len(schema) == 0 || json.Unmarshal(schema, &s) != nil {
		return "input"
	}
	if len(s.Required) > 0 {
		return s.Required[0]
	}
	names := make([]string, 0, len(s.Properties))
	for k := range s.Properties {
		names = append(names, k)
	}
	if len(names) == 0 {
		return "input"
	}
	sort.Strings(names)
	return names[0]
}

// toolNameFor finds the name of the tool whose call id is id in the
// assistant messages of the conversation.
func toolNameFor(msgs []chatMessage, id, fallback string) string {
	for i := len(msgs) - 1; i >= 0; i-- {
		for _, c := range msgs[i].ToolCalls {
			if c.ID == id && c.Function.Name != "" {
				return c.Function.Name
			}
		}
	}
	if fallback != "" {
		return fallback
	}
	return "unknown"
}
