package localpool

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/hashicorp/go-hclog"
)

// Pool is a running managed local pool. Its methods are safe for concurrent
// use.
type Pool struct {
	cfg    Config // with defaults
	log    hclog.Logger
	binary string   // resolved executable
	env    []string // every child's environment

	children []*child

	done        chan struct{} // closed by Close: every goroutine watches it
	supervisors sync.WaitGroup
	background  sync.WaitGroup // the spawner and the event goroutine

	spawnRequests chan spawnRequest
	spawnerQuit   chan struct{} // closed after every supervisor has ended

	mu     sync.Mutex
	state  []Event // latest event of each child
	dirty  []bool  // state[i] not yet delivered on events
	cursor int     // where takeDirty looks first

	notify chan struct{} // capacity 1: state changed
	events chan Event    // capacity Count

	closeOnce sync.Once
	closeErr  error
}

// spawnRequest asks the spawner goroutine to start cmd.
type spawnRequest struct {
	cmd   *exec.Cmd
	reply chan error // capacity 1
}

// Start validates cfg, starts Count children and waits until each accepts
// TCP connections. If any child fails to (it exits, or ReadyTimeout passes)
// or ctx ends first, Start stops every child it started and returns the
// error. ctx bounds only the start-up: the pool then runs until Close.
func Start(ctx context.Context, cfg Config) (*Pool, error) {
	if !supported {
		return nil, errors.New("localpool: managed pool needs a Unix system")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	binary, err := FindBinary(cfg.Binary)
	if err != nil {
		return nil, err
	}
	env := os.Environ()
	if cfg.Home != "" {
		home, err := filepath.Abs(cfg.Home)
		if err != nil {
			return nil, fmt.Errorf("localpool: home %s: %w", cfg.Home, err)
		}
		if err := os.MkdirAll(home, 0o700); err != nil {
			return nil, fmt.Errorf("localpool: create home: %w", err)
		}
		env = append(env, homeEnv+"="+home)
	}
	env = append(env, cfg.Env...) // exec keeps the last of duplicate keys
	ports, err := reservePorts(cfg.Count)
	if err != nil {
		return nil, err
	}

	p := &Pool{
		cfg:           cfg,
		log:           cfg.Logger,
		binary:        binary,
		env:           env,
		done:          make(chan struct{}),
		spawnRequests: make(chan spawnRequest),
		spawnerQuit:   make(chan struct{}),
		state:         make([]Event, cfg.Count),
		dirty:         make([]bool, cfg.Count),
		notify:        make(chan struct{}, 1),
		events:        make(chan Event, cfg.Count),
	}
	p.log.Info("starting local pool", "count", cfg.Count, "binary", binary, "home", cfg.Home)
	p.background.Add(2)
	go p.runSpawner()
	go p.deliverEvents()

	first := make(chan error, cfg.Count)
	for i, port := range ports {
		c := &child{
			pool:    p,
			index:   i,
			log:     p.log.With("child", i),
			port:    port,
			backoff: backoff{min: cfg.MinBackoff, max: cfg.MaxBackoff},
		}
		p.children = append(p.children, c)
		p.state[i] = Event{Child: i, Addr: addrOf(port)}
		p.supervisors.Add(1)
		go c.run(first)
	}
	for i := 0; i < cfg.Count; i++ {
		select {
		case err := <-first:
			if err != nil {
				return nil, errors.Join(err, p.Close())
			}
		case <-ctx.Done():
			return nil, errors.Join(fmt.Errorf("localpool: start: %w", ctx.Err()), p.Close())
		}
	}
	p.log.Info("local pool ready", "addrs", p.Addrs())
	return p, nil
}

// Addrs returns the address of every child, "127.0.0.1:port", indexed by
// child. A child keeps its address across restarts unless its port was taken
// while it was down; Events reports such a move and whether a child is up.
func (p *Pool) Addrs() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	addrs := make([]string, len(p.state))
	for i, ev := range p.state {
		addrs[i] = ev.Addr
	}
	return addrs
}

// Status returns the latest Event of every child, indexed by child.
func (p *Pool) Status() []Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Event(nil), p.state...)
}

// Events returns the channel on which children going up and down are
// reported, starting with each child's Up from Start. A pool goroutine sends
// on it; when the consumer lags, it receives only the latest state of each
// child (see Event.Restarts), so it never delays the pool. The channel is
// closed by Close. Not reading it is fine.
func (p *Pool) Events() <-chan Event { return p.events }

// Close stops every child (SIGTERM to its process group, SIGKILL after
// StopTimeout), waits for them and for every pool goroutine, and closes the
// Events channel. It is idempotent and returns the same result every time:
// an error only if a child could not be reaped.
func (p *Pool) Close() error {
	p.closeOnce.Do(func() {
		close(p.done)
		p.supervisors.Wait()
		close(p.spawnerQuit)
		p.background.Wait()
		for _, c := range p.children {
			p.closeErr = errors.Join(p.closeErr, c.stopErrs)
		}
		p.log.Info("local pool stopped")
	})
	return p.closeErr
}

// spawn starts cmd on the spawner goroutine.
func (p *Pool) spawn(cmd *exec.Cmd) error {
	req := spawnRequest{cmd: cmd, reply: make(chan error, 1)}
	select {
	case p.spawnRequests <- req:
	case <-p.done:
		return errClosed
	}
	// The spawner answers every request it takes and outlives every
	// supervisor, so this wait lasts one fork and exec. It must not give up
	// on Close: the caller has to learn of a process it now owns.
	if err := <-req.reply; err != nil {
		return fmt.Errorf("run %s: %w", cmd.Path, err)
	}
	return nil
}

// runSpawner starts every child of the pool. It locks itself to its OS thread
// for the pool's whole life because a child's parent death signal fires when
// the thread that forked it ends, and a Go thread can end while the process
// goes on (https://go.dev/issue/27505). Close ends it only after every child
// is reaped; the thread then exits with it.
func (p *Pool) runSpawner() {
	defer p.background.Done()
	runtime.LockOSThread()
	for {
		select {
		case req := <-p.spawnRequests:
			req.reply <- req.cmd.Start()
		case <-p.spawnerQuit:
			return
		}
	}
}
