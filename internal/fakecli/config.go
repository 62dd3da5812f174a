package fakecli

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Defaults for Config fields left zero.
const (
	DefaultProtocolVersion = 3
	DefaultVersion         = "1.0.102"
	// DefaultEventsPerTurn gives two assistant.message_delta events per turn.
	DefaultEventsPerTurn = 8
	// DefaultEventSize is the filler length of a delta when EventSizes is empty.
	DefaultEventSize = 32
	// DefaultReplyTimeout bounds the wait for a client's answer to a
	// userInput.request or an external tool call.
	DefaultReplyTimeout = 10 * time.Second
	// DefaultWriteQueue is the number of messages queued for one connection
	// before senders wait for its writer.
	DefaultWriteQueue = 1024
)

// fixedTurnEvents is the number of session.event notifications every plain
// turn carries besides its deltas: user.message, assistant.turn_start,
// assistant.message, assistant.turn_end, assistant.idle, session.idle.
const fixedTurnEvents = 6

// Config describes one fake CLI server. The zero value is a working server
// that accepts any client, with a private Store.
type Config struct {
	// Name identifies this backend in results (status.get, session.create,
	// session.resume) and in every assistant answer. Empty means "fakecli".
	Name string
	// Token, when set, is required in connect, like COPILOT_CONNECTION_TOKEN.
	// Empty accepts any client.
	Token string
	// ProtocolVersion reported by connect, ping and status.get. Zero means
	// DefaultProtocolVersion.
	ProtocolVersion int
	// Version reported by connect and status.get. Empty means DefaultVersion.
	Version string
	// Store holds persisted sessions. Servers given the same Store share
	// history like CLI processes sharing one COPILOT_HOME. Nil means a
	// private Store.
	Store *Store
	// EventsPerTurn is the number of session.event notifications a plain
	// turn emits, assistant.message_delta events filling the count beyond
	// the six fixed ones. Zero means DefaultEventsPerTurn; values below six
	// give no deltas. ask: and tool: turns add their own events.
	EventsPerTurn int
	// EventSizes are the lengths in bytes of the deltaContent text of
	// successive deltas, cycled through. Empty means DefaultEventSize.
	EventSizes []int
	// ReplyTimeout bounds the wait for a client's answer to a server→client
	// request or a tool call. Zero means DefaultReplyTimeout.
	ReplyTimeout time.Duration
	// WriteQueue bounds the messages queued for one connection's writer.
	// Zero means DefaultWriteQueue.
	WriteQueue int
	// Logger receives connection-level logs. Nil means no logging.
	Logger hclog.Logger
	// NoLifecycle turns session.lifecycle notifications off. The CLI has no
	// such switch; the bench uses it to measure what their broadcast costs.
	NoLifecycle bool
	// Hold, when set, is asked about every request: a positive duration
	// answers that request after it, on a goroutine of its own, while the
	// connection's other requests are answered as usual (a slow call,
	// unlike Freeze, which holds everything). For tests.
	Hold func(method string, params json.RawMessage) time.Duration
}

// ErrInvalidConfig is wrapped by every error Validate returns.
var ErrInvalidConfig = errors.New("fakecli: invalid config")

// Validate reports a Config that cannot be used.
func (c Config) Validate() error {
	switch {
	case c.ProtocolVersion < 0:
		return fmt.Errorf("%w: negative ProtocolVersion %d", ErrInvalidConfig, c.ProtocolVersion)
	case c.EventsPerTurn < 0:
		return fmt.Errorf("%w: negative EventsPerTurn %d", ErrInvalidConfig, c.EventsPerTurn)
	case c.ReplyTimeout < 0:
		return fmt.Errorf("%w: negative ReplyTimeout", ErrInvalidConfig)
	case c.WriteQueue < 0:
		return fmt.Errorf("%w: negative WriteQueue %d", ErrInvalidConfig, c.WriteQueue)
	}
	for _, n := range c.EventSizes {
		if n < 0 || n > 16<<20 {
			return fmt.Errorf("%w: EventSizes entry %d out of range [0, 16 MiB]", ErrInvalidConfig, n)
		}
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Name == "" {
		c.Name = "fakecli"
	}
	if c.ProtocolVersion == 0 {
		c.ProtocolVersion = DefaultProtocolVersion
	}
	if c.Version == "" {
		c.Version = DefaultVersion
	}
	if c.Store == nil {
		c.Store = NewStore()
	}
	if c.EventsPerTurn == 0 {
		c.EventsPerTurn = DefaultEventsPerTurn
	}
	if len(c.EventSizes) == 0 {
		c.EventSizes = []int{DefaultEventSize}
	}
	if c.ReplyTimeout == 0 {
		c.ReplyTimeout = DefaultReplyTimeout
	}
	if c.WriteQueue == 0 {
		c.WriteQueue = DefaultWriteQueue
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	return c
}
