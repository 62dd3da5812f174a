package membership

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"
)

// Defaults for Config fields left zero.
const (
	DefaultBindAddr      = "127.0.0.1:7946"
	DefaultJoinTimeout   = 10 * time.Second
	DefaultLeaveTimeout  = 5 * time.Second
	DefaultUpdateTimeout = 5 * time.Second
	// MaxNodeNameLen bounds Config.NodeName; the name travels in most gossip
	// messages. A peer with a longer name is never admitted as a backend.
	MaxNodeNameLen = 128
	// DefaultInsecureWarnEvery is how often a node gossiping without keys on
	// a non-loopback address (Config.Insecure) repeats its warning.
	DefaultInsecureWarnEvery = time.Hour
)

var (
	// ErrInvalidConfig is wrapped by every error from Config.Validate.
	ErrInvalidConfig = errors.New("membership: invalid config")
	// ErrUnauthenticated is wrapped (with ErrInvalidConfig) by Validate when
	// BindAddr is reachable from other hosts, no Keys are set and Insecure
	// is false: anyone who can reach the port could join and be routed to.
	ErrUnauthenticated = errors.New("membership: gossip on a non-loopback address without keys")
)

// Profile names a set of memberlist timings.
type Profile string

const (
	// ProfileLAN is memberlist.DefaultLANConfig unchanged: probe every 1s,
	// 500ms probe timeout, SuspicionMult 4, gossip every 200ms, full state
	// sync every 30s. A crashed node is declared dead after about 5-8s in a
	// small cluster (measured 7.1s with 5 nodes; up to ~25s when peers are
	// slow to confirm the suspicion); a graceful leave is seen in ~200ms and
	// a join, by gossip, in ~400ms.
	ProfileLAN Profile = "lan"
	// ProfileFast is tuned for one LAN (or one host) of proxies and CLI hosts,
	// where round trips are well under a millisecond and a dead backend costs
	// every session routed to it:
	//
	//   - ProbeInterval 200ms, ProbeTimeout 100ms: five probes a second per
	//     node (tiny UDP packets); 100ms still absorbs GC pauses and a busy
	//     scheduler, and a missed ack only leads to indirect and TCP probes.
	//   - SuspicionMult 3, SuspicionMaxTimeoutMult 4: suspicion lasts 600ms
	//     when another node confirms it (clusters under 10 nodes; it grows
	//     with log10 of the size) and at most 2.4s unconfirmed. We keep 3 rather
	//     than 2 so that in clusters of 3+ nodes one observer with a local
	//     problem cannot evict a healthy backend on its own within 400ms.
	//   - GossipInterval 50ms to 3 nodes: changes (draining, health, deaths)
	//     spread in well under 200ms; idle gossip sends nothing.
	//   - PushPullInterval 5s: full state syncs repair any lost gossip quickly;
	//     for tens of nodes that is a few KB over TCP per node every 5s.
	//   - GossipToTheDeadTime 5s, TCPTimeout 2s: scaled down to match.
	//
	// Expected: a crashed node is declared dead about 1-2.5s after it stops
	// (probe round + suspicion + gossip; measured 1.0s with 2 nodes, 1.2s
	// with 5, see membership_bench_test.go); a graceful leave or a metadata
	// change is seen in ~50-100ms; a joining node is known to its seed when
	// Join returns and to the others ~50ms later.
	ProfileFast Profile = "fast"
)

// apply sets p's timings on c, which starts as memberlist.DefaultLANConfig.
func (p Profile) apply(c *memberlist.Config) error {
	switch p {
	case ProfileLAN, "":
	case ProfileFast:
		c.ProbeInterval = 200 * time.Millisecond
		c.ProbeTimeout = 100 * time.Millisecond
		c.SuspicionMult = 3
		c.SuspicionMaxTimeoutMult = 4
		c.GossipInterval = 50 * time.Millisecond
		c.GossipNodes = 3
		c.PushPullInterval = 5 * time.Second
		c.GossipToTheDeadTime = 5 * time.Second
		c.TCPTimeout = 2 * time.Second
	default:
		return fmt.Errorf("unknown profile %q (want %q or %q)", p, ProfileLAN, ProfileFast)
	}
	return nil
}

// Config configures a Node. The zero value of each field means the default
// given in its comment; NodeName and Meta have none and must be set.
type Config struct {
	// NodeName names this node in the cluster; it must be unique among live
	// members and at most MaxNodeNameLen bytes. DefaultConfig uses the host
	// name. A node restarted under the same name replaces its old self.
	NodeName string

	// BindAddr is the IP:port gossip listens on, for both UDP and TCP.
	// Default DefaultBindAddr (loopback only: set an interface address or
	// 0.0.0.0 to gossip between hosts). Port 0 picks a free port; read it
	// back with Node.Addr.
	BindAddr string

	// AdvertiseAddr is the IP:port other members use to reach this node,
	// for NAT or when BindAddr is 0.0.0.0. Empty means the bound address (or,
	// when bound to 0.0.0.0, the first private IP of the host). Port 0
	// means the bound port.
	AdvertiseAddr string

	// Join lists seed members ("host:port"; a missing port means this node's
	// bind port). Join contacts all of them and succeeds if any answers.
	// Empty means this node starts a new cluster on its own.
	Join []string

	// JoinTimeout bounds how long Join keeps retrying the seeds before it
	// gives up with ErrJoin. Default DefaultJoinTimeout. One attempt that
	// started before the deadline may overrun it by up to the profile's
	// TCP timeout (2s fast, 10s lan).
	JoinTimeout time.Duration

	// Keys are AES keys (16, 24 or 32 bytes) for gossip encryption; see
	// ParseKeys for base64. Keys[0] is the primary key and encrypts all that
	// this node sends; every key is tried to decrypt what it receives.
	// Empty means no encryption, and such a node cannot talk to encrypted
	// ones. To rotate without a split, roll out [old, new], then
	// [new, old], then [new]: a node only understands peers whose primary
	// key it holds.
	Keys [][]byte

	// Insecure allows BindAddr to be a non-loopback address (or 0.0.0.0)
	// with no Keys. Without keys any host that reaches the gossip port can
	// join, advertise a backend and so receive sessions, tokens and
	// session.create parameters; Validate refuses that unless Insecure is
	// set, and a node that runs so warns at start and every
	// DefaultInsecureWarnEvery. Loopback binds (127.0.0.0/8, ::1) need no
	// keys and only warn once at start. Ignored when Keys are set. Default
	// false.
	Insecure bool

	// AllowedBackends lists networks whose CLI addresses any member may
	// advertise. Otherwise a backend member is admitted only when the host of
	// its Meta.Addr is the IP memberlist knows the member by (its gossip
	// address): an agent advertises a CLI on its own host. Members that fail
	// this, or advertise a host name, are ignored (and logged once). Default
	// none.
	AllowedBackends []netip.Prefix

	// insecureWarnEvery overrides DefaultInsecureWarnEvery (tests).
	insecureWarnEvery time.Duration

	// Profile selects memberlist's timings: ProfileLAN (default) or
	// ProfileFast. Every member of a cluster should use the same one.
	Profile Profile

	// Meta is what this node advertises at start; change it later with
	// Node.UpdateMeta. Required (at least a Role).
	Meta Meta

	// Listener, if not nil, is told of every change of the backend set,
	// starting with the set as it is once Join has returned.
	Listener Listener

	// Logger receives this package's logs and, under the name "memberlist",
	// memberlist's own: its DEBUG and INFO lines at Debug, its WARN and ERR
	// lines (often a peer's trouble) at Warn. Nil means no logging.
	Logger hclog.Logger

	// LeaveTimeout bounds how long Close, and Leave given no timeout, wait
	// for the leave message to reach another member. Default
	// DefaultLeaveTimeout.
	LeaveTimeout time.Duration

	// UpdateTimeout bounds how long UpdateMeta waits for the change to reach
	// another member. Default DefaultUpdateTimeout.
	UpdateTimeout time.Duration
}

// DefaultConfig returns a Config with every default filled in, NodeName set
// to the host name and no Meta: set Meta (and usually BindAddr, Join and
// Keys) before calling Join.
func DefaultConfig() Config {
	name, _ := os.Hostname()
	return Config{
		NodeName:      name,
		BindAddr:      DefaultBindAddr,
		JoinTimeout:   DefaultJoinTimeout,
		Profile:       ProfileLAN,
		LeaveTimeout:  DefaultLeaveTimeout,
		UpdateTimeout: DefaultUpdateTimeout,
	}
}

// withDefaults returns c with zero fields replaced by their defaults and
// slices copied, so that the caller may reuse its own.
func (c Config) withDefaults() Config {
	if c.BindAddr == "" {
		c.BindAddr = DefaultBindAddr
	}
	if c.JoinTimeout == 0 {
		c.JoinTimeout = DefaultJoinTimeout
	}
	if c.Profile == "" {
		c.Profile = ProfileLAN
	}
	if c.LeaveTimeout == 0 {
		c.LeaveTimeout = DefaultLeaveTimeout
	}
	if c.UpdateTimeout == 0 {
		c.UpdateTimeout = DefaultUpdateTimeout
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	if c.insecureWarnEvery == 0 {
		c.insecureWarnEvery = DefaultInsecureWarnEvery
	}
	c.Join = append([]string(nil), c.Join...)
	c.AllowedBackends = append([]netip.Prefix(nil), c.AllowedBackends...)
	keys := make([][]byte, len(c.Keys))
	for i, k := range c.Keys {
		keys[i] = append([]byte(nil), k...)
	}
	c.Keys = keys
	return c
}

// Validate reports the first problem with c, after defaults are applied.
// Every error wraps ErrInvalidConfig.
func (c Config) Validate() error {
	c = c.withDefaults()
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	if c.NodeName == "" {
		return bad("NodeName is empty")
	}
	if len(c.NodeName) > MaxNodeNameLen {
		return bad("NodeName is %d bytes, limit %d", len(c.NodeName), MaxNodeNameLen)
	}
	bindIP, _, err := splitIPPort(c.BindAddr)
	if err != nil {
		return bad("BindAddr: %v", err)
	}
	if !bindIP.IsLoopback() && len(c.Keys) == 0 && !c.Insecure {
		return fmt.Errorf("%w: %w: BindAddr %s is reachable from other hosts and no Keys are set, "+
			"so anyone who reaches it could join and be sent sessions; set Keys, bind a loopback "+
			"address, or set Insecure", ErrInvalidConfig, ErrUnauthenticated, c.BindAddr)
	}
	if c.AdvertiseAddr != "" {
		if _, _, err := splitIPPort(c.AdvertiseAddr); err != nil {
			return bad("AdvertiseAddr: %v", err)
		}
	}
	for i, s := range c.Join {
		if s == "" {
			return bad("Join[%d] is empty", i)
		}
	}
	if c.JoinTimeout < 0 || c.LeaveTimeout < 0 || c.UpdateTimeout < 0 {
		return bad("negative timeout")
	}
	seen := make(map[string]bool, len(c.Keys))
	for i, k := range c.Keys {
		if err := checkKey(k); err != nil {
			return bad("Keys[%d]: %v", i, err)
		}
		if seen[string(k)] {
			return bad("Keys[%d] repeats an earlier key", i)
		}
		seen[string(k)] = true
	}
	for i, p := range c.AllowedBackends {
		if !p.IsValid() {
			return bad("AllowedBackends[%d] is not a valid prefix", i)
		}
	}
	if err := c.Profile.apply(memberlist.DefaultLANConfig()); err != nil {
		return bad("Profile: %v", err)
	}
	if err := c.Meta.Validate(); err != nil {
		return bad("Meta: %v", err)
	}
	return nil
}

// splitIPPort parses "IP:port" (memberlist binds and advertises IP literals
// only, no host names).
func splitIPPort(s string) (netip.Addr, int, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return netip.Addr{}, 0, err
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, 0, fmt.Errorf("%q is not an IP address", host)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return netip.Addr{}, 0, fmt.Errorf("port %q not in 0..65535", port)
	}
	return ip.Unmap(), p, nil
}

// memberlistConfig translates c (validated, defaults applied) into
// memberlist's configuration, with d as both delegates.
func (c Config) memberlistConfig(d *delegate, keyring *memberlist.Keyring) (*memberlist.Config, error) {
	mc := memberlist.DefaultLANConfig()
	if err := c.Profile.apply(mc); err != nil {
		return nil, err
	}
	mc.Name = c.NodeName
	ip, port, err := splitIPPort(c.BindAddr)
	if err != nil {
		return nil, err
	}
	mc.BindAddr = ip.String()
	mc.BindPort = port
	// memberlist's default AdvertisePort is 7946 whatever the bind port; with
	// no AdvertiseAddr it is unused, but keep the two consistent.
	mc.AdvertisePort = port
	if c.AdvertiseAddr != "" {
		aip, aport, err := splitIPPort(c.AdvertiseAddr)
		if err != nil {
			return nil, err
		}
		mc.AdvertiseAddr = aip.String()
		if aport != 0 {
			mc.AdvertisePort = aport
		}
	}
	mc.Keyring = keyring
	mc.Delegate = d
	mc.Events = d
	mc.Logger = newStdLogger(c.Logger.Named("memberlist"))
	return mc, nil
}
