package fakecli

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Server is one fake CLI process listening on TCP. Its methods are safe for
// concurrent use.
type Server struct {
	cfg     Config
	ln      net.Listener
	store   *Store
	fillers [][]byte // JSON strings of EventSizes lengths, built once

	done      chan struct{} // closed by Close
	closeOnce sync.Once
	closeErr  error
	wg        sync.WaitGroup // every goroutine the server started

	frozen atomic.Bool
	gateMu sync.Mutex
	thawed chan struct{} // closed by Thaw; replaced by Freeze

	// mu guards the process state below and the session/attachment state of
	// every conn. It is never held while waiting on a connection's queue.
	mu       sync.Mutex
	conns    map[*conn]struct{}
	sessions map[string]*session
	// Provider owners. The CLI keeps an owner after its connection closes,
	// so these are never cleared.
	fsProvider  *conn
	llmProvider *conn

	accepted      atomic.Uint64
	requests      atomic.Uint64
	notifications atomic.Uint64
	dropped       atomic.Uint64
	turns         atomic.Uint64
	activeTurns   atomic.Int64
	pendingCalls  atomic.Int64
}

// Stats is a snapshot of a Server's counters, for leak and placement tests.
type Stats struct {
	Conns          int    // connections open now
	Accepted       uint64 // connections accepted since Listen
	Sessions       int    // sessions loaded now
	Requests       uint64 // client requests answered
	Notifications  uint64 // notifications queued to clients
	Dropped        uint64 // lifecycle notifications lost to a full queue
	Turns          uint64 // turns completed
	ActiveTurns    int64  // turns running now
	PendingReplies int64  // server→client requests and tool calls awaiting an answer
}

// Listen starts a Server on addr, e.g. "127.0.0.1:0".
func Listen(addr string, cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("fakecli: listen %s: %w", addr, err)
	}
	return Serve(ln, cfg)
}

// Serve starts a Server on a listener the caller opened; the Server owns ln
// from then on and closes it in Close.
func Serve(ln net.Listener, cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		ln.Close()
		return nil, err
	}
	cfg = cfg.withDefaults()
	s := &Server{
		cfg:      cfg,
		ln:       ln,
		store:    cfg.Store,
		done:     make(chan struct{}),
		thawed:   make(chan struct{}),
		conns:    make(map[*conn]struct{}),
		sessions: make(map[string]*session),
	}
	close(s.thawed)
	s.fillers = make([][]byte, len(cfg.EventSizes))
	for i, n := range cfg.EventSizes {
		s.fillers[i] = fillerJSON(n)
	}
	s.wg.Add(1)
	go s.acceptLoop()
	return s, nil
}

// Addr returns the listening address, "127.0.0.1:port".
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Name returns the configured name.
func (s *Server) Name() string { return s.cfg.Name }

// Store returns the Store the server persists sessions in.
func (s *Server) Store() *Store { return s.store }

// Close stops the listener, closes every connection, ends every turn and
// waits for all of the server's goroutines. It is safe to call more than
// once; later calls return nil. Like a killed process, it answers nothing
// more; the Store keeps what was persisted.
func (s *Server) Close() error {
	first := false
	s.closeOnce.Do(func() {
		first = true
		close(s.done)
		if err := s.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			s.closeErr = err
		}
		s.mu.Lock()
		for c := range s.conns {
			c.nc.Close()
		}
		s.mu.Unlock()
	})
	s.wg.Wait()
	if first {
		return s.closeErr
	}
	return nil
}

// closing reports whether Close has begun.
func (s *Server) closing() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// Freeze makes the server stop answering, like a process stopped with
// SIGSTOP: connections are still accepted by the kernel, but nothing is
// read, answered or sent until Thaw. Turns in progress stall too.
func (s *Server) Freeze() {
	s.gateMu.Lock()
	defer s.gateMu.Unlock()
	if s.frozen.Load() {
		return
	}
	s.thawed = make(chan struct{})
	s.frozen.Store(true)
}

// Thaw undoes Freeze; everything held back proceeds.
func (s *Server) Thaw() {
	s.gateMu.Lock()
	defer s.gateMu.Unlock()
	if !s.frozen.Load() {
		return
	}
	s.frozen.Store(false)
	close(s.thawed)
}

// gate blocks while the server is frozen. It returns false when stop or the
// server closes first.
func (s *Server) gate(stop <-chan struct{}) bool {
	if !s.frozen.Load() {
		return true
	}
	s.gateMu.Lock()
	thawed := s.thawed
	s.gateMu.Unlock()
	select {
	case <-thawed:
		return true
	case <-stop:
		return false
	case <-s.done:
		return false
	}
}

// Stats returns a snapshot of the server's counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	nconns, nsessions := len(s.conns), len(s.sessions)
	s.mu.Unlock()
	return Stats{
		Conns:          nconns,
		Accepted:       s.accepted.Load(),
		Sessions:       nsessions,
		Requests:       s.requests.Load(),
		Notifications:  s.notifications.Load(),
		Dropped:        s.dropped.Load(),
		Turns:          s.turns.Load(),
		ActiveTurns:    s.activeTurns.Load(),
		PendingReplies: s.pendingCalls.Load(),
	}
}

// Sessions returns the IDs of the sessions loaded on this server, sorted.
func (s *Server) Sessions() []string {
	s.mu.Lock()
	ids := make([]string, 0, len(s.sessions))
	for id := range s.sessions {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	slices.Sort(ids)
	return ids
}

func (s *Server) acceptLoop() {
	defer s.wg.Done()
	var backoff time.Duration
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			select {
			case <-s.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				s.cfg.Logger.Error("listener closed under the server", "error", err)
				return
			}
			// Temporary failures (EMFILE and the like): back off, retry.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.cfg.Logger.Warn("accept failed; retrying", "error", err, "backoff", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
				continue
			case <-s.done:
				t.Stop()
				return
			}
		}
		backoff = 0
		s.accepted.Add(1)
		c := newConn(s, nc)
		s.mu.Lock()
		select {
		case <-s.done:
			s.mu.Unlock()
			nc.Close()
			return
		default:
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(2)
		go c.readLoop()
		go c.writeLoop()
	}
}
