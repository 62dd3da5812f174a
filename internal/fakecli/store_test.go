package fakecli

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestStoreBackends runs the same history through the in-memory store and
// through two directory stores opened on one directory (two processes
// sharing a COPILOT_HOME).
func TestStoreBackends(t *testing.T) {
	dir := t.TempDir()
	d1, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	d2, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name        string
		write, read *Store
	}{
		{"memory", NewStore(), nil},
		{"dir", d1, d2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w, r := tt.write, tt.read
			if r == nil {
				r = w
			}
			t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
			for _, id := range []string{"a", "b/../../c", "..", "üñí"} {
				if got, created := w.ensure(id, t0); !got.Equal(t0) || !created {
					t.Fatalf("ensure %q = %v, %v", id, got, created)
				}
				if got, created := w.ensure(id, t0.Add(time.Hour)); !got.Equal(t0) || created {
					t.Fatalf("second ensure %q = %v, %v; want the first start, not created", id, got, created)
				}
				if !w.appendEvent(id, t0, []byte(`{"type":"session.start"}`)) {
					t.Fatalf("appendEvent %q failed", id)
				}
				if !r.Has(id) {
					t.Fatalf("%q not persisted", id)
				}
			}
			if !w.appendEvent("a", t0.Add(time.Second), []byte(`{"type":"user.message"}`)) {
				t.Fatal("appendEvent failed")
			}
			if w.appendEvent("missing", t0, []byte(`{}`)) {
				t.Fatal("appendEvent to a missing session succeeded")
			}
			if _, _, ok := w.endTurn("a", t0.Add(2*time.Second), "  the first prompt "); !ok {
				t.Fatal("endTurn failed")
			}
			w.endTurn("b/../../c", t0.Add(3*time.Second), "other")
			evs, ok := r.events("a")
			if !ok || len(evs) != 2 || string(evs[1]) != `{"type":"user.message"}` {
				t.Fatalf("events = %q, %v", evs, ok)
			}
			l := r.listed()
			if len(l) != 2 || l[0].ID != "b/../../c" || l[1].ID != "a" || l[1].Summary != "the first prompt" || l[1].Turns != 1 {
				t.Fatalf("listed = %+v", l)
			}
			if r.Turns("a") != 1 || r.Turns("..") != 0 || r.Turns("nope") != 0 {
				t.Fatalf("turns a=%d ..=%d", r.Turns("a"), r.Turns(".."))
			}
			if want := []string{"..", "a", "b/../../c", "üñí"}; !reflect.DeepEqual(r.IDs(), want) {
				t.Fatalf("IDs = %q, want %q", r.IDs(), want)
			}
			if !w.remove("a") || w.remove("a") || r.Has("a") {
				t.Fatal("remove")
			}
		})
	}
	// Nothing escaped the store's directory.
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != "session-state" {
		t.Errorf("store dir holds %v", ents)
	}
}

// TestDirStoreSkipsTornLine: an event line cut short by a killed writer is
// skipped, the rest of the history read.
func TestDirStoreSkipsTornLine(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	s.ensure("x", time.Now())
	s.appendEvent("x", time.Now(), []byte(`{"n":1}`))
	f, err := os.OpenFile(filepath.Join(dir, "session-state", "x", eventsFile), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"n":2}` + "\n" + `{"n":`)
	f.Close()
	evs, _ := s.events("x")
	if len(evs) != 2 {
		t.Fatalf("events = %q", evs)
	}
}

// TestFailoverDirStore: the failover of TestFailoverSharedStore, with each
// server on its own Store opened on one directory, as separate processes.
func TestFailoverDirStore(t *testing.T) {
	dir := t.TempDir()
	st1, _ := OpenStore(dir)
	st2, _ := OpenStore(dir)
	sa := startServer(t, Config{Name: "a", Store: st1})
	sb := startServer(t, Config{Name: "b", Store: st2})
	ca := connected(t, sa)
	create(t, ca, "f")
	turn(t, ca, "f", "on a")
	sa.Close()
	cb := connected(t, sb)
	call(t, cb, "session.resume", map[string]any{"sessionId": "f"})
	if got := content(t, turn(t, cb, "f", "on b")); got != Answer("b", "on b", 2) {
		t.Errorf("content on b = %q", got)
	}
	hist := string(call(t, cb, "session.getMessages", map[string]any{"sessionId": "f"}))
	if !strings.Contains(hist, Answer("a", "on a", 1)) || !strings.Contains(hist, `"session.resume"`) {
		t.Errorf("history on b = %s", hist)
	}
	if got := list(t, cb); !reflect.DeepEqual(got, []string{"f"}) {
		t.Errorf("list = %v", got)
	}
}
