package localpool

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Defaults for Config fields left zero.
const (
	// DefaultReadyTimeout is long because the real CLI unpacks itself on its
	// first start before it listens.
	DefaultReadyTimeout = 60 * time.Second
	DefaultMinBackoff   = 500 * time.Millisecond
	DefaultMaxBackoff   = 30 * time.Second
	DefaultResetAfter   = time.Minute
	DefaultStopTimeout  = 5 * time.Second

	// MaxCount bounds Config.Count: every child is a full CLI process.
	MaxCount = 256

	// homeEnv is the variable that tells the CLI where its state lives.
	homeEnv = "COPILOT_HOME"
)

// Config describes a managed local pool. The zero value of every field but
// Count means the documented default.
type Config struct {
	// Count is the number of children, from 1 to MaxCount.
	Count int

	// Binary is the path or name of the copilot executable. A name without a
	// slash is looked up on PATH. Empty means "copilot" on PATH.
	Binary string

	// Args are extra command-line arguments given to every child after
	// `--headless --port P`. They must not contain --port (the pool owns it)
	// or --headless. Default none.
	Args []string

	// Home is the COPILOT_HOME shared by all children, created (0700) when
	// missing. Empty means children inherit the environment as it is.
	Home string

	// Env holds extra "KEY=VALUE" entries for the children, on top of
	// rpcproxy's own environment; a later entry wins over an earlier one.
	// It must not set COPILOT_HOME when Home is set. Default none.
	Env []string

	// Dir is the children's working directory. Empty means rpcproxy's.
	Dir string

	// ReadyTimeout bounds the time from starting a child to it accepting a
	// TCP connection, at Start and on every restart. Default
	// DefaultReadyTimeout.
	ReadyTimeout time.Duration

	// MinBackoff is the wait before the first restart of a child that died;
	// each further failure doubles it, up to MaxBackoff. Defaults
	// DefaultMinBackoff and DefaultMaxBackoff; MinBackoff may not exceed
	// MaxBackoff.
	MinBackoff, MaxBackoff time.Duration

	// ResetAfter is how long a child must stay up for its restart backoff to
	// start again from MinBackoff. Default DefaultResetAfter.
	ResetAfter time.Duration

	// StopTimeout is how long a child has to exit after SIGTERM before its
	// process group gets SIGKILL, on Close and when a child that never got
	// ready is given up. Default DefaultStopTimeout.
	StopTimeout time.Duration

	// Logger receives the pool's logs, and each child's stdout and stderr
	// lines at debug level. Nil means hclog.NewNullLogger().
	Logger hclog.Logger
}

// Validate reports the first thing wrong with c, or nil if Start may use it.
func (c Config) Validate() error {
	if c.Count < 1 || c.Count > MaxCount {
		return fmt.Errorf("localpool: count %d out of range [1, %d]", c.Count, MaxCount)
	}
	for name, d := range map[string]time.Duration{
		"ready timeout": c.ReadyTimeout, "min backoff": c.MinBackoff, "max backoff": c.MaxBackoff,
		"reset after": c.ResetAfter, "stop timeout": c.StopTimeout,
	} {
		if d < 0 {
			return fmt.Errorf("localpool: negative %s %v", name, d)
		}
	}
	d := c.withDefaults()
	if d.MinBackoff > d.MaxBackoff {
		return fmt.Errorf("localpool: min backoff %v exceeds max backoff %v", d.MinBackoff, d.MaxBackoff)
	}
	for _, a := range c.Args {
		if a == "--port" || strings.HasPrefix(a, "--port=") || a == "--headless" {
			return fmt.Errorf("localpool: argument %q is set by the pool itself", a)
		}
	}
	for _, kv := range c.Env {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return fmt.Errorf("localpool: env entry %q is not KEY=VALUE", kv)
		}
		if k == homeEnv && c.Home != "" {
			return errors.New("localpool: env sets COPILOT_HOME while home is set; set only home")
		}
	}
	return nil
}

// withDefaults returns c with every zero field replaced by its default.
func (c Config) withDefaults() Config {
	if c.ReadyTimeout == 0 {
		c.ReadyTimeout = DefaultReadyTimeout
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = DefaultMinBackoff
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	if c.ResetAfter == 0 {
		c.ResetAfter = DefaultResetAfter
	}
	if c.StopTimeout == 0 {
		c.StopTimeout = DefaultStopTimeout
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	return c
}
