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
// after the first is closed. NewStore keeps sessions in memory; OpenStore
// keeps them in a directory that several processes may share. A Store is
// safe for concurrent use.
type Store struct {
	b storeBackend
}

// storeBackend is where a Store keeps its sessions.
type storeBackend interface {
	// ensure persists a new, empty session or leaves an existing one as
	// it is. It returns the session's start time and whether it made it.
	ensure(id string, now time.Time) (start time.Time, created bool)
	// startTime returns the session's start time and whether it is persisted.
	startTime(id string) (time.Time, bool)
	// appendEvent persists one event; false when the session is gone.
	appendEvent(id string, now time.Time, ev []byte) bool
	// endTurn counts a completed turn whose prompt was prompt.
	endTurn(id string, now time.Time, prompt string) (start, modified time.Time, ok bool)
	// events returns the persisted events, oldest first; the slices must
	// not be modified.
	events(id string) ([][]byte, bool)
	// remove deletes a session; it reports whether there was one.
	remove(id string) bool
	// turns returns the completed turns of a session, 0 if unknown.
	turns(id string) int
	// list returns every session's metadata, in no order.
	list() []listEntry
}

// listEntry is what the store tells about one session.
type listEntry struct {
	ID       string
	Start    time.Time
	Modified time.Time
	Summary  string
	Turns    int
}

// NewStore returns an empty in-memory Store.
func NewStore() *Store {
	return &Store{b: &memStore{sessions: make(map[string]*record)}}
}

// Has reports whether the session is persisted.
func (s *Store) Has(sessionID string) bool {
	_, ok := s.b.startTime(sessionID)
	return ok
}

// Turns returns the number of completed turns of the session, 0 if unknown.
func (s *Store) Turns(sessionID string) int { return s.b.turns(sessionID) }

// IDs returns the persisted session IDs, sorted.
func (s *Store) IDs() []string {
	entries := s.b.list()
	ids := make([]string, len(entries))
	for i, e := range entries {
		ids[i] = e.ID
	}
	slices.Sort(ids)
	return ids
}

func (s *Store) ensure(id string, now time.Time) (time.Time, bool) { return s.b.ensure(id, now) }

func (s *Store) startTime(id string) (time.Time, bool) { return s.b.startTime(id) }

func (s *Store) appendEvent(id string, now time.Time, ev []byte) bool {
	return s.b.appendEvent(id, now, ev)
}

func (s *Store) endTurn(id string, now time.Time, prompt string) (start, modified time.Time, ok bool) {
	return s.b.endTurn(id, now, prompt)
}

func (s *Store) events(id string) ([][]byte, bool) { return s.b.events(id) }

func (s *Store) remove(id string) bool { return s.b.remove(id) }

// listed returns the sessions with at least one turn, most recently
// modified first, as session.list does.
func (s *Store) listed() []listEntry {
	out := slices.DeleteFunc(s.b.list(), func(e listEntry) bool { return e.Turns == 0 })
	slices.SortFunc(out, func(a, b listEntry) int {
		if c := b.Modified.Compare(a.Modified); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// memStore keeps sessions in memory.
type memStore struct {
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

func (m *memStore) ensure(id string, now time.Time) (time.Time, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r, ok := m.sessions[id]; ok {
		return r.start, false
	}
	m.sessions[id] = &record{start: now, modified: now}
	return now, true
}

func (m *memStore) startTime(id string) (time.Time, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.sessions[id]
	if !ok {
		return time.Time{}, false
	}
	return r.start, true
}

func (m *memStore) appendEvent(id string, now time.Time, ev []byte) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.sessions[id]
	if !ok {
		return false
	}
	if len(r.events) >= MaxStoredEvents {
		// Drop the oldest quarter at once so trimming stays amortised O(1).
		n := copy(r.events, r.events[MaxStoredEvents/4:])
		clear(r.events[n:])
		r.events = r.events[:n]
	}
	r.events = append(r.events, ev)
	r.modified = now
	return true
}

func (m *memStore) endTurn(id string, now time.Time, prompt string) (start, modified time.Time, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.sessions[id]
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

func (m *memStore) events(id string) ([][]byte, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.sessions[id]
	if !ok {
		return nil, false
	}
	return slices.Clone(r.events), true
}

func (m *memStore) remove(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.sessions[id]
	delete(m.sessions, id)
	return ok
}

func (m *memStore) turns(id string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r, ok := m.sessions[id]; ok {
		return r.turns
	}
	return 0
}

func (m *memStore) list() []listEntry {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]listEntry, 0, len(m.sessions))
	for id, r := range m.sessions {
		out = append(out, listEntry{ID: id, Start: r.start, Modified: r.modified, Summary: r.summary, Turns: r.turns})
	}
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
