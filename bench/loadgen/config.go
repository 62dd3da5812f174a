package loadgen

import (
	"errors"
	"fmt"
	"time"
)

// Defaults for Config fields left zero.
const (
	DefaultWarmup      = 2 * time.Second
	DefaultOpTimeout   = 30 * time.Second
	DefaultDialTimeout = 5 * time.Second
	DefaultPrompt      = "Summarize the README in two sentences."
	DefaultModel       = "fake-small"
	// DefaultMaxFrame bounds a frame read from the server under test.
	DefaultMaxFrame = 64 << 20
)

// Config describes one load run. Connection i dials Targets[i%len(Targets)],
// so with several targets (direct mode) connections are spread round robin.
type Config struct {
	// Targets are the host:port addresses dialed. Required.
	Targets []string
	// Conns is the number of client connections (C). Required, > 0.
	Conns int
	// SessionsPerConn is the number of sessions on each connection (S).
	// Required, > 0, at most 65535.
	SessionsPerConn int
	// ConnectOnly makes OpenIdle's connections stop after connect: no
	// session.create (an SDK client started with no session yet).
	ConnectOnly bool
	// Turns bounds the turns each session plays; 0 plays until Duration ends.
	Turns int
	// Duration is the measured window. With Turns set it may be 0: the run
	// then ends when every session has played its turns.
	Duration time.Duration
	// Warmup is played before the measured window and not counted. Zero
	// means DefaultWarmup; negative means none.
	Warmup time.Duration
	// Think is the mean pause before each turn, drawn uniformly from
	// [Think/2, 3*Think/2]. The first turn of a session waits a uniform
	// [0, Think), so sessions do not move in step. Zero means none.
	Think time.Duration
	// PingsPerTurn is the number of ping requests a session sends after each turn.
	PingsPerTurn int
	// GetMessagesEvery makes a session ask session.getMessages after every
	// Nth turn. Zero means never.
	GetMessagesEvery int
	// ExpectEvents, when > 0, is the number of session.event notifications a
	// turn must bring (counting the closing session.idle); turns with another
	// count are reported in Result.BadTurns.
	ExpectEvents int
	// Prompt is the session.send prompt. Empty means DefaultPrompt.
	Prompt string
	// Token is sent in connect when not empty.
	Token string
	// RunID prefixes every session ID ("<RunID>-c<conn>-s<session>"), so runs
	// against the same backends do not collide. Empty means "bench".
	RunID string
	// SessionID, when set, names session i of connection conn instead of
	// "<RunID>-c<conn>-s<i>" (the bench picks ids that land on given
	// backends of a proxy's ring). Ids must be unique.
	SessionID func(conn, i int) string
	// DeleteSessions sends session.delete for every session at the end, so
	// backends do not keep the run's history.
	DeleteSessions bool
	// OpTimeout bounds the wait for one response or one turn. Zero means
	// DefaultOpTimeout.
	OpTimeout time.Duration
	// DialTimeout bounds one dial and handshake. Zero means DefaultDialTimeout.
	DialTimeout time.Duration
	// SetupParallel bounds the connections dialed at once. Zero means 64.
	SetupParallel int
	// OnWindow, when set, is called at the start (start=true) and the end of
	// the measured window, on the goroutine running Run: the bench samples
	// the proxy's CPU time there. It must return quickly.
	OnWindow func(start bool)
}

// ErrInvalidConfig is wrapped by every error Validate returns.
var ErrInvalidConfig = errors.New("loadgen: invalid config")

// Validate reports a Config that cannot run.
func (c Config) Validate() error {
	switch {
	case len(c.Targets) == 0:
		return fmt.Errorf("%w: no targets", ErrInvalidConfig)
	case c.Conns <= 0:
		return fmt.Errorf("%w: Conns %d", ErrInvalidConfig, c.Conns)
	case c.SessionsPerConn <= 0 || c.SessionsPerConn > 0xffff:
		return fmt.Errorf("%w: SessionsPerConn %d out of [1, 65535]", ErrInvalidConfig, c.SessionsPerConn)
	case c.Turns < 0, c.PingsPerTurn < 0, c.GetMessagesEvery < 0, c.ExpectEvents < 0:
		return fmt.Errorf("%w: negative count", ErrInvalidConfig)
	case c.Duration < 0, c.Think < 0, c.OpTimeout < 0, c.DialTimeout < 0:
		return fmt.Errorf("%w: negative duration", ErrInvalidConfig)
	case c.Duration == 0 && c.Turns == 0:
		return fmt.Errorf("%w: neither Duration nor Turns bounds the run", ErrInvalidConfig)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Warmup == 0 {
		c.Warmup = DefaultWarmup
	}
	if c.Warmup < 0 {
		c.Warmup = 0
	}
	if c.Prompt == "" {
		c.Prompt = DefaultPrompt
	}
	if c.RunID == "" {
		c.RunID = "bench"
	}
	if c.OpTimeout == 0 {
		c.OpTimeout = DefaultOpTimeout
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.SetupParallel <= 0 {
		c.SetupParallel = 64
	}
	return c
}
