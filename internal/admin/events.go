package admin

import (
	"sync"
	"time"
)

// Kinds of Event.
const (
	// KindState: a backend's state changed (Detail "up -> down").
	KindState = "state"
	// KindFailover: a session moved off a backend that was lost.
	KindFailover = "failover"
	// KindMove: a session moved to its new ring owner at a turn boundary
	// (a backend joined, left or is draining).
	KindMove = "move"
	// KindDrain and KindUndrain: an operator drained a backend over this
	// API, or undid it.
	KindDrain   = "drain"
	KindUndrain = "undrain"
)

// DefaultEvents is the number of events kept when NewEvents is given 0.
const DefaultEvents = 50

// Event is one thing that happened to the pool.
type Event struct {
	Time    time.Time `json:"time"`
	Kind    string    `json:"kind"`
	Backend string    `json:"backend"`
	Detail  string    `json:"detail"`
}

// Events keeps the last events in a bounded ring: adding one never blocks
// for long and never grows memory. Safe for concurrent use; a nil *Events
// drops what it is given and lists nothing.
type Events struct {
	mu   sync.Mutex
	buf  []Event
	next int  // where the next event goes
	full bool // buf has wrapped
}

// NewEvents returns a ring of the last n events (DefaultEvents when n <= 0).
func NewEvents(n int) *Events {
	if n <= 0 {
		n = DefaultEvents
	}
	return &Events{buf: make([]Event, n)}
}

// Add records an event now.
func (e *Events) Add(kind, backend, detail string) {
	if e == nil {
		return
	}
	ev := Event{Time: time.Now().UTC(), Kind: kind, Backend: backend, Detail: detail}
	e.mu.Lock()
	e.buf[e.next] = ev
	e.next++
	if e.next == len(e.buf) {
		e.next, e.full = 0, true
	}
	e.mu.Unlock()
}

// Last returns the events kept, oldest first.
func (e *Events) Last() []Event {
	if e == nil {
		return []Event{}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.full {
		return append([]Event{}, e.buf[:e.next]...)
	}
	out := make([]Event, 0, len(e.buf))
	out = append(out, e.buf[e.next:]...)
	return append(out, e.buf[:e.next]...)
}
