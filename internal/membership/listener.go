package membership

import (
	"slices"
	"strings"
)

// Listener receives the backend set whenever it changes.
//
// BackendsChanged is called from the Node's single dispatch goroutine: never
// concurrently with itself, never while a memberlist lock is held, and first
// with the set as it stands when Join returns (possibly empty). Later calls
// come only when the set differs from the one last delivered; bursts of
// changes may be coalesced into one call. The slice is the listener's to
// keep. The call must not block for long, since later changes wait behind
// it, and must not call Node.Shutdown or Node.Close (they wait for the
// dispatch goroutine to end).
type Listener interface {
	BackendsChanged(backends []Backend)
}

// ListenerFunc adapts a function to Listener.
type ListenerFunc func(backends []Backend)

// BackendsChanged calls f(backends).
func (f ListenerFunc) BackendsChanged(backends []Backend) { f(backends) }

// Backend is a live cluster member with role backend: a CLI server that
// proxies may route to. Every proxy given the same membership computes the
// same []Backend, sorted by Name, so equal inputs to a hash ring.
type Backend struct {
	// Name is the member's node name, unique in the cluster: the ring key.
	Name string
	// Addr is the CLI server address to dial, host:port.
	Addr string
	// Weight is the relative capacity, 1..MaxWeight.
	Weight int
	// Healthy says the agent's last check of its CLI succeeded.
	Healthy bool
	// Draining says the backend takes no new sessions.
	Draining bool
	// ProtocolVersion is the CLI's protocol version; 0 means unknown.
	ProtocolVersion int
	// Version is the agent's free-form version string.
	Version string
}

// Member is a live cluster member of any role, as this node last heard of it.
type Member struct {
	// Name is the member's node name.
	Name string
	// GossipAddr is the IP:port memberlist reaches the member at.
	GossipAddr string
	// Meta is the member's decoded metadata; zero when MetaErr is set.
	Meta Meta
	// MetaErr is why the member's metadata could not be decoded (a newer or
	// broken peer), wrapping ErrMetaVersion or ErrInvalidMeta; nil if fine.
	MetaErr error
}

// backendOf returns m as a Backend, and whether it is one.
func backendOf(m Member) (Backend, bool) {
	if m.MetaErr != nil || m.Meta.Role != RoleBackend {
		return Backend{}, false
	}
	w := m.Meta.Weight
	if w == 0 {
		w = 1
	}
	return Backend{
		Name:            m.Name,
		Addr:            m.Meta.Addr,
		Weight:          w,
		Healthy:         m.Meta.Healthy,
		Draining:        m.Meta.Draining,
		ProtocolVersion: m.Meta.ProtocolVersion,
		Version:         m.Meta.Version,
	}, true
}

// backendsOf returns the backends among members, sorted by name.
func backendsOf(members []Member) []Backend {
	out := make([]Backend, 0, len(members))
	for _, m := range members {
		if b, ok := backendOf(m); ok {
			out = append(out, b)
		}
	}
	slices.SortFunc(out, func(a, b Backend) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// dispatchLoop delivers backend set changes to the listener. It is the Node's
// only long-lived goroutine: it waits for a signal from the memberlist
// delegates (or shutdown), recomputes the canonical set and calls the
// listener when the set changed.
func (n *Node) dispatchLoop() {
	defer close(n.dispatchDone)
	var last []Backend
	delivered := false
	for {
		select {
		case <-n.shutdownCh:
			return
		case <-n.changed:
		}
		cur := n.Backends()
		if delivered && slices.Equal(cur, last) {
			continue
		}
		n.logBackendChanges(last, cur)
		last, delivered = cur, true
		if n.listener != nil {
			n.listener.BackendsChanged(slices.Clone(cur))
		}
	}
}

// logBackendChanges logs, at Info, each backend that appeared, went or changed.
func (n *Node) logBackendChanges(prev, cur []Backend) {
	if !n.log.IsInfo() {
		return
	}
	old := make(map[string]Backend, len(prev))
	for _, b := range prev {
		old[b.Name] = b
	}
	for _, b := range cur {
		p, seen := old[b.Name]
		switch {
		case !seen:
			n.log.Info("backend member joined", backendLogArgs(b)...)
		case p != b:
			n.log.Info("backend changed", backendLogArgs(b)...)
		}
		delete(old, b.Name)
	}
	for _, b := range prev {
		if _, gone := old[b.Name]; gone {
			n.log.Info("backend gone", "name", b.Name, "addr", b.Addr)
		}
	}
	n.log.Debug("backend set", "count", len(cur))
}

func backendLogArgs(b Backend) []any {
	return []any{
		"name", b.Name, "addr", b.Addr, "weight", b.Weight, "healthy", b.Healthy,
		"draining", b.Draining, "protocol_version", b.ProtocolVersion, "version", b.Version,
	}
}
