package membership

import (
	"net"
	"net/netip"
	"strconv"

	"github.com/hashicorp/memberlist"
)

// delegate is the Node's memberlist.Delegate and memberlist.EventDelegate.
//
// memberlist calls it from its own goroutines (packet handler, stream
// handlers, probe and suspicion timers), with its node lock held for the
// event methods. Every method therefore only copies data, takes the Node's
// member lock briefly and posts a signal without blocking; the dispatch
// goroutine does the rest.
type delegate struct {
	n *Node
}

var (
	_ memberlist.Delegate      = (*delegate)(nil)
	_ memberlist.EventDelegate = (*delegate)(nil)
)

// NodeMeta returns this node's encoded Meta, set by Join and UpdateMeta.
func (d *delegate) NodeMeta(limit int) []byte {
	b := *d.n.localMeta.Load()
	if len(b) > limit {
		// Cannot happen (MarshalBinary keeps within MetaMaxSize, and that is
		// the limit memberlist passes), but memberlist panics on oversize.
		return nil
	}
	return b
}

// NotifyMsg ignores user messages: this package only uses membership and
// metadata, not memberlist's message channel.
func (d *delegate) NotifyMsg([]byte) {}

// GetBroadcasts has nothing to piggyback on gossip.
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }

// LocalState has no state beyond membership to exchange in push/pull.
func (d *delegate) LocalState(join bool) []byte { return nil }

// MergeRemoteState ignores remote state (see LocalState).
func (d *delegate) MergeRemoteState(buf []byte, join bool) {}

// NotifyJoin records a member that became alive (including this node at start).
func (d *delegate) NotifyJoin(node *memberlist.Node) { d.n.observe(node) }

// NotifyUpdate records a member's new metadata.
func (d *delegate) NotifyUpdate(node *memberlist.Node) { d.n.observe(node) }

// NotifyLeave forgets a member that left or was declared dead.
func (d *delegate) NotifyLeave(node *memberlist.Node) { d.n.forget(node.Name) }

// observe stores what memberlist says about a live member. node belongs to
// memberlist and is only valid during the call: everything kept is copied.
// Refusals are logged by the dispatch loop (once per member), not here, since
// a hostile member could update its metadata without end.
func (n *Node) observe(node *memberlist.Node) {
	m := Member{
		Name:       node.Name,
		GossipAddr: net.JoinHostPort(node.Addr.String(), strconv.Itoa(int(node.Port))),
	}
	if ip, ok := netip.AddrFromSlice(node.Addr); ok {
		m.gossipIP = ip.Unmap()
	}
	if err := m.Meta.UnmarshalBinary(node.Meta); err != nil {
		m.Meta, m.MetaErr = Meta{}, err
	}
	n.mu.Lock()
	// A member keeps its place among the claimants of a CLI address while it
	// claims that address from the same gossip IP; any other change is a
	// new claim.
	if prev, ok := n.members[m.Name]; ok && prev.Meta.Addr == m.Meta.Addr && prev.gossipIP == m.gossipIP {
		m.claimSeq = prev.claimSeq
	} else {
		n.claimSeq++
		m.claimSeq = n.claimSeq
	}
	n.members[m.Name] = m
	n.mu.Unlock()
	n.signal()
}

// forget removes a member that left or died.
func (n *Node) forget(name string) {
	n.mu.Lock()
	delete(n.members, name)
	n.mu.Unlock()
	n.signal()
}

// signal wakes the dispatch goroutine without blocking: one pending signal is
// enough, since the dispatcher reads the whole current state.
func (n *Node) signal() {
	select {
	case n.changed <- struct{}{}:
	default:
	}
}
