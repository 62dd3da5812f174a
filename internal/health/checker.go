package health

import (
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/rpcproxy/rpcproxy/internal/router"
)

// State is a backend's routing state.
type State uint8

const (
	// StateUp: healthy, takes new sessions.
	StateUp State = iota
	// StateDown: failed its checks or lost a connection; not routable.
	StateDown
	// StateDraining: healthy but takes no new sessions; its sessions move away.
	StateDraining
)

func (s State) String() string {
	switch s {
	case StateUp:
		return "up"
	case StateDown:
		return "down"
	case StateDraining:
		return "draining"
	}
	return "unknown"
}

// Config tunes the checker. Zero fields take the defaults named.
type Config struct {
	// Interval between active checks of one backend. Default 1s.
	Interval time.Duration
	// Timeout of one check (dial, connect, ping). Default 1s.
	Timeout time.Duration
	// Rise is the number of consecutive good checks that bring a down
	// backend up. Default 2.
	Rise int
	// Fall is the number of consecutive failed checks that take an up
	// backend down. Default 2. A lost connection takes it down at once.
	Fall int
	// ProtocolVersion is the protocol version every backend must report;
	// zero learns it from the first backend that answers.
	ProtocolVersion int
	// OnInfo, if set, receives each new connect result of a backend (the
	// proxy answers its clients with it). Called from check goroutines.
	OnInfo func(json.RawMessage)
	// OnChange, if set, is told of every state change, after the ring is
	// rebuilt. Called from the goroutine that made the change, never while
	// the checker's lock is held; it must not block for long.
	OnChange func(backend string, from, to State)
	// Logger; nil discards.
	Logger hclog.Logger
}

func (c Config) withDefaults() Config {
	if c.Interval <= 0 {
		c.Interval = time.Second
	}
	if c.Timeout <= 0 {
		c.Timeout = time.Second
	}
	if c.Rise <= 0 {
		c.Rise = 2
	}
	if c.Fall <= 0 {
		c.Fall = 2
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	return c
}

// Checker is the one place that owns backend states. It is safe for
// concurrent use.
type Checker struct {
	cfg   Config
	log   hclog.Logger
	table *router.Table

	// usable is a snapshot of the usable backends, replaced on every
	// change: Usable runs on every routed session request, so it takes no lock.
	usable atomic.Pointer[map[string]bool]

	mu       sync.Mutex
	closed   bool
	protocol int
	hosts    map[string]*host
	wg       sync.WaitGroup
}

// host is one backend's state and its check goroutine's controls.
type host struct {
	name string          // b.Name, which never changes
	b    *router.Backend // replaced by Update; read under Checker.mu
	// state: up or down, as checks and reports say.
	state State
	// draining: drained by the operator (configuration); agentDraining:
	// by the backend's agent (gossip). Either one drains it.
	draining      bool
	agentDraining bool
	// agentDown: the backend's agent reports its CLI unhealthy (gossip).
	agentDown bool
	good      int // consecutive good checks
	bad       int // consecutive failed checks
	stop      chan struct{}
	kick      chan struct{} // check now (after a passive failure)
}

// usable reports whether the host answers: its sessions may stay.
func (h *host) usable() bool { return h.state == StateUp && !h.agentDown }

// routable reports whether new sessions may go to the host.
func (h *host) routable() bool { return h.usable() && !h.drained() }

func (h *host) drained() bool { return h.draining || h.agentDraining }

func (h *host) effective() State {
	switch {
	case !h.usable():
		return StateDown
	case h.drained():
		return StateDraining
	}
	return StateUp
}

// New returns a checker that keeps table's ring equal to the routable backends.
func New(cfg Config, table *router.Table) *Checker {
	cfg = cfg.withDefaults()
	return &Checker{cfg: cfg, log: cfg.Logger, table: table, protocol: cfg.ProtocolVersion, hosts: make(map[string]*host)}
}

// Add starts checking b. A new backend starts up (routable), as a load
// balancer's configured servers do; its first check follows at once.
func (c *Checker) Add(b *router.Backend) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return fmt.Errorf("health: checker closed")
	}
	if _, ok := c.hosts[b.Name]; ok {
		c.mu.Unlock()
		return fmt.Errorf("health: backend %q added twice", b.Name)
	}
	h := &host{name: b.Name, b: b, state: StateUp, stop: make(chan struct{}), kick: make(chan struct{}, 1)}
	c.hosts[b.Name] = h
	c.wg.Add(1)
	c.rebuildLocked()
	c.mu.Unlock()
	go c.checkLoop(h)
	return nil
}

// Remove stops checking a backend and takes it off the ring; to OnChange
// it goes down, so its sessions move on their next request.
func (c *Checker) Remove(name string) {
	c.mu.Lock()
	h, ok := c.hosts[name]
	var from State
	if ok {
		from = h.effective()
		delete(c.hosts, name)
		close(h.stop)
		c.rebuildLocked()
	}
	c.mu.Unlock()
	if ok && from != StateDown {
		c.changed(name, from, StateDown)
	}
}

// ReportFailure is a passive check: a failed dial, a reset or closed
// connection, or a request past its timeout takes the backend down at once,
// without waiting for the next probe. The active checks bring it back.
func (c *Checker) ReportFailure(name string, err error) {
	c.mu.Lock()
	h, ok := c.hosts[name]
	if !ok || h.state == StateDown {
		c.mu.Unlock()
		return
	}
	from := h.effective()
	h.state, h.good, h.bad = StateDown, 0, 0
	if from == StateDown { // already off the ring by its agent's report
		c.mu.Unlock()
		return
	}
	c.rebuildLocked()
	c.mu.Unlock()
	c.log.Warn("backend down (passive)", "backend", name, "error", err)
	select {
	case h.kick <- struct{}{}:
	default:
	}
	c.changed(name, from, StateDown)
}

// SetDraining marks a backend draining (no new sessions) or not, as its
// operator's configuration says; the change is logged by=operator.
func (c *Checker) SetDraining(name string, draining bool) error {
	return c.update(name, "operator", func(h *host) { h.draining = draining })
}

// SetAgentDraining records the draining flag a backend's own agent
// publishes (gossip); the change is logged by=agent. The backend drains
// while either its operator or its agent says so.
func (c *Checker) SetAgentDraining(name string, draining bool) error {
	return c.update(name, "agent", func(h *host) { h.agentDraining = draining })
}

// Update replaces a backend's address, token and weight with b's (b.Name
// names it) without cutting anything: its state is kept, the ring is
// rebuilt with the new weight, and the active probe reconnects with the new
// token. Sessions placed there stay unless the new weights give their key
// to another backend, in which case they move at their next turn boundary.
func (c *Checker) Update(b *router.Backend) error {
	c.mu.Lock()
	h, ok := c.hosts[b.Name]
	if !ok {
		c.mu.Unlock()
		return fmt.Errorf("health: unknown backend %q", b.Name)
	}
	h.b = b
	c.rebuildLocked()
	c.mu.Unlock()
	select {
	case h.kick <- struct{}{}:
	default:
	}
	return nil
}

// backend returns a host's current backend.
func (c *Checker) backend(h *host) *router.Backend {
	c.mu.Lock()
	defer c.mu.Unlock()
	return h.b
}

// update applies an external change to a host's flags, rebuilding the ring
// and reporting the change when its effective state moved.
func (c *Checker) update(name, source string, change func(*host)) error {
	c.mu.Lock()
	h, ok := c.hosts[name]
	if !ok {
		c.mu.Unlock()
		return fmt.Errorf("health: unknown backend %q", name)
	}
	from := h.effective()
	change(h)
	to := h.effective()
	if from != to {
		c.rebuildLocked()
	}
	c.mu.Unlock()
	if from != to {
		c.log.Info("backend state", "backend", name, "from", from.String(), "to", to.String(), "by", source)
		c.changed(name, from, to)
	}
	return nil
}

// State returns a backend's state.
func (c *Checker) State(name string) (State, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h, ok := c.hosts[name]
	if !ok {
		return StateDown, false
	}
	return h.effective(), true
}

// Usable reports whether a backend answers: up, or draining (which still
// serves the sessions it has until they move).
func (c *Checker) Usable(name string) bool {
	m := c.usable.Load()
	return m != nil && (*m)[name]
}

// SetAgentHealthy records what a backend's own agent says of its CLI
// (gossip): an unhealthy report takes the backend down, whatever the
// proxy's probes say, until the agent reports it healthy again.
func (c *Checker) SetAgentHealthy(name string, healthy bool) error {
	return c.update(name, "agent", func(h *host) { h.agentDown = !healthy })
}

// Close stops every check goroutine and waits for them. Idempotent.
func (c *Checker) Close() {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		for _, h := range c.hosts {
			close(h.stop)
		}
		c.hosts = map[string]*host{}
	}
	c.mu.Unlock()
	c.wg.Wait()
}

// changed reports a state change; the ring was rebuilt under the lock that
// made it, so rebuilds are applied in the order the changes happened.
func (c *Checker) changed(name string, from, to State) {
	if c.cfg.OnChange != nil {
		c.cfg.OnChange(name, from, to)
	}
}

// rebuildLocked sets the ring to the routable backends; c.mu is held. The
// ring sorts its input, so the map's order does not matter.
func (c *Checker) rebuildLocked() {
	var routable []*router.Backend
	usable := make(map[string]bool, len(c.hosts))
	for _, h := range c.hosts {
		if h.routable() {
			routable = append(routable, h.b)
		}
		if h.usable() {
			usable[h.name] = true
		}
	}
	c.usable.Store(&usable)
	if err := c.table.Set(routable); err != nil {
		c.log.Error("cannot rebuild ring", "error", err)
	}
}

// checkLoop probes one backend every interval (at once when kicked) until stopped.
func (c *Checker) checkLoop(h *host) {
	defer c.wg.Done()
	p := &probe{b: c.backend(h)}
	defer p.close()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-timer.C:
		case <-h.kick:
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
		}
		if b := c.backend(h); b != p.b {
			// Updated: reconnect with its new address or token.
			p.close()
			p.b = b
		}
		fresh, err := p.check(c.cfg.Timeout)
		if err == nil && fresh {
			err = c.checkProtocol(p.info)
			if err != nil {
				p.close()
			} else if c.cfg.OnInfo != nil {
				c.cfg.OnInfo(p.info)
			}
		}
		c.record(h, err)
		timer.Reset(c.cfg.Interval)
	}
}

// checkProtocol makes sure every backend speaks the pool's protocol version.
func (c *Checker) checkProtocol(info json.RawMessage) error {
	v := protocolVersion(info)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.protocol == 0 {
		c.protocol = v
	}
	if v != c.protocol {
		return fmt.Errorf("protocol version %d, the pool speaks %d", v, c.protocol)
	}
	return nil
}

// record applies one check's outcome with rise/fall hysteresis.
func (c *Checker) record(h *host, err error) {
	c.mu.Lock()
	if c.hosts[h.name] != h {
		c.mu.Unlock()
		return
	}
	from := h.effective()
	if err == nil {
		h.good, h.bad = h.good+1, 0
		if h.state == StateDown && h.good >= c.cfg.Rise {
			h.state = StateUp
		}
	} else {
		h.good, h.bad = 0, h.bad+1
		if h.state == StateUp && h.bad >= c.cfg.Fall {
			h.state = StateDown
		}
	}
	to := h.effective()
	if from != to {
		c.rebuildLocked()
	}
	c.mu.Unlock()
	if from == to {
		return
	}
	if to == StateDown {
		c.log.Warn("backend down", "backend", h.name, "error", err)
	} else {
		c.log.Info("backend state", "backend", h.name, "from", from.String(), "to", to.String())
	}
	c.changed(h.name, from, to)
}
