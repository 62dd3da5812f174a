// Package membership keeps rpcproxy's cluster membership with gossip
// (hashicorp/memberlist). Every CLI host runs an `rpcproxy agent` that joins
// as a backend and advertises its CLI address in its metadata; every proxy
// joins as well and learns the backend set. Since all proxies see the same
// membership, they all compute the same canonical backend list (alive,
// admitted backends sorted by name) and so the same hash ring: any proxy
// sends a session to the same CLI server.
//
// Gossip keys are the cluster's credential; admission (admission.go) bounds
// what an admitted member can claim: a CLI address on its own gossip IP (or
// in Config.AllowedBackends) that no earlier member holds.
package membership

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"
)

// Errors callers branch on.
var (
	// ErrJoin means none of the seeds could be joined within JoinTimeout
	// (unreachable, or a different gossip key).
	ErrJoin = errors.New("membership: could not join any seed")
	// ErrShutdown is returned by operations on a Node after Shutdown.
	ErrShutdown = errors.New("membership: node is shut down")
	// ErrLeft is returned by UpdateMeta after Leave.
	ErrLeft = errors.New("membership: node has left the cluster")
)

// Join backoff between attempts to reach the seeds.
const (
	joinBackoffMin = 100 * time.Millisecond
	joinBackoffMax = time.Second
)

// Node is this process's membership in the gossip cluster. Create it with
// Join; end it with Close (or Leave, then Shutdown). Its methods are safe for
// concurrent use.
type Node struct {
	cfg      Config
	log      hclog.Logger
	ml       *memberlist.Memberlist
	listener Listener
	addr     string // gossip address as bound, IP:port

	// localMeta is the encoded Meta served to memberlist by NodeMeta.
	localMeta atomic.Pointer[[]byte]
	metaMu    sync.Mutex // serializes UpdateMeta; guards meta
	meta      Meta

	mu       sync.Mutex // guards members and claimSeq
	members  map[string]Member
	claimSeq uint64 // last Member.claimSeq given out

	// changed carries "membership changed" from the delegates to the
	// dispatch goroutine; 1-buffered, sent to without blocking.
	changed      chan struct{}
	shutdownCh   chan struct{} // closed by Shutdown
	dispatchDone chan struct{} // closed when dispatchLoop returns

	// lifeMu orders Leave and UpdateMeta (read side) before Shutdown (write
	// side): memberlist panics on Leave after Shutdown.
	lifeMu sync.RWMutex
	shut   bool // under lifeMu
	left   atomic.Bool
}

// Join starts a Node with cfg: it binds the gossip port, joins the seeds in
// cfg.Join (retrying until cfg.JoinTimeout or ctx ends) and starts
// delivering backend changes to cfg.Listener. With no seeds the node starts
// a cluster of its own. If seeds are given and none can be joined, Join
// shuts the node down and returns an error wrapping ErrJoin.
func Join(ctx context.Context, cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	meta, err := cfg.Meta.MarshalBinary()
	if err != nil {
		return nil, err
	}
	keyring, err := newKeyring(cfg.Keys)
	if err != nil {
		return nil, err
	}
	n := &Node{
		cfg:          cfg,
		log:          cfg.Logger,
		listener:     cfg.Listener,
		meta:         cfg.Meta,
		members:      make(map[string]Member),
		changed:      make(chan struct{}, 1),
		shutdownCh:   make(chan struct{}),
		dispatchDone: make(chan struct{}),
	}
	n.localMeta.Store(&meta)
	mc, err := cfg.memberlistConfig(&delegate{n: n}, keyring)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("membership: start gossip on %s: %w", cfg.BindAddr, err)
	}
	n.ml = ml
	// memberlist announced this node to the delegate inside Create; take the
	// bound address from that copy rather than from ml.LocalNode, whose
	// fields memberlist may rewrite concurrently.
	n.mu.Lock()
	n.addr = n.members[cfg.NodeName].GossipAddr
	n.mu.Unlock()

	if len(cfg.Join) > 0 {
		if err := n.joinSeeds(ctx); err != nil {
			_ = ml.Shutdown()
			return nil, err
		}
	}
	go n.dispatchLoop()
	n.signal() // deliver the initial set even if nothing changes
	n.log.Info("joined gossip cluster", "node", cfg.NodeName, "addr", n.addr,
		"role", cfg.Meta.Role, "members", ml.NumMembers(), "profile", cfg.Profile,
		"encrypted", len(cfg.Keys) > 0)
	n.warnUnauthenticated()
	n.warnUnadmittable(cfg.Meta)
	return n, nil
}

// joinSeeds contacts the seeds until one answers, JoinTimeout passes or ctx
// ends. memberlist.Join itself does a full state sync with each seed, so on
// success this node already knows the whole cluster.
func (n *Node) joinSeeds(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.JoinTimeout)
	defer cancel()
	backoff := joinBackoffMin
	for attempt := 1; ; attempt++ {
		contacted, err := n.ml.Join(n.cfg.Join)
		if contacted > 0 {
			n.log.Debug("joined seeds", "contacted", contacted, "seeds", len(n.cfg.Join), "attempt", attempt)
			return nil
		}
		n.log.Debug("join attempt failed", "attempt", attempt, "error", err)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (%s, %d attempts, %v): %v",
				ErrJoin, strings.Join(n.cfg.Join, ","), attempt, context.Cause(ctx), err)
		case <-t.C:
		}
		backoff = min(2*backoff, joinBackoffMax)
	}
}

// Name returns this node's name.
func (n *Node) Name() string { return n.cfg.NodeName }

// Addr returns the gossip address this node is bound to and advertised as,
// IP:port (with the real port when BindAddr asked for port 0). Seeds for
// other nodes' Join take this form.
func (n *Node) Addr() string { return n.addr }

// Meta returns the metadata this node currently advertises.
func (n *Node) Meta() Meta {
	n.metaMu.Lock()
	defer n.metaMu.Unlock()
	return n.meta
}

// Members returns the live members this node knows, itself included, sorted
// by name. Suspected members stay listed until declared dead.
func (n *Node) Members() []Member {
	n.mu.Lock()
	out := make([]Member, 0, len(n.members))
	for _, m := range n.members {
		out = append(out, m)
	}
	n.mu.Unlock()
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Backends returns the current canonical backend set: live members with role
// backend that pass admission (see admission.go), sorted by name. It is what
// the Listener was or is about to be given.
func (n *Node) Backends() []Backend {
	b, _ := n.admitted()
	return b
}

// admitted returns the backend set and the backend members refused.
func (n *Node) admitted() ([]Backend, []refusal) {
	n.mu.Lock()
	members := make([]Member, 0, len(n.members))
	for _, m := range n.members {
		members = append(members, m)
	}
	n.mu.Unlock()
	return admit(members, n.cfg.AllowedBackends)
}

// UpdateMeta advertises m in place of the current metadata, e.g. to start
// draining or report health. It waits up to Config.UpdateTimeout for the
// change to be sent to another member; on timeout the change still stands
// and spreads by gossip and the next state sync, and the error says so.
func (n *Node) UpdateMeta(m Meta) error {
	b, err := m.MarshalBinary()
	if err != nil {
		return err
	}
	n.lifeMu.RLock()
	defer n.lifeMu.RUnlock()
	if n.shut {
		return ErrShutdown
	}
	if n.left.Load() {
		return ErrLeft
	}
	n.metaMu.Lock()
	defer n.metaMu.Unlock()
	if m.Addr != n.meta.Addr {
		n.warnUnadmittable(m)
	}
	n.meta = m
	n.localMeta.Store(&b)
	if err := n.ml.UpdateNode(n.cfg.UpdateTimeout); err != nil {
		return fmt.Errorf("membership: metadata updated locally, broadcast not confirmed: %w", err)
	}
	return nil
}

// Leave announces that this node is leaving, so that others drop it at once
// instead of detecting a failure, and waits up to timeout (zero means
// Config.LeaveTimeout) for the announcement to reach another member. The
// node keeps answering gossip until Shutdown. Calling it again is harmless.
func (n *Node) Leave(timeout time.Duration) error {
	if timeout <= 0 {
		timeout = n.cfg.LeaveTimeout
	}
	n.lifeMu.RLock()
	defer n.lifeMu.RUnlock()
	if n.shut {
		return ErrShutdown
	}
	n.left.Store(true)
	if err := n.ml.Leave(timeout); err != nil {
		return fmt.Errorf("membership: leave: %w", err)
	}
	return nil
}

// Shutdown stops gossip and the dispatch goroutine and waits for both,
// including a Listener call in progress; it first waits for a Leave or
// UpdateMeta in progress (each bounded by its timeout). Without a prior
// Leave, the others see this node as failed after the failure detection
// time. Later or concurrent calls wait for the first to finish and return nil.
func (n *Node) Shutdown() error {
	n.lifeMu.Lock()
	if n.shut {
		n.lifeMu.Unlock()
		<-n.dispatchDone
		return nil
	}
	n.shut = true
	err := n.ml.Shutdown()
	close(n.shutdownCh)
	n.lifeMu.Unlock()
	<-n.dispatchDone
	if err != nil {
		return fmt.Errorf("membership: shutdown: %w", err)
	}
	return nil
}

// Close leaves the cluster (waiting up to Config.LeaveTimeout) and shuts
// down. It is safe to call more than once.
func (n *Node) Close() error {
	err := n.Leave(0)
	if errors.Is(err, ErrShutdown) {
		err = nil
	}
	return errors.Join(err, n.Shutdown())
}

// warnUnadmittable warns when this node advertises a backend that peers
// without a matching AllowedBackends entry will refuse: its CLI address is
// not an IP literal on its own gossip IP.
func (n *Node) warnUnadmittable(m Meta) {
	if m.Role != RoleBackend {
		return
	}
	self, _, err := splitIPPort(n.addr)
	if err != nil {
		return
	}
	if cli, err := netip.ParseAddrPort(m.Addr); err == nil && cli.Addr().Unmap() == self {
		return
	}
	n.log.Warn("advertised CLI address is not on this node's gossip address; proxies will ignore this backend unless it is in their allowed backend networks",
		"cli", m.Addr, "gossip", n.addr)
}
