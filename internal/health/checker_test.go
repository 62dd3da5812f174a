package health

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/rpcproxy/rpcproxy/internal/fakecli"
	"github.com/rpcproxy/rpcproxy/internal/router"
	"github.com/rpcproxy/rpcproxy/internal/testlog"
)

type transitions struct {
	mu  sync.Mutex
	log []string
}

func (tr *transitions) add(name string, from, to State) {
	tr.mu.Lock()
	tr.log = append(tr.log, name+":"+from.String()+"->"+to.String())
	tr.mu.Unlock()
}

func (tr *transitions) count() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return len(tr.log)
}

func startFake(t *testing.T, cfg fakecli.Config) *fakecli.Server {
	t.Helper()
	f, err := fakecli.Listen("127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func newChecker(t *testing.T, tr *transitions, interval time.Duration) (*Checker, *router.Table) {
	t.Helper()
	table := router.NewTable(router.RingConfig{})
	c := New(Config{Interval: interval, Timeout: interval, OnChange: tr.add}, table)
	t.Cleanup(c.Close)
	return c, table
}

func waitState(t *testing.T, c *Checker, name string, want State) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if st, _ := c.State(name); st == want {
			return
		}
		if time.Now().After(deadline) {
			st, _ := c.State(name)
			t.Fatalf("%s: state %s, want %s", name, st, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A backend that accepts TCP but answers nothing goes down after fall
// checks and comes back after rise checks; the ring follows.
func TestFreezeAndThaw(t *testing.T) {
	var tr transitions
	c, table := newChecker(t, &tr, 30*time.Millisecond)
	a, b := startFake(t, fakecli.Config{Name: "a"}), startFake(t, fakecli.Config{Name: "b"})
	c.Add(&router.Backend{Name: a.Addr(), Addr: a.Addr()})
	c.Add(&router.Backend{Name: b.Addr(), Addr: b.Addr()})
	if table.Ring().Len() != 2 {
		t.Fatalf("ring has %d backends", table.Ring().Len())
	}
	a.Freeze()
	waitState(t, c, a.Addr(), StateDown)
	if table.Ring().Len() != 1 || table.Ring().Backends()[0].Name != b.Addr() {
		t.Fatal("frozen backend still on the ring")
	}
	a.Thaw()
	waitState(t, c, a.Addr(), StateUp)
	if table.Ring().Len() != 2 {
		t.Fatal("thawed backend not back on the ring")
	}
}

// Rise/fall hysteresis: a backend whose checks alternate between passing
// and failing never changes state, so its sessions do not bounce.
func TestFlappingDoesNotChangeState(t *testing.T) {
	var tr transitions
	c, _ := newChecker(t, &tr, time.Hour) // no probes: outcomes are fed by hand
	h := &host{name: "x", b: &router.Backend{Name: "x"}, state: StateUp, stop: make(chan struct{}), kick: make(chan struct{}, 1)}
	c.hosts["x"] = h
	fail := errors.New("probe failed")
	for i := 0; i < 20; i++ {
		c.record(h, fail, false)
		c.record(h, nil, false)
	}
	if st, _ := c.State("x"); st != StateUp || tr.count() != 0 {
		t.Fatalf("flapping changed state: %s, transitions %v", st, tr.log)
	}
	// Two failures in a row take it down; one success does not bring it back.
	c.record(h, fail, false)
	c.record(h, fail, false)
	c.record(h, nil, false)
	c.record(h, fail, false)
	c.record(h, nil, false)
	if st, _ := c.State("x"); st != StateDown {
		t.Fatalf("state %s after fall, want down", st)
	}
	c.record(h, nil, false)
	if st, _ := c.State("x"); st != StateUp {
		t.Fatalf("state %s after rise, want up", st)
	}
}

// A live connection's failure is only a suspicion: the backend stays up
// while its probe passes, and a new View is published only on a change.
func TestSuspectOfHealthyBackendChangesNothing(t *testing.T) {
	var tr transitions
	c, table := newChecker(t, &tr, time.Hour) // no periodic probe: only the kicked one
	a := startFake(t, fakecli.Config{})
	c.Add(&router.Backend{Name: a.Addr(), Addr: a.Addr()})
	v := c.View()
	probes := a.Stats().Accepted
	c.Suspect(a.Addr(), errors.New("one client's upstream: i/o timeout"))
	// The suspicion is confirmed on a fresh connection: wait for it.
	deadline := time.Now().Add(5 * time.Second)
	for a.Stats().Accepted <= probes {
		if time.Now().After(deadline) {
			t.Fatal("Suspect did not probe")
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	if st, _ := c.State(a.Addr()); st != StateUp || table.Ring().Len() != 1 || !c.Usable(a.Addr()) {
		t.Fatalf("healthy backend after Suspect: state %s", st)
	}
	select {
	case <-v.Changed():
		t.Fatal("a View was published with no state change")
	default:
	}
}

// A suspicion confirmed by a refused probe takes the backend down at once,
// long before fall × interval; probes bring it back.
func TestSuspectOfDeadBackendTakesItDownAtOnce(t *testing.T) {
	var tr transitions
	table := router.NewTable(router.RingConfig{})
	c := New(Config{Interval: time.Hour, Timeout: time.Second, Fall: 5, OnChange: tr.add}, table)
	t.Cleanup(c.Close)
	a := startFake(t, fakecli.Config{})
	addr := a.Addr()
	c.Add(&router.Backend{Name: addr, Addr: addr})
	waitProbe(t, a)
	v := c.View()
	a.Close()
	c.Suspect(addr, errors.New("connection reset"))
	select {
	case <-v.Changed():
	case <-time.After(5 * time.Second):
		t.Fatal("no new View after a confirmed failure")
	}
	if st, _ := c.State(addr); st != StateDown || table.Ring().Len() != 0 || c.Usable(addr) || c.View().States[addr] != StateDown {
		t.Fatalf("confirmed failure: state %s", st)
	}
}

func waitProbe(t *testing.T, f *fakecli.Server) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for f.Stats().Accepted == 0 {
		if time.Now().After(deadline) {
			t.Fatal("backend never probed")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A backend speaking another protocol version than the pool is not routable.
func TestProtocolMismatch(t *testing.T) {
	var tr transitions
	table := router.NewTable(router.RingConfig{})
	c := New(Config{Interval: 30 * time.Millisecond, Timeout: 30 * time.Millisecond, ProtocolVersion: 3, OnChange: tr.add}, table)
	t.Cleanup(c.Close)
	old := startFake(t, fakecli.Config{ProtocolVersion: 2})
	c.Add(&router.Backend{Name: old.Addr(), Addr: old.Addr()})
	waitState(t, c, old.Addr(), StateDown)
}

func TestDrainingLeavesRingButStaysUsable(t *testing.T) {
	var tr transitions
	c, table := newChecker(t, &tr, time.Hour)
	a, b := startFake(t, fakecli.Config{}), startFake(t, fakecli.Config{})
	c.Add(&router.Backend{Name: a.Addr(), Addr: a.Addr()})
	c.Add(&router.Backend{Name: b.Addr(), Addr: b.Addr()})
	if err := c.SetDraining(a.Addr(), true); err != nil {
		t.Fatal(err)
	}
	if st, _ := c.State(a.Addr()); st != StateDraining || !c.Usable(a.Addr()) || table.Ring().Len() != 1 {
		t.Fatalf("draining: state %s usable %v ring %d", st, c.Usable(a.Addr()), table.Ring().Len())
	}
	if err := c.SetDraining("nope", true); err == nil {
		t.Fatal("draining an unknown backend succeeded")
	}
	c.Remove(b.Addr())
	if table.Ring().Len() != 0 {
		t.Fatal("removed backend still on the ring")
	}
}

// A drain says who asked for it: the operator (configuration) or the
// backend's agent (gossip). Either one drains; the agent's "not draining"
// does not undo the operator's drain.
func TestDrainSaysWhoDrained(t *testing.T) {
	var out testlog.Buffer
	table := router.NewTable(router.RingConfig{})
	c := New(Config{Interval: time.Hour, Logger: hclog.New(&hclog.LoggerOptions{Output: &out})}, table)
	t.Cleanup(c.Close)
	for _, name := range []string{"a:1", "b:1"} {
		if err := c.Add(&router.Backend{Name: name, Addr: name}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.SetAgentDraining("a:1", true); err != nil {
		t.Fatal(err)
	}
	if err := c.SetDraining("b:1", true); err != nil {
		t.Fatal(err)
	}
	logs := out.String()
	for _, want := range []string{"backend=a:1 from=up to=draining by=agent", "backend=b:1 from=up to=draining by=operator"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
	if err := c.SetAgentDraining("b:1", false); err != nil {
		t.Fatal(err)
	}
	if st, _ := c.State("b:1"); st != StateDraining {
		t.Errorf("the agent's flag undid the operator's drain: %s", st)
	}
}

// Update applies a new token and weight in place: the probe reconnects
// with the token, the ring carries the weight, and the backend is not taken
// down on the way.
func TestUpdateAppliesTokenAndWeight(t *testing.T) {
	var tr transitions
	c, table := newChecker(t, &tr, 20*time.Millisecond)
	f := startFake(t, fakecli.Config{Token: "new"})
	name := f.Addr()
	if err := c.Add(&router.Backend{Name: name, Addr: name, Token: "old"}); err != nil {
		t.Fatal(err)
	}
	waitState(t, c, name, StateDown) // refused: wrong token
	if err := c.Update(&router.Backend{Name: name, Addr: name, Token: "new", Weight: 3}); err != nil {
		t.Fatal(err)
	}
	waitState(t, c, name, StateUp)
	bs := table.Ring().Backends()
	if len(bs) != 1 || bs[0].Weight != 3 || bs[0].Token != "new" {
		t.Fatalf("ring after update: %+v", bs)
	}
	downs := tr.count()
	if err := c.Update(&router.Backend{Name: name, Addr: name, Token: "new", Weight: 5}); err != nil {
		t.Fatal(err)
	}
	if bs := table.Ring().Backends(); len(bs) != 1 || bs[0].Weight != 5 {
		t.Fatalf("ring after weight update: %+v", bs)
	}
	// Several probe rounds: the update must not have taken it down.
	time.Sleep(100 * time.Millisecond)
	if st, _ := c.State(name); st != StateUp || tr.count() != downs {
		t.Fatalf("state %s, transitions %v after a weight update", st, tr.log)
	}
	if err := c.Update(&router.Backend{Name: "absent:1"}); err == nil {
		t.Error("Update of an unknown backend succeeded")
	}
}

// Status reports each backend's state and its last check.
func TestStatusReportsLastCheck(t *testing.T) {
	var tr transitions
	c, _ := newChecker(t, &tr, 20*time.Millisecond)
	a := startFake(t, fakecli.Config{})
	c.Add(&router.Backend{Name: a.Addr(), Addr: a.Addr(), Weight: 3})
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := c.Status()
		if len(st) == 1 && !st[0].LastCheck.IsZero() && len(st[0].Info) > 0 {
			if st[0].State != StateUp || st[0].Weight != 3 || st[0].LastError != "" || st[0].LastLatency <= 0 || protocolVersion(st[0].Info) != 3 {
				t.Fatalf("status: %+v", st[0])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no check reported: %+v", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
	a.Close()
	deadline = time.Now().Add(5 * time.Second)
	for st := c.Status(); st[0].State != StateDown || st[0].LastError == ""; st = c.Status() {
		if time.Now().After(deadline) {
			t.Fatalf("dead backend: %+v", st[0])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// An admin drain holds whatever the configuration or the agent say next
// (a reload or a gossip update sets SetDraining again), and clearing it
// leaves a backend they drain draining.
func TestAdminDrainIsKeptApart(t *testing.T) {
	var tr transitions
	c, table := newChecker(t, &tr, time.Hour)
	a := startFake(t, fakecli.Config{})
	c.Add(&router.Backend{Name: a.Addr(), Addr: a.Addr()})
	if err := c.SetAdminDrain(a.Addr(), true); err != nil {
		t.Fatal(err)
	}
	if err := c.SetDraining(a.Addr(), false); err != nil {
		t.Fatal(err)
	}
	if st, _ := c.State(a.Addr()); st != StateDraining || table.Ring().Len() != 0 {
		t.Fatalf("admin drain undone by SetDraining(false): %s, ring %d", st, table.Ring().Len())
	}
	if s := c.Status(); !s[0].AdminDrain || s[0].Draining {
		t.Fatalf("status %+v", s[0])
	}
	c.SetDraining(a.Addr(), true)
	c.SetAdminDrain(a.Addr(), false)
	if st, _ := c.State(a.Addr()); st != StateDraining {
		t.Fatalf("undrain over the API undid the configuration's drain: %s", st)
	}
	c.SetDraining(a.Addr(), false)
	if st, _ := c.State(a.Addr()); st != StateUp || table.Ring().Len() != 1 {
		t.Fatalf("no drain left: %s, ring %d", st, table.Ring().Len())
	}
	if err := c.SetAdminDrain("nope", true); !errors.Is(err, ErrUnknownBackend) {
		t.Fatalf("unknown backend: %v", err)
	}
}
