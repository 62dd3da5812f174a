package router

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"time"
)

// MergeResults combines the results (raw JSON) of one aggregate asked of
// several backends. lists holds, for MergeLastID, the session.list results
// of the same backends, used to compare modification times; it is ignored
// by the other merges. Aggregates are rare, so this decodes fully.
func MergeResults(m Merge, results []json.RawMessage, lists []json.RawMessage) (json.RawMessage, error) {
	switch m {
	case MergeSessionList:
		return mergeSessionList(results)
	case MergeLastID:
		return mergeLastID(results, lists)
	case MergeUnion:
		return mergeUnion(results)
	}
	if len(results) == 0 {
		return json.RawMessage("null"), nil
	}
	return results[0], nil
}

type sessionEntry struct {
	raw      json.RawMessage
	id       string
	modified time.Time
	rawTime  string
}

// sessionItems returns the session array of a session.list result: the
// CLI answers {"sessions":[…]}; a bare array is accepted too.
func sessionItems(result json.RawMessage) ([]json.RawMessage, error) {
	var items []json.RawMessage
	trimmed := bytes.TrimSpace(result)
	if len(trimmed) > 0 && trimmed[0] == '[' {
		if err := json.Unmarshal(trimmed, &items); err != nil {
			return nil, fmt.Errorf("router: session list: %w", err)
		}
		return items, nil
	}
	var obj struct {
		Sessions []json.RawMessage `json:"sessions"`
	}
	if err := json.Unmarshal(trimmed, &obj); err != nil {
		return nil, fmt.Errorf("router: session list is neither {sessions:[…]} nor an array: %w", err)
	}
	return obj.Sessions, nil
}

// sessionEntries decodes a session.list result into entries with sessionId
// and modifiedTime (other members are kept as they are).
func sessionEntries(result json.RawMessage) ([]sessionEntry, error) {
	items, err := sessionItems(result)
	if err != nil {
		return nil, err
	}
	out := make([]sessionEntry, 0, len(items))
	for _, it := range items {
		var head struct {
			SessionID    string `json:"sessionId"`
			ModifiedTime string `json:"modifiedTime"`
		}
		if err := json.Unmarshal(it, &head); err != nil {
			return nil, fmt.Errorf("router: session list entry: %w", err)
		}
		t, _ := time.Parse(time.RFC3339Nano, head.ModifiedTime)
		out = append(out, sessionEntry{raw: it, id: head.SessionID, modified: t, rawTime: head.ModifiedTime})
	}
	return out, nil
}

func newer(a, b sessionEntry) bool {
	if !a.modified.Equal(b.modified) {
		return a.modified.After(b.modified)
	}
	return a.rawTime > b.rawTime
}

// unionSessions returns the sessions of all lists, one entry per sessionId
// (the most recently modified copy), newest first.
func unionSessions(results []json.RawMessage) ([]sessionEntry, error) {
	byID := make(map[string]int)
	var all []sessionEntry
	for _, r := range results {
		entries, err := sessionEntries(r)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if i, ok := byID[e.id]; ok && e.id != "" {
				if newer(e, all[i]) {
					all[i] = e
				}
				continue
			}
			byID[e.id] = len(all)
			all = append(all, e)
		}
	}
	sort.SliceStable(all, func(i, j int) bool { return newer(all[i], all[j]) })
	return all, nil
}

func mergeSessionList(results []json.RawMessage) (json.RawMessage, error) {
	all, err := unionSessions(results)
	if err != nil {
		return nil, err
	}
	bare := len(results) > 0 && bytes.HasPrefix(bytes.TrimSpace(results[0]), []byte("["))
	var buf bytes.Buffer
	if !bare {
		buf.WriteString(`{"sessions":`)
	}
	buf.WriteByte('[')
	for i, e := range all {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(e.raw)
	}
	buf.WriteByte(']')
	if !bare {
		buf.WriteByte('}')
	}
	return buf.Bytes(), nil
}

// mergeLastID picks, among the backends' last session IDs, the one most
// recently modified according to the backends' session lists. With one
// candidate, or no times to compare, the first candidate wins.
func mergeLastID(results []json.RawMessage, lists []json.RawMessage) (json.RawMessage, error) {
	var candidates []string
	for _, r := range results {
		var v struct {
			SessionID string `json:"sessionId"`
		}
		if err := json.Unmarshal(r, &v); err != nil {
			return nil, fmt.Errorf("router: getLastId result: %w", err)
		}
		if v.SessionID != "" {
			candidates = append(candidates, v.SessionID)
		}
	}
	if len(candidates) == 0 {
		return json.RawMessage("{}"), nil
	}
	best := candidates[0]
	if len(candidates) > 1 {
		if all, err := unionSessions(lists); err == nil {
			want := make(map[string]bool, len(candidates))
			for _, c := range candidates {
				want[c] = true
			}
			for _, e := range all { // newest first
				if want[e.id] {
					best = e.id
					break
				}
			}
		}
	}
	return json.Marshal(struct {
		SessionID string `json:"sessionId"`
	}{best})
}

// mergeUnion merges JSON values structurally: arrays are concatenated with
// duplicates (by sessionId for objects that have one, else by value)
// removed; objects are merged member by member; booleans are or-ed; for any
// other value the first backend's wins.
func mergeUnion(results []json.RawMessage) (json.RawMessage, error) {
	var acc any
	for i, r := range results {
		var v any
		if err := json.Unmarshal(r, &v); err != nil {
			return nil, fmt.Errorf("router: aggregate result: %w", err)
		}
		if i == 0 {
			acc = v
			continue
		}
		acc = unionValue(acc, v)
	}
	return json.Marshal(acc)
}

func unionValue(a, b any) any {
	switch av := a.(type) {
	case []any:
		bv, ok := b.([]any)
		if !ok {
			return a
		}
		seen := make(map[string]bool, len(av)+len(bv))
		out := make([]any, 0, len(av)+len(bv))
		for _, x := range append(av, bv...) {
			k := dedupKey(x)
			if seen[k] {
				continue
			}
			seen[k] = true
			out = append(out, x)
		}
		return out
	case map[string]any:
		bv, ok := b.(map[string]any)
		if !ok {
			return a
		}
		for k, x := range bv {
			if y, ok := av[k]; ok {
				av[k] = unionValue(y, x)
			} else {
				av[k] = x
			}
		}
		return av
	case bool:
		if bv, ok := b.(bool); ok {
			return av || bv
		}
	case nil:
		return b
	}
	return a
}

func dedupKey(x any) string {
	if m, ok := x.(map[string]any); ok {
		if id, ok := m["sessionId"].(string); ok {
			return "s:" + id
		}
	}
	b, _ := json.Marshal(x)
	return "v:" + string(b)
}
