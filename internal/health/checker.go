package health

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
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
	// backend down. Default 2. A probe that follows a Suspect report and
	// finds the backend refusing or resetting connections takes it down at
	// once.
	Fall int
	// ProtocolVersion is the protocol version every backend must report;
	// zero learns it from the first backend that answers.
	ProtocolVersion int
	// OnInfo, if set, receives each new connect result of a backend (the
	// proxy answers its clients with it). Called from check goroutines.
	OnInfo func(json.RawMessage)
	// OnChange, if set, is told of every state change, after the ring is
	// rebuilt and the new View published. Called from the goroutine that
	// made the change, never while the checker's lock is held; it must not
	// block and must do no I/O for others (readers of the View watch
	// View.Changed instead).
	OnChange func(backend string, from, to State)
	// OnCheck, if set, is told of every active check's outcome (for
	// metrics): how long it took and its error, nil when it passed. Called
	// from the backend's check goroutine; it must not block.
	OnCheck func(backend string, took time.Duration, err error)
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

	// view is the published snapshot of backend states, replaced on every
	// change: Usable runs on every routed session request, so it takes no lock.
	view atomic.Pointer[View]

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
	// by the backend's agent (gossip); adminDrain: over the admin API.
	// Each is set by its own source alone, so a reload or a gossip update
	// never undoes another's; any one drains the backend.
	draining      bool
	agentDraining bool
	adminDrain    bool
	// agentDown: the backend's agent reports its CLI unhealthy (gossip).
	agentDown bool
	// The last check: when it started, how long it took, its error, and
	// the backend's last connect result (version, protocolVersion).
	lastCheck   time.Time
	lastLatency time.Duration
	lastErr     error
	info        json.RawMessage
	good        int // consecutive good checks
	bad         int // consecutive failed checks
	stop        chan struct{}
	kick        chan struct{} // check now (after a Suspect report)
	// suspect: a live connection to the backend failed; the next probe
	// decides. A refused or reset probe then takes it down at once.
	suspect bool
}

// View is one immutable snapshot of the backends' states, published by the
// checker on every change. Readers load it (Checker.View) and may wait on
// Changed for the next one; nothing in it is ever modified.
type View struct {
	// Gen counts published views, starting at 1.
	Gen uint64
	// Usable holds the backends that answer (up or draining).
	Usable map[string]bool
	// States holds every backend's effective state.
	States  map[string]State
	changed chan struct{}
}

// Changed is closed when a newer View replaces this one.
func (v *View) Changed() <-chan struct{} { return v.changed }

// usable reports whether the host answers: its sessions may stay.
func (h *host) usable() bool { return h.state == StateUp && !h.agentDown }

// routable reports whether new sessions may go to the host.
func (h *host) routable() bool { return h.usable() && !h.drained() }

func (h *host) drained() bool { return h.draining || h.agentDraining || h.adminDrain }

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
	c := &Checker{cfg: cfg, log: cfg.Logger, table: table, protocol: cfg.ProtocolVersion, hosts: make(map[string]*host)}
	c.view.Store(&View{Usable: map[string]bool{}, States: map[string]State{}, changed: make(chan struct{})})
	return c
}

// View returns the current snapshot of backend states.
func (c *Checker) View() *View { return c.view.Load() }

// Changed is closed at the next state change (the current View's Changed).
func (c *Checker) Changed() <-chan struct{} { return c.view.Load().changed }

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

// Suspect is a passive report: a live connection to the backend failed (a
// reset, a failed dial, a request past its timeout). It does not change the
// backend's state by itself, since one client's failure says little about
// the backend: it asks for a probe at once, and that probe decides. A probe
// that finds the backend refusing or resetting connections takes it down
// at once (failover after a crash stays immediate); one that times out
// counts as a failed check like any other; one that passes changes nothing.
func (c *Checker) Suspect(name string, err error) {
	c.mu.Lock()
	h, ok := c.hosts[name]
	if ok {
		h.suspect = true
	}
	c.mu.Unlock()
	if !ok {
		return
	}
	c.log.Debug("live connection failed; probing now", "backend", name, "error", err)
	select {
	case h.kick <- struct{}{}:
	default:
	}
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

// SetAdminDrain marks a backend draining over the admin API, or clears that
// mark. It is kept apart from SetDraining (the configuration's and the
// agent's say), so a reload or a gossip update does not undo it, and
// clearing it leaves a backend its configuration drains draining.
func (c *Checker) SetAdminDrain(name string, draining bool) error {
	return c.update(name, "admin", func(h *host) { h.adminDrain = draining })
}

// ErrUnknownBackend is returned for a backend the checker does not have.
var ErrUnknownBackend = errors.New("health: unknown backend")

// update applies an external change to a host's flags, rebuilding the ring
// and reporting the change when its effective state moved.
func (c *Checker) update(name, source string, change func(*host)) error {
	c.mu.Lock()
	h, ok := c.hosts[name]
	if !ok {
		c.mu.Unlock()
		return fmt.Errorf("%w %q", ErrUnknownBackend, name)
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

// BackendStatus is what the checker knows of one backend, for operators.
type BackendStatus struct {
	Name     string
	Addr     string
	Source   string // router.Backend.Source: static, pool or gossip
	Weight   int
	State    State // effective: down, draining or up
	Draining bool  // marked draining (by its configuration or its agent)
	// AdminDrain: marked draining over the admin API (SetAdminDrain).
	AdminDrain bool
	// AgentDown: the backend's gossip agent reports its CLI unhealthy.
	AgentDown bool
	// LastCheck is when the last probe started (zero before the first);
	// LastLatency how long it took; LastError its error, "" when it passed.
	LastCheck   time.Time
	LastLatency time.Duration
	LastError   string
	// Info is the backend's last connect result (version, protocolVersion).
	Info json.RawMessage
}

// Status returns every backend's status, sorted by name.
func (c *Checker) Status() []BackendStatus {
	c.mu.Lock()
	out := make([]BackendStatus, 0, len(c.hosts))
	for _, h := range c.hosts {
		st := BackendStatus{Name: h.b.Name, Addr: h.b.Addr, Source: h.b.Source, Weight: max(h.b.Weight, 1), State: h.effective(),
			Draining: h.draining || h.agentDraining, AdminDrain: h.adminDrain, AgentDown: h.agentDown, LastCheck: h.lastCheck, LastLatency: h.lastLatency, Info: h.info}
		if h.lastErr != nil {
			st.LastError = h.lastErr.Error()
		}
		out = append(out, st)
	}
	c.mu.Unlock()
	slices.SortFunc(out, func(a, b BackendStatus) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Usable reports whether a backend answers: up, or draining (which still
// serves the sessions it has until they move).
func (c *Checker) Usable(name string) bool {
	return c.view.Load().Usable[name]
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
		c.rebuildLocked()
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

// rebuildLocked sets the ring to the routable backends and publishes a new
// View; c.mu is held. The ring is set first, so a reader woken by the new
// View finds the new ring. The ring sorts its input, so the map's order
// does not matter.
func (c *Checker) rebuildLocked() {
	var routable []*router.Backend
	v := &View{Usable: make(map[string]bool, len(c.hosts)), States: make(map[string]State, len(c.hosts)), changed: make(chan struct{})}
	for _, h := range c.hosts {
		if h.routable() {
			routable = append(routable, h.b)
		}
		if h.usable() {
			v.Usable[h.name] = true
		}
		v.States[h.name] = h.effective()
	}
	if err := c.table.Set(routable); err != nil {
		c.log.Error("cannot rebuild ring", "error", err)
	}
	old := c.view.Load()
	v.Gen = old.Gen + 1
	c.view.Store(v)
	close(old.changed)
}

// checkLoop probes one backend every interval (at once when kicked) until stopped.
func (c *Checker) checkLoop(h *host) {
	defer c.wg.Done()
	defer func() {
		// A probe handles a peer's bytes: a bug there must not take the
		// process down. The backend goes down and is no longer checked.
		if r := recover(); r != nil {
			c.log.Error("health check panicked; backend taken down", "backend", h.name, "panic", r, "stack", string(debug.Stack()))
			c.record(h, fmt.Errorf("health check panicked: %v", r), true)
		}
	}()
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
		// The suspicion this probe answers is taken now: one reported while
		// it runs is left for the next probe, which starts after it.
		c.mu.Lock()
		suspect, b := h.suspect, h.b
		h.suspect = false
		c.mu.Unlock()
		if suspect || b != p.b {
			// Confirm a live connection's failure on a fresh connection: the
			// probe's own may outlive what broke the others. An updated
			// backend (new address or token) needs a new connection too.
			p.close()
			p.b = b
		}
		started := time.Now()
		fresh, err := p.check(c.cfg.Timeout)
		if err == nil && fresh {
			err = c.checkProtocol(p.info)
			if err != nil {
				p.close()
			} else if c.cfg.OnInfo != nil {
				c.cfg.OnInfo(p.info)
			}
		}
		took := time.Since(started)
		if c.cfg.OnCheck != nil {
			c.cfg.OnCheck(h.b.Name, took, err)
		}
		c.mu.Lock()
		h.lastCheck, h.lastLatency, h.lastErr = started, took, err
		if fresh && err == nil {
			h.info = p.info
		}
		c.mu.Unlock()
		c.record(h, err, suspect && hardFailure(err))
		// Checks start every interval, however long each took: a frozen
		// backend is down within fall × interval + timeout.
		timer.Reset(max(0, c.cfg.Interval-time.Since(started)))
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

// record applies one check's outcome with rise/fall hysteresis. With force
// a failure takes the backend down at once: a probe that answered a Suspect
// report and found the backend refusing or resetting connections.
func (c *Checker) record(h *host, err error, force bool) {
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
		if h.state == StateUp && (h.bad >= c.cfg.Fall || force) {
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

// hardFailure reports an error that says the backend is gone rather than
// slow: the connection was refused, reset or closed by the peer. A timeout
// is not one (a busy backend times out too).
func hardFailure(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}
