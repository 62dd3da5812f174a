package membership

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"unicode"

	"github.com/hashicorp/memberlist"
)

// Role says what a cluster member is.
type Role string

const (
	// RoleBackend is an `rpcproxy agent` beside a CLI server: proxies route
	// sessions to its Meta.Addr.
	RoleBackend Role = "backend"
	// RoleProxy is an rpcproxy front end. It takes part in gossip so that it
	// learns the backend set, but is never routed to.
	RoleProxy Role = "proxy"
)

// Limits of the fields of Meta, chosen so that any valid Meta encodes well
// under memberlist's MetaMaxSize (512 bytes).
const (
	// MetaVersion is the format number this package writes in the "v" field.
	// Bump it only for incompatible changes: fields added in a compatible way
	// keep version 1, since decoders ignore unknown fields.
	MetaVersion = 1
	// MaxWeight is the largest Meta.Weight, the same as the router's limit
	// (router.MaxWeight): a peer advertising more is not a backend, so an
	// admitted member owns at most MaxWeight shares of the ring.
	MaxWeight = 100
	// MaxAddrLen is the longest Meta.Addr, in bytes.
	MaxAddrLen = 261 // a 253-byte host name, ':' and a 5-digit port, plus IPv6 brackets
	// MaxVersionLen is the longest Meta.Version, in bytes.
	MaxVersionLen = 64
	// MaxMetaSize is memberlist's limit on encoded node metadata.
	MaxMetaSize = memberlist.MetaMaxSize
)

// Errors from encoding and decoding Meta. Decoding errors mean a peer
// advertised metadata this node cannot use; such a peer is never a backend.
var (
	// ErrMetaVersion means the metadata has a format number this build does
	// not know (a newer rpcproxy), or none at all.
	ErrMetaVersion = errors.New("membership: unsupported metadata version")
	// ErrInvalidMeta means the metadata is malformed or a field is out of range.
	ErrInvalidMeta = errors.New("membership: invalid metadata")
)

// Meta is what a node advertises about itself to the cluster. It travels in
// memberlist's node metadata, so it is small and changes rarely: a change
// (UpdateMeta) is broadcast to every member.
type Meta struct {
	// Role is the node's role. Required.
	Role Role
	// Addr is the CLI server address proxies dial, as host:port. Required
	// for RoleBackend, empty for RoleProxy.
	Addr string
	// Weight is the backend's relative capacity, 0..MaxWeight. Zero means 1.
	Weight int
	// Draining asks proxies to send no new sessions to this backend while
	// existing ones finish.
	Draining bool
	// Healthy says the agent's last check of its CLI server succeeded.
	Healthy bool
	// ProtocolVersion is the SDK<->CLI protocol version the CLI reported
	// (3 for CLI 1.0.x). Zero means unknown.
	ProtocolVersion int
	// Version is a free-form build or CLI version string, at most
	// MaxVersionLen bytes, for logs and diagnostics only.
	Version string
}

// metaWire is the JSON form of Meta. "v" comes first so that a human reading
// a dump sees the format number; field names are short to keep packets small.
type metaWire struct {
	V               int    `json:"v"`
	Role            Role   `json:"role"`
	Addr            string `json:"addr,omitempty"`
	Weight          int    `json:"w,omitempty"`
	Draining        bool   `json:"drain,omitempty"`
	Healthy         bool   `json:"ok,omitempty"`
	ProtocolVersion int    `json:"pv,omitempty"`
	Version         string `json:"ver,omitempty"`
}

// metaHeader is decoded first, so that a newer format that changed a field's
// type is refused for its version number rather than for a type mismatch.
type metaHeader struct {
	V *int `json:"v"`
}

// Validate reports whether m can be advertised by this node.
func (m Meta) Validate() error {
	switch m.Role {
	case RoleBackend:
		if m.Addr == "" {
			return fmt.Errorf("%w: backend needs a CLI address", ErrInvalidMeta)
		}
	case RoleProxy:
	default:
		return fmt.Errorf("%w: role %q is not %q or %q", ErrInvalidMeta, m.Role, RoleBackend, RoleProxy)
	}
	return m.checkFields()
}

// checkFields checks the bounds every decoded Meta must meet, whatever its role.
func (m Meta) checkFields() error {
	if m.Role == "" {
		return fmt.Errorf("%w: no role", ErrInvalidMeta)
	}
	if m.Addr != "" {
		if len(m.Addr) > MaxAddrLen {
			return fmt.Errorf("%w: address is %d bytes, limit %d", ErrInvalidMeta, len(m.Addr), MaxAddrLen)
		}
		if err := checkHostPort(m.Addr); err != nil {
			return fmt.Errorf("%w: address %q: %v", ErrInvalidMeta, m.Addr, err)
		}
	}
	if m.Weight < 0 || m.Weight > MaxWeight {
		return fmt.Errorf("%w: weight %d not in 0..%d", ErrInvalidMeta, m.Weight, MaxWeight)
	}
	if m.ProtocolVersion < 0 || m.ProtocolVersion > 255 {
		return fmt.Errorf("%w: protocol version %d not in 0..255", ErrInvalidMeta, m.ProtocolVersion)
	}
	if len(m.Version) > MaxVersionLen {
		return fmt.Errorf("%w: version string is %d bytes, limit %d", ErrInvalidMeta, len(m.Version), MaxVersionLen)
	}
	// Version goes to logs: no control characters.
	if strings.IndexFunc(m.Version, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return fmt.Errorf("%w: version string has unprintable characters", ErrInvalidMeta)
	}
	return nil
}

// checkHostPort accepts host:port with a non-empty host and a port in 1..65535.
func checkHostPort(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "" {
		return errors.New("empty host")
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("port %q not in 1..65535", port)
	}
	return nil
}

// MarshalBinary encodes m in the current format after validating it. The
// result is at most MaxMetaSize bytes.
func (m Meta) MarshalBinary() ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(metaWire{
		V:               MetaVersion,
		Role:            m.Role,
		Addr:            m.Addr,
		Weight:          m.Weight,
		Draining:        m.Draining,
		Healthy:         m.Healthy,
		ProtocolVersion: m.ProtocolVersion,
		Version:         m.Version,
	})
	if err != nil {
		return nil, fmt.Errorf("membership: encode metadata: %w", err)
	}
	if len(b) > MaxMetaSize {
		// Only reachable through a Version full of characters JSON escapes.
		return nil, fmt.Errorf("%w: encodes to %d bytes, limit %d", ErrInvalidMeta, len(b), MaxMetaSize)
	}
	return b, nil
}

// UnmarshalBinary decodes metadata a peer advertised. It fails with
// ErrMetaVersion for a format it does not know and ErrInvalidMeta for
// anything malformed; it never panics on any input. A role it does not know
// is accepted (a newer peer may have roles this build lacks); such a member
// is never treated as a backend.
func (m *Meta) UnmarshalBinary(b []byte) error {
	if len(b) == 0 {
		return fmt.Errorf("%w: no metadata", ErrMetaVersion)
	}
	if len(b) > MaxMetaSize {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrInvalidMeta, len(b), MaxMetaSize)
	}
	var h metaHeader
	if err := json.Unmarshal(b, &h); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidMeta, err)
	}
	if h.V == nil {
		return fmt.Errorf("%w: no format number", ErrMetaVersion)
	}
	if *h.V != MetaVersion {
		return fmt.Errorf("%w: format %d, this build reads %d", ErrMetaVersion, *h.V, MetaVersion)
	}
	var w metaWire
	if err := json.Unmarshal(b, &w); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidMeta, err)
	}
	d := Meta{
		Role:            w.Role,
		Addr:            w.Addr,
		Weight:          w.Weight,
		Draining:        w.Draining,
		Healthy:         w.Healthy,
		ProtocolVersion: w.ProtocolVersion,
		Version:         w.Version,
	}
	if err := d.checkFields(); err != nil {
		return err
	}
	if d.Role == RoleBackend && d.Addr == "" {
		return fmt.Errorf("%w: backend without a CLI address", ErrInvalidMeta)
	}
	*m = d
	return nil
}
