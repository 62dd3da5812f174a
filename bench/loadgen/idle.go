package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// IdleSet is a set of idle SDK connections: each did connect and
// SessionsPerConn session.creates (one when unset), and then only reads what
// the server pushes (lifecycle notifications). The bench measures what they
// cost a proxy to hold.
type IdleSet struct {
	conns       []*conn
	connectOnly bool
}

// OpenIdle opens cfg.Conns idle connections to cfg.Targets (round robin),
// cfg.SetupParallel at a time, using Targets, Conns, SessionsPerConn, Token,
// RunID, DialTimeout, OpTimeout and SetupParallel. On error every connection
// opened is closed.
func OpenIdle(ctx context.Context, cfg Config) (*IdleSet, error) {
	if cfg.SessionsPerConn == 0 {
		cfg.SessionsPerConn = 1
	}
	if cfg.Duration == 0 && cfg.Turns == 0 {
		cfg.Turns = 1 // not used; satisfies Validate
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	clk := clock{epoch: time.Now()}
	win := newWindow()

	set := &IdleSet{conns: make([]*conn, cfg.Conns), connectOnly: cfg.ConnectOnly}
	sem := make(chan struct{}, cfg.SetupParallel)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for i := range set.conns {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := openIdleOne(ctx, i, &cfg, clk, win)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if len(errs) < 5 {
					errs = append(errs, err)
				}
				return
			}
			set.conns[i] = c
		}()
	}
	wg.Wait()
	if err := errors.Join(append(errs, ctx.Err())...); err != nil {
		set.Close()
		return nil, err
	}
	return set, nil
}

func openIdleOne(ctx context.Context, i int, cfg *Config, clk clock, win *window) (*conn, error) {
	target := cfg.Targets[i%len(cfg.Targets)]
	d := net.Dialer{Timeout: cfg.DialTimeout}
	nc, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		return nil, fmt.Errorf("loadgen: dial %s: %w", target, err)
	}
	c := newConn(i, nc, cfg, clk, win)
	c.start()
	err = c.connect(cfg.Token, cfg.DialTimeout)
	for _, s := range c.sessions {
		if err != nil || cfg.ConnectOnly {
			break
		}
		err = s.create(nil)
	}
	if err != nil {
		c.close()
		<-c.done
		return nil, fmt.Errorf("loadgen: idle connection %d to %s: %w", i, target, err)
	}
	return c, nil
}

// Len is the number of connections in the set.
func (s *IdleSet) Len() int { return len(s.conns) }

// Alive is the number of connections the server has not closed.
func (s *IdleSet) Alive() int {
	n := 0
	for _, c := range s.conns {
		if c == nil {
			continue
		}
		select {
		case <-c.done:
		default:
			n++
		}
	}
	return n
}

// Received sums the traffic the idle connections have seen.
func (s *IdleSet) Received() Snapshot {
	var snap Snapshot
	for _, c := range s.conns {
		if c != nil {
			c.stats.addTo(&snap)
		}
	}
	return snap
}

// Close closes every connection and waits for their readers. Safe to call twice.
func (s *IdleSet) Close() {
	for _, c := range s.conns {
		if c != nil {
			c.close()
		}
	}
	for _, c := range s.conns {
		if c != nil {
			<-c.done
		}
	}
}

// Sessions is the number of sessions the set holds.
func (s *IdleSet) Sessions() int {
	if s.connectOnly {
		return 0
	}
	n := 0
	for _, c := range s.conns {
		if c != nil {
			n += len(c.sessions)
		}
	}
	return n
}
