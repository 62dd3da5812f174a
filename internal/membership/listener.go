package membership

import (
	"net/netip"
	"slices"
	"time"
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

// Backend is a live cluster member with role backend that this node admitted
// (see admission.go): a CLI server that proxies may route to. Every proxy given the same membership computes the
// same []Backend, sorted by Name, so equal inputs to a hash ring.
type Backend struct {
	// Name is the member's node name, unique in the cluster: the ring key.
	Name string
	// Addr is the CLI server address to dial, IP:port in canonical form
	// (IPv4-mapped addresses unmapped, IPv6 in brackets).
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

	gossipIP netip.Addr // IP of GossipAddr, unmapped
	claimSeq uint64     // when the member began claiming Meta.Addr (see admit)
}

// dispatchLoop delivers backend set changes to the listener. It is the Node's
// only long-lived goroutine: it waits for a signal from the memberlist
// delegates (or shutdown), recomputes the canonical set and calls the
// listener when the set changed. It also logs refused members (once per
// member and kind) and repeats the insecure-gossip warning.
func (n *Node) dispatchLoop() {
	defer close(n.dispatchDone)
	var last []Backend
	delivered := false
	logged := make(map[string]refusalKind) // refused members already logged
	var remind <-chan time.Time
	if authModeOf(n.cfg) == authInsecure {
		t := time.NewTicker(n.cfg.insecureWarnEvery)
		defer t.Stop()
		remind = t.C
	}
	for {
		select {
		case <-n.shutdownCh:
			return
		case <-remind:
			n.warnUnauthenticated()
			continue
		case <-n.changed:
		}
		cur, refused := n.admitted()
		n.logRefusals(refused, logged)
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

// logRefusals logs each refused member whose refusal kind differs from the
// one last logged for it, and forgets members no longer refused, so a member
// that keeps updating its metadata is logged once, and logged is bounded by
// the member count.
func (n *Node) logRefusals(refused []refusal, logged map[string]refusalKind) {
	now := make(map[string]bool, len(refused))
	for _, r := range refused {
		now[r.name] = true
		if logged[r.name] == r.kind {
			continue
		}
		logged[r.name] = r.kind
		n.log.Warn("ignoring cluster member: not a backend", "member", r.name, "reason", string(r.kind), "detail", r.detail)
	}
	for name := range logged {
		if !now[name] {
			delete(logged, name)
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
