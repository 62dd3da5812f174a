package router

import (
	"encoding/json"
	"testing"
)

func raws(s ...string) []json.RawMessage {
	out := make([]json.RawMessage, len(s))
	for i, v := range s {
		out[i] = json.RawMessage(v)
	}
	return out
}

func TestMergeSessionList(t *testing.T) {
	got, err := MergeResults(MergeSessionList, raws(
		`[{"sessionId":"a","modifiedTime":"2026-11-23T10:00:00.000Z","summary":"A"},{"sessionId":"b","modifiedTime":"2026-11-23T12:00:00.000Z"}]`,
		`[{"sessionId":"c","modifiedTime":"2026-11-23T11:00:00.000Z","isRemote":false},{"sessionId":"a","modifiedTime":"2026-11-23T13:00:00.000Z","summary":"A2"}]`,
		`[]`,
	), nil)
	if err != nil {
		t.Fatal(err)
	}
	var list []struct {
		SessionID string `json:"sessionId"`
		Summary   string `json:"summary"`
	}
	if err := json.Unmarshal(got, &list); err != nil {
		t.Fatal(err)
	}
	want := []string{"a", "b", "c"} // newest first; a deduplicated to its newest copy
	if len(list) != len(want) {
		t.Fatalf("got %s", got)
	}
	for i, w := range want {
		if list[i].SessionID != w {
			t.Fatalf("order: got %s", got)
		}
	}
	if list[0].Summary != "A2" {
		t.Fatalf("duplicate kept the older copy: %s", got)
	}
}

func TestMergeSessionListObject(t *testing.T) {
	// The CLI answers session.list with {"sessions":[…]}.
	got, err := MergeResults(MergeSessionList, raws(
		`{"sessions":[{"sessionId":"a","modifiedTime":"2026-11-23T10:00:00Z"}]}`,
		`{"sessions":[{"sessionId":"b","modifiedTime":"2026-11-23T12:00:00Z"}]}`,
	), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"sessions":[{"sessionId":"b","modifiedTime":"2026-11-23T12:00:00Z"},{"sessionId":"a","modifiedTime":"2026-11-23T10:00:00Z"}]}`
	if string(got) != want {
		t.Fatalf("got %s\nwant %s", got, want)
	}
}

func TestMergeLastID(t *testing.T) {
	lists := raws(
		`[{"sessionId":"x","modifiedTime":"2026-11-23T10:00:00Z"}]`,
		`[{"sessionId":"y","modifiedTime":"2026-11-23T11:00:00Z"}]`,
	)
	got, err := MergeResults(MergeLastID, raws(`{"sessionId":"x"}`, `{"sessionId":"y"}`, `{}`), lists)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != `{"sessionId":"y"}` {
		t.Fatalf("got %s", got)
	}
	got, _ = MergeResults(MergeLastID, raws(`{}`, `{}`), nil)
	if string(got) != `{}` {
		t.Fatalf("none: got %s", got)
	}
}

func TestMergeUnion(t *testing.T) {
	got, err := MergeResults(MergeUnion, raws(
		`{"sessions":[{"sessionId":"a"}],"inUse":false,"sizes":{"a":1}}`,
		`{"sessions":[{"sessionId":"b"},{"sessionId":"a"}],"inUse":true,"sizes":{"b":2}}`,
	), nil)
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Sessions []map[string]string `json:"sessions"`
		InUse    bool                `json:"inUse"`
		Sizes    map[string]int      `json:"sizes"`
	}
	if err := json.Unmarshal(got, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Sessions) != 2 || !v.InUse || len(v.Sizes) != 2 {
		t.Fatalf("got %s", got)
	}
}
