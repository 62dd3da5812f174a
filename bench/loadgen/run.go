package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// Result is what one run measured inside its window.
type Result struct {
	// Window is the length of the measured window.
	Window time.Duration
	// Setup is the time taken to dial, handshake and create every session.
	Setup time.Duration
	// Conns and Sessions are the connections and sessions that played.
	Conns, Sessions int
	// Turns and Requests completed inside the window (a turn is a
	// session.send answered and its session.idle received; requests are
	// every answered request: sends, pings, getMessages).
	Turns, Requests uint64
	// Traffic is what crossed the client connections inside the window.
	Traffic Snapshot
	// BadTurns counts turns whose event count was not Config.ExpectEvents.
	BadTurns uint64
	// RequestLatency is the time from writing a request to reading its
	// answer; TurnLatency from writing session.send to reading session.idle.
	// Only operations that started and ended inside the window count.
	RequestLatency, TurnLatency *Histogram
	// Failures lists errors that ended sessions or connections early.
	Failures []string
}

// Rate divides n by the window in seconds.
func (r *Result) Rate(n uint64) float64 {
	if r.Window <= 0 {
		return 0
	}
	return float64(n) / r.Window.Seconds()
}

// Frames is the number of frames in both directions inside the window.
func (r *Result) Frames() uint64 { return r.Traffic.FramesIn + r.Traffic.FramesOut }

// Bytes is the number of body bytes in both directions inside the window.
func (r *Result) Bytes() uint64 { return r.Traffic.BytesIn + r.Traffic.BytesOut }

// Run plays cfg's load and returns what it measured. It returns an error
// when the load could not start (a dial, handshake or session.create
// failed); failures after the start are listed in Result.Failures.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	clk := clock{epoch: time.Now()}
	win := newWindow()

	setupStart := time.Now()
	conns, err := dialAll(ctx, &cfg, clk, win)
	defer func() {
		for _, c := range conns {
			c.close()
		}
		for _, c := range conns {
			<-c.done
		}
	}()
	if err != nil {
		return nil, err
	}

	// Each session creates itself, then waits for every other: turns start
	// together once the whole load is in place.
	begin := make(chan struct{})
	stop := make(chan struct{})
	var stopOnce sync.Once
	halt := func() { stopOnce.Do(func() { close(stop) }) }
	defer halt()
	nSessions := cfg.Conns * cfg.SessionsPerConn
	created := make(chan error, nSessions)
	played := make(chan error, nSessions)   // a session's turns are over
	finished := make(chan error, nSessions) // and it has deleted itself
	for _, c := range conns {
		for _, s := range c.sessions {
			go func() {
				err := s.create(stop)
				created <- err
				if err == nil {
					select {
					case <-begin:
						err = s.play(stop)
					case <-stop:
					}
				}
				played <- err
				var delErr error
				if err == nil && cfg.DeleteSessions {
					// After the window: deletes are not part of the load.
					<-stop
					delErr = s.remove()
				}
				finished <- delErr
			}()
		}
	}
	for range nSessions {
		select {
		case err := <-created:
			if err != nil {
				halt()
				return nil, fmt.Errorf("loadgen: session.create: %w", err)
			}
		case <-ctx.Done():
			halt()
			return nil, ctx.Err()
		}
	}
	res := &Result{Conns: cfg.Conns, Sessions: nSessions, Setup: time.Since(setupStart)}

	t0 := clk.now()
	win.start.Store(t0 + int64(cfg.Warmup))
	if cfg.Duration > 0 {
		win.end.Store(t0 + int64(cfg.Warmup+cfg.Duration))
	}

	// The window: counters sampled at its edges.
	var before, after Snapshot
	opened := cfg.Warmup <= 0
	if opened {
		// No warm-up: the window opens before the first turn starts, so
		// every request of the run is inside it.
		before = snapshot(conns)
		if cfg.OnWindow != nil {
			cfg.OnWindow(true)
		}
	}
	close(begin)
	remaining := nSessions
	var failures []string
	collect := func(err error) {
		remaining--
		if err != nil && len(failures) < 20 {
			failures = append(failures, err.Error())
		}
	}
	waitUntil := func(t int64) bool {
		timer := time.NewTimer(time.Duration(t - clk.now()))
		defer timer.Stop()
		for {
			select {
			case <-timer.C:
				return true
			case err := <-played:
				collect(err)
				if remaining == 0 {
					return false
				}
			case <-ctx.Done():
				return false
			}
		}
	}
	started := opened || waitUntil(win.start.Load())
	if started && !opened {
		before = snapshot(conns)
		if cfg.OnWindow != nil {
			cfg.OnWindow(true)
		}
	}
	if started && cfg.Duration > 0 {
		waitUntil(win.end.Load())
	}
	if started && cfg.Duration == 0 {
		// Turn-bounded run: the window ends with the last session.
		for remaining > 0 && ctx.Err() == nil {
			select {
			case err := <-played:
				collect(err)
			case <-ctx.Done():
			}
		}
	}
	end := clk.now()
	if started {
		win.end.Store(min(win.end.Load(), end))
		after = snapshot(conns)
		if cfg.OnWindow != nil {
			cfg.OnWindow(false)
		}
		res.Window = time.Duration(win.end.Load() - win.start.Load())
	}
	halt()

	// Sessions finish their turn in progress and delete themselves.
	grace := time.NewTimer(2*cfg.OpTimeout + 5*time.Second)
	defer grace.Stop()
	for left := nSessions; left > 0; left-- {
		select {
		case err := <-finished:
			if err != nil && len(failures) < 20 && !errors.Is(err, net.ErrClosed) {
				failures = append(failures, err.Error())
			}
		case <-grace.C:
			failures = append(failures, fmt.Sprintf("%d sessions did not stop in time", left))
			left = 1
		}
	}
	for _, c := range conns {
		c.close()
	}
	res.RequestLatency, res.TurnLatency = new(Histogram), new(Histogram)
	for _, c := range conns {
		<-c.done
		res.RequestLatency.Merge(c.reqHist)
		res.TurnLatency.Merge(c.turnHist)
		res.Turns += c.stats.turns.Load()
		res.Requests += c.stats.requests.Load()
		res.BadTurns += c.stats.badTurns.Load()
	}
	res.Traffic = after.sub(before)
	res.Failures = failures
	if !started {
		return res, fmt.Errorf("loadgen: the run ended before its window began: %v", failures)
	}
	return res, ctx.Err()
}

func snapshot(conns []*conn) Snapshot {
	var s Snapshot
	for _, c := range conns {
		c.stats.addTo(&s)
	}
	return s
}

// dialAll opens cfg.Conns connections, SetupParallel at a time, each with
// its reader running and its handshake done. On error it returns the
// connections opened so far, for the caller to close.
func dialAll(ctx context.Context, cfg *Config, clk clock, win *window) ([]*conn, error) {
	conns := make([]*conn, cfg.Conns)
	sem := make(chan struct{}, cfg.SetupParallel)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for i := range conns {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			mu.Lock()
			firstErr = cmpErr(firstErr, ctx.Err())
			mu.Unlock()
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := dialOne(ctx, i, cfg, clk, win)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				firstErr = cmpErr(firstErr, err)
				return
			}
			conns[i] = c
		}()
	}
	wg.Wait()
	opened := conns[:0:0]
	for _, c := range conns {
		if c != nil {
			opened = append(opened, c)
		}
	}
	return opened, firstErr
}

func cmpErr(old, err error) error {
	if old != nil {
		return old
	}
	return err
}

func dialOne(ctx context.Context, i int, cfg *Config, clk clock, win *window) (*conn, error) {
	target := cfg.Targets[i%len(cfg.Targets)]
	d := net.Dialer{Timeout: cfg.DialTimeout}
	nc, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		return nil, fmt.Errorf("loadgen: dial %s: %w", target, err)
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	c := newConn(i, nc, cfg, clk, win)
	c.reqHist, c.turnHist = new(Histogram), new(Histogram)
	c.start()
	if err := c.connect(cfg.Token, cfg.DialTimeout); err != nil {
		c.close()
		<-c.done
		return nil, errors.Join(fmt.Errorf("loadgen: handshake with %s", target), err)
	}
	return c, nil
}
