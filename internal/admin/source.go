// Package admin is rpcproxy's admin HTTP listener: liveness and readiness
// for orchestrators, a JSON API for operators and the status page, and the
// metrics handler. It reads the proxy through a Source, so it knows nothing
// of how the process is put together.
package admin

import (
	"errors"
	"time"
)

// Source is what the admin API reads and changes. cmd/rpcproxy implements
// it over the health checker, the ring, the proxy and the gossip node. Its
// methods are called from HTTP handler goroutines, concurrently.
type Source interface {
	// Backends returns every backend the proxy knows, sorted by address.
	Backends() []Backend
	// Session describes one session id: its owner on the ring and the
	// client connections that hold it.
	Session(id string) Session
	// SetDrain drains a backend (no new sessions; its sessions move at
	// their next turn boundary) or undoes that; ErrUnknownBackend when no
	// backend has that address.
	SetDrain(address string, draining bool) error
	// Members returns the gossip members, sorted by name; nil when gossip
	// is off.
	Members() []Member
	// Routable counts the backends that take new sessions.
	Routable() int
	// Summary returns the totals (the admin server fills in the rates).
	Summary() Summary
}

// ErrUnknownBackend is returned by Source.SetDrain for an address that is
// no backend of the proxy's.
var ErrUnknownBackend = errors.New("unknown backend")

// Backend is one backend as GET /v1/backends shows it.
type Backend struct {
	Address string `json:"address"`
	// State is "up", "down" or "draining".
	State string `json:"state"`
	// Source is "static", "pool" or "gossip".
	Source string `json:"source"`
	Weight int    `json:"weight"`
	// Share is the fraction of the ring's partitions it owns (of new
	// sessions it takes), 0 when it is not on the ring.
	Share float64 `json:"share"`
	// Sessions placed on it, over all client connections.
	Sessions int `json:"sessions"`
	// Clients: client connections with a connection open to it.
	Clients int `json:"clients"`
	// AdminDrain: drained over this API (undrain clears it).
	AdminDrain bool      `json:"admin_drain"`
	LastCheck  LastCheck `json:"last_check"`
	// Version and ProtocolVersion are from the backend's last connect
	// answer; empty and 0 before its first good check.
	Version         string `json:"version"`
	ProtocolVersion int    `json:"protocol_version"`
}

// LastCheck is a backend's last health check.
type LastCheck struct {
	// Time the check started; nil before the first.
	Time *time.Time `json:"time"`
	// LatencyMS is how long it took, in milliseconds.
	LatencyMS float64 `json:"latency_ms"`
	// OK: it passed; Error says why not otherwise.
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// Session is what GET /v1/sessions/{id} shows.
type Session struct {
	ID string `json:"id"`
	// Owner is the backend the ring places the session on now: where it
	// goes when created or resumed, and where it moves at its next turn
	// boundary. Empty when no backend is routable.
	Owner string `json:"owner"`
	// Backend is the backend holding it now (the first holder's), empty
	// when no client holds it.
	Backend string `json:"backend"`
	// Clients: client connections that hold it.
	Clients int `json:"clients"`
	// Holders lists those connections.
	Holders []SessionHolder `json:"holders"`
}

// SessionHolder is one client connection that holds a session.
type SessionHolder struct {
	// Client is the connection's id, as in the proxy's logs.
	Client  uint64 `json:"client"`
	Backend string `json:"backend"`
	// Moving: the session is being moved or reattached right now.
	Moving bool `json:"moving"`
}

// Member is one gossip member as GET /v1/members shows it.
type Member struct {
	Name string `json:"name"`
	// Address is the member's gossip address.
	Address string `json:"address"`
	// Role is "backend" (an agent), "proxy", or "" when its metadata
	// cannot be read.
	Role string `json:"role"`
	// Status is "alive" for a proxy; for a backend "healthy", "unhealthy"
	// (its agent's checks fail) or "draining"; "invalid" when its metadata
	// cannot be read (Error says why).
	Status string `json:"status"`
	// Backend is the CLI address a backend member announces.
	Backend         string `json:"backend,omitempty"`
	Weight          int    `json:"weight,omitempty"`
	Version         string `json:"version,omitempty"`
	ProtocolVersion int    `json:"protocol_version,omitempty"`
	Error           string `json:"error,omitempty"`
}

// Summary is what GET /v1/summary shows: totals over the whole proxy.
type Summary struct {
	// Clients: SDK connections open.
	Clients int `json:"clients"`
	// Sessions placed over all client connections.
	Sessions int `json:"sessions"`
	// Backends known, and of them up, draining, down.
	Backends int `json:"backends"`
	Up       int `json:"up"`
	Draining int `json:"draining"`
	Down     int `json:"down"`
	// Ready: at least one backend takes new sessions.
	Ready bool `json:"ready"`
	// Requests per second and the fraction answered with an error, over the
	// time since the previous summary (at least a second); null until the
	// proxy's counters are wired (Config.Counters) and a first interval
	// has passed.
	RequestsPerSecond *float64 `json:"requests_per_second"`
	ErrorRate         *float64 `json:"error_rate"`
	// Turn latency percentiles, in milliseconds; null when not measured.
	TurnP50MS *float64 `json:"turn_p50_ms"`
	TurnP99MS *float64 `json:"turn_p99_ms"`
}
