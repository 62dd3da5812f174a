package membership

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"unicode"
)

// Admission decides which live members become backends. Gossip tells this
// node what each member claims about itself; a member is routed to only when
// its claim is one it may make:
//
//   - its metadata decodes and says role backend;
//   - its name is at most MaxNodeNameLen printable bytes (names go to logs
//     and are the listener's keys);
//   - its CLI address is an IP:port whose IP is the member's own gossip IP
//     (the address memberlist probes it at) or inside Config.AllowedBackends;
//   - no other admitted member claimed the same CLI address first. The first
//     claimant keeps the address for as long as it claims it, so a second
//     member cannot mark another's CLI server unhealthy or draining, or
//     change its weight; when the first leaves, the next claimant takes it;
//   - it is among the first MaxBackends claims (in claim order).
//
// Everything else is refused and logged once per member and kind of refusal.

// MaxBackends bounds the backend set a Node delivers: every backend costs a
// proxy a health checker and ring members, and gossip lets peers add members
// without end. Claims beyond it, in claim order, are refused.
const MaxBackends = 1024

// refusalKind names why a member is not a backend; a member's refusal is
// logged again only when its kind changes.
type refusalKind string

const (
	refusedMeta      refusalKind = "unusable metadata"
	refusedName      refusalKind = "unusable node name"
	refusedAddr      refusalKind = "CLI address not on the member's host"
	refusedDuplicate refusalKind = "CLI address claimed by another member"
	refusedLimit     refusalKind = "backend limit reached"
)

// refusal is a backend member that was not admitted.
type refusal struct {
	name   string
	kind   refusalKind
	detail string
}

// claimant is a backend member whose claim passed the per-member checks.
type claimant struct {
	member  Member
	addr    netip.AddrPort // CLI address, IP unmapped
	backend Backend
}

// admit splits members into the canonical backend set (sorted by name) and
// the backend members refused, per the rules above. Member.claimSeq orders
// claims of one address: the smallest is the first claimant.
func admit(members []Member, allowed []netip.Prefix) ([]Backend, []refusal) {
	var refused []refusal
	claims := make(map[netip.AddrPort][]claimant)
	for _, m := range members {
		c, r, ok := checkClaim(m, allowed)
		if r != nil {
			refused = append(refused, *r)
		}
		if ok {
			claims[c.addr] = append(claims[c.addr], c)
		}
	}
	owners := make([]claimant, 0, len(claims))
	for _, cs := range claims {
		first := slices.MinFunc(cs, claimOrder)
		owners = append(owners, first)
		for _, c := range cs {
			if c.member.Name != first.member.Name {
				refused = append(refused, refusal{
					name: c.member.Name, kind: refusedDuplicate,
					detail: fmt.Sprintf("%s is already the CLI address of member %q", c.addr, first.member.Name),
				})
			}
		}
	}
	if len(owners) > MaxBackends {
		slices.SortFunc(owners, claimOrder)
		for _, c := range owners[MaxBackends:] {
			refused = append(refused, refusal{name: c.member.Name, kind: refusedLimit,
				detail: fmt.Sprintf("%d backends already admitted", MaxBackends)})
		}
		owners = owners[:MaxBackends]
	}
	out := make([]Backend, len(owners))
	for i, c := range owners {
		out[i] = c.backend
	}
	slices.SortFunc(out, func(a, b Backend) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(refused, func(a, b refusal) int { return strings.Compare(a.name, b.name) })
	return out, refused
}

// claimOrder orders claims by when they began, then by name.
func claimOrder(a, b claimant) int {
	if c := cmp.Compare(a.member.claimSeq, b.member.claimSeq); c != 0 {
		return c
	}
	return strings.Compare(a.member.Name, b.member.Name)
}

// checkClaim applies the per-member rules to m. ok reports a claimant; a
// non-nil refusal says why a backend member was refused. Members of other
// roles give neither.
func checkClaim(m Member, allowed []netip.Prefix) (c claimant, r *refusal, ok bool) {
	if m.MetaErr != nil {
		return c, &refusal{name: m.Name, kind: refusedMeta, detail: m.MetaErr.Error()}, false
	}
	if m.Meta.Role != RoleBackend {
		return c, nil, false
	}
	if !printableName(m.Name) {
		return c, &refusal{name: m.Name, kind: refusedName,
			detail: fmt.Sprintf("name is %d bytes (limit %d) or has unprintable characters", len(m.Name), MaxNodeNameLen)}, false
	}
	cli, err := netip.ParseAddrPort(m.Meta.Addr)
	if err != nil {
		return c, &refusal{name: m.Name, kind: refusedAddr,
			detail: fmt.Sprintf("CLI address %q is not IP:port (host names are not admitted)", m.Meta.Addr)}, false
	}
	cli = netip.AddrPortFrom(cli.Addr().Unmap(), cli.Port())
	if !addrAllowed(cli.Addr(), m.gossipIP, allowed) {
		return c, &refusal{name: m.Name, kind: refusedAddr,
			detail: fmt.Sprintf("CLI address %s is neither on the member's gossip address %s nor in the allowed backend networks", cli, m.gossipIP)}, false
	}
	w := m.Meta.Weight
	if w == 0 {
		w = 1
	}
	return claimant{member: m, addr: cli, backend: Backend{
		Name:            m.Name,
		Addr:            cli.String(),
		Weight:          w,
		Healthy:         m.Meta.Healthy,
		Draining:        m.Meta.Draining,
		ProtocolVersion: m.Meta.ProtocolVersion,
		Version:         m.Meta.Version,
	}}, nil, true
}

// addrAllowed reports whether a member gossiping from gossipIP may advertise
// a CLI server at ip. The rule is equality, and loopback is not special: on
// one host an agent gossiping on 127.0.0.1 and advertising 127.0.0.1:port is
// admitted, one gossiping on 127.0.0.2 and advertising 127.0.0.1:port is not
// (list 127.0.0.0/8 in AllowedBackends for that).
func addrAllowed(ip, gossipIP netip.Addr, allowed []netip.Prefix) bool {
	if gossipIP.IsValid() && ip == gossipIP {
		return true
	}
	for _, p := range allowed {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// printableName reports whether name is a non-empty node name of at most
// MaxNodeNameLen bytes with no control or other unprintable characters.
func printableName(name string) bool {
	if name == "" || len(name) > MaxNodeNameLen {
		return false
	}
	for _, r := range name {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}
