package router

import "sync/atomic"

// Table holds the ring currently in force. Readers call Ring on every
// routed frame without locking; whoever owns backend states (the health
// checker, membership) calls Set when the routable set changes.
type Table struct {
	cfg  RingConfig
	ring atomic.Pointer[Ring]
}

// NewTable returns a table with an empty ring.
func NewTable(cfg RingConfig) *Table {
	t := &Table{cfg: cfg}
	empty, _ := NewRing(nil, cfg)
	t.ring.Store(empty)
	return t
}

// Ring returns the ring in force. It is never nil.
func (t *Table) Ring() *Ring { return t.ring.Load() }

// Set replaces the ring with one built over backends.
func (t *Table) Set(backends []*Backend) error {
	r, err := NewRing(backends, t.cfg)
	if err != nil {
		return err
	}
	t.ring.Store(r)
	return nil
}
