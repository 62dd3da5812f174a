package fakecli

import (
	"slices"
	"strings"
	"sync"
	"time"
)

// MaxStoredEvents bounds the persisted events kept per session; older ones
// are dropped first (the turn count still counts them). It keeps long
// benchmark runs from growing without limit.
const MaxStoredEvents = 4096

// Store is the persisted side of sessions: what a CLI keeps under
// $COPILOT_HOME/session-state. Servers built with the same *Store see each
// other's sessions, so a session created on one can be resumed on another
// after the first is closed. A Store is safe for concurrent use.
type Store struct {
	mu       sync.Mutex
	sessions map[string]*record
}

// record is one persisted session.
type record struct {
	start    time.Time
	modified time.Time
	summary  string
	turns    int
	events   [][]byte // persisted event objects, oldest first
}

// NewStore returns an empty Store.
func NewStore() *Store {
	return &Store{sessions: make(map[string]*record)}
}

// Has reports whether the session is persisted.
func (s *Store) Has(sessionID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.sessions[sessionID]
	return ok
}

// Turns returns the number of completed turns of the session, 0 if unknown.
func (s *Store) Turns(sessionID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.sessions[sessionID]; ok {
		return r.turns
	}
	return 0
}

// IDs returns the persisted session IDs, sorted.
func (s *Store) IDs() []string {
	s.mu.Lock()
	ids := make([]string, 0, len(s.sessions))
	for id := range s.sessions {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	slices.Sort(ids)
	return ids
}

// ensure persists a new session, with its first event when start is not
// nil, or leaves an existing one as it is. It returns the session's start time.
func (s *Store) ensure(id string, now time.Time, start []byte) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.sessions[id]; ok {
		return r.start
	}
	r := &record{start: now, modified: now}
	if start != nil {
		r.events = append(r.events, start)
	}
	s.sessions[id] = r
	return now
}

// startTime returns the session's start time and whether it is persisted.
func (s *Store) startTime(id string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.sessions[id]
	if !ok {
		return time.Time{}, false
	}
	return r.start, true
}

// appendEvent persists one event. It reports false when the session has
// been deleted meanwhile.
func (s *Store) appendEvent(id string, now time.Time, ev []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.sessions[id]
	if !ok {
		return false
	}
	r.push(ev)
	r.modified = now
	return true
}

// endTurn counts a completed turn whose prompt was prompt and returns the
// session's start and modified times.
func (s *Store) endTurn(id string, now time.Time, prompt string) (start, modified time.Time, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.sessions[id]
	if !ok {
		return time.Time{}, time.Time{}, false
	}
	r.turns++
	r.modified = now
	if r.summary == "" {
		r.summary = summarize(prompt)
	}
	return r.start, r.modified, true
}

func (r *record) push(ev []byte) {
	if len(r.events) >= MaxStoredEvents {
		// Drop the oldest quarter at once so trimming stays amortised O(1).
		n := copy(r.events, r.events[MaxStoredEvents/4:])
		clear(r.events[n:])
		r.events = r.events[:n]
	}
	r.events = append(r.events, ev)
}

// events returns the persisted events of a session; the slices are shared
// and must not be modified.
func (s *Store) events(id string) ([][]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.sessions[id]
	if !ok {
		return nil, false
	}
	return slices.Clone(r.events), true
}

// remove deletes a session; it reports whether there was one.
func (s *Store) remove(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.sessions[id]
	delete(s.sessions, id)
	return ok
}

// listEntry is what session.list tells about one session.
type listEntry struct {
	ID       string
	Start    time.Time
	Modified time.Time
	Summary  string
}

// list returns the sessions with at least one turn, most recently modified
// first, as session.list does.
func (s *Store) list() []listEntry {
	s.mu.Lock()
	out := make([]listEntry, 0, len(s.sessions))
	for id, r := range s.sessions {
		if r.turns == 0 {
			continue
		}
		out = append(out, listEntry{ID: id, Start: r.start, Modified: r.modified, Summary: r.summary})
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b listEntry) int {
		if c := b.Modified.Compare(a.Modified); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// summarize shortens a first prompt into a session summary.
func summarize(prompt string) string {
	const max = 80
	prompt = strings.TrimSpace(prompt)
	if len(prompt) <= max {
		return prompt
	}
	cut := max
	for cut > 0 && !utf8RuneStart(prompt[cut]) {
		cut--
	}
	return prompt[:cut]
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }
