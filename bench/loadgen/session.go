package loadgen

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"
)

// session is one SDK session on a connection, played by its own goroutine
// like an application calling sendAndWait in a loop. It has at most one
// request in flight, so the reader finds it by the index in the id.
type session struct {
	c   *conn
	idx int
	id  string

	want      atomic.Uint64 // id of the request in flight, 0 when none
	reqStart  atomic.Int64  // clock time the request in flight was sent
	turnStart atomic.Int64  // clock time the turn in progress was sent

	resp chan bool     // the answer to the request in flight (true: an error)
	idle chan struct{} // session.idle of the turn in progress

	turnEvents int // events of the turn in progress; reader-owned

	// Session goroutine state.
	seq   uint64
	body  []byte
	timer *time.Timer
	rng   *rand.Rand
}

func newSession(c *conn, idx int, id string) *session {
	return &session{
		c:    c,
		idx:  idx,
		id:   id,
		resp: make(chan bool, 1),
		idle: make(chan struct{}, 1),
		rng:  rand.New(rand.NewPCG(uint64(c.idx), uint64(idx))),
	}
}

var (
	errRefused = errors.New("request answered with an error")
	errStopped = errors.New("stopped")
)

// request sends method with params (a JSON object, or nil for none, with
// the session's id added first when withSession is set) and waits for its
// answer.
func (s *session) request(method string, withSession bool, params []byte, stop <-chan struct{}) error {
	s.seq++
	id := requestID(s.seq, s.idx)
	b := append(s.body[:0], `{"jsonrpc":"2.0","id":`...)
	b = strconv.AppendUint(b, id, 10)
	b = append(b, `,"method":"`...)
	b = append(b, method...)
	b = append(b, `","params":{`...)
	if withSession {
		b = append(b, `"sessionId":"`...)
		b = append(b, s.id...)
		b = append(b, '"')
		if len(params) > 0 {
			b = append(b, ',')
		}
	}
	b = append(b, params...)
	b = append(b, "}}"...)
	s.body = b

	select { // a late answer to a request that timed out
	case <-s.resp:
	default:
	}
	s.want.Store(id)
	s.reqStart.Store(s.c.clk.now())
	if err := s.c.write(b); err != nil {
		return err
	}
	s.arm(s.c.cfg.OpTimeout)
	select {
	case failed := <-s.resp:
		if failed {
			return fmt.Errorf("%s %s: %w", method, s.id, errRefused)
		}
		return nil
	case <-s.c.done:
		return s.c.err
	case <-s.timer.C:
		s.want.Store(0)
		return fmt.Errorf("%s %s: no answer in %v", method, s.id, s.c.cfg.OpTimeout)
	case <-stop:
		return errStopped
	}
}

// arm (re)starts the session's timer.
func (s *session) arm(d time.Duration) {
	if s.timer == nil {
		s.timer = time.NewTimer(d)
		return
	}
	s.timer.Reset(d)
}

// pause waits d unless stop closes first; it reports false when stopped.
func (s *session) pause(d time.Duration, stop <-chan struct{}) bool {
	if d <= 0 {
		return true
	}
	s.arm(d)
	select {
	case <-s.timer.C:
		return true
	case <-stop:
		s.timer.Stop()
		return false
	}
}

// create is session.create, as the SDK sends it (a streaming session on a
// named model, the client choosing the id).
func (s *session) create(stop <-chan struct{}) error {
	params := append([]byte(`"model":`), strconv.Quote(DefaultModel)...)
	params = append(params, `,"streaming":true,"requestPermission":false,"tools":[]`...)
	return s.request("session.create", true, params, stop)
}

// turn plays one sendAndWait: session.send, then the events up to
// session.idle.
func (s *session) turn(prompt []byte, stop <-chan struct{}) error {
	select { // the end of a turn that timed out
	case <-s.idle:
	default:
	}
	s.turnStart.Store(s.c.clk.now())
	if err := s.request("session.send", true, prompt, stop); err != nil {
		return err
	}
	s.arm(s.c.cfg.OpTimeout)
	select {
	case <-s.idle:
		return nil
	case <-s.c.done:
		return s.c.err
	case <-s.timer.C:
		return fmt.Errorf("turn of %s: no session.idle in %v", s.id, s.c.cfg.OpTimeout)
	}
}

// play runs the session's turns until stop closes or its turns are done.
// Only errors that end the session are returned; refused requests are
// counted by the reader and the session carries on.
func (s *session) play(stop <-chan struct{}) error {
	cfg := s.c.cfg
	prompt := append([]byte(`"prompt":`), strconv.Quote(cfg.Prompt)...)
	prompt = append(prompt, `,"mode":"enqueue"`...)
	if cfg.Think > 0 && !s.pause(time.Duration(s.rng.Int64N(int64(cfg.Think))), stop) {
		return nil
	}
	for n := 1; cfg.Turns == 0 || n <= cfg.Turns; n++ {
		select {
		case <-stop:
			return nil
		default:
		}
		// The turn is finished even once stop closes: backends are left
		// between turns, and a refused turn has no events to wait for.
		if err := s.turn(prompt, nil); err != nil && !errors.Is(err, errRefused) {
			return err
		}
		for range cfg.PingsPerTurn {
			if err := s.request("ping", false, nil, stop); err != nil && !errors.Is(err, errRefused) {
				return ignoreStop(err)
			}
		}
		if cfg.GetMessagesEvery > 0 && n%cfg.GetMessagesEvery == 0 {
			if err := s.request("session.getMessages", true, nil, stop); err != nil && !errors.Is(err, errRefused) {
				return ignoreStop(err)
			}
		}
		if cfg.Think > 0 {
			d := cfg.Think/2 + time.Duration(s.rng.Int64N(int64(cfg.Think)))
			if !s.pause(d, stop) {
				return nil
			}
		}
	}
	return nil
}

func ignoreStop(err error) error {
	if errors.Is(err, errStopped) {
		return nil
	}
	return err
}

// remove deletes the session on its backend.
func (s *session) remove() error {
	err := s.request("session.delete", true, nil, nil)
	if errors.Is(err, errRefused) {
		return nil
	}
	return err
}
