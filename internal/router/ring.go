package router

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/buraksezer/consistent"
	"github.com/cespare/xxhash/v2"
)

// Backend is one CLI server the proxy can route to.
type Backend struct {
	// Name identifies the backend on the ring; every proxy must use the same
	// name for the same server (the address, or the gossip node name).
	Name string
	// Addr is the host:port the proxy dials.
	Addr string
	// Token is sent in the upstream connect handshake when not empty.
	Token string
	// Source says where the backend came from (SourceStatic, SourcePool or
	// SourceGossip), for operators; routing ignores it.
	Source string
	// Weight is the backend's relative capacity: it owns about Weight
	// shares of the ring. Zero means 1.
	Weight int
}

// Sources of a backend (Backend.Source).
const (
	SourceStatic = "static" // a backend block or --backend
	SourcePool   = "pool"   // a child of the managed local pool
	SourceGossip = "gossip" // announced by an agent
)

// MaxWeight bounds a backend's weight (and so the ring's size).
const MaxWeight = 100

// RingConfig tunes the consistent hash with bounded load.
type RingConfig struct {
	// Partitions is the number of ring partitions (keys hash to a partition,
	// partitions are spread over backends). Zero means 271.
	Partitions int
	// Replication is the number of virtual nodes per backend. Zero means 20.
	Replication int
	// Load bounds a backend's partitions to Load times the average. Zero means 1.25.
	Load float64
}

func (c RingConfig) withDefaults() RingConfig {
	if c.Partitions <= 0 {
		c.Partitions = consistent.DefaultPartitionCount
	}
	if c.Replication <= 0 {
		c.Replication = consistent.DefaultReplicationFactor
	}
	if c.Load <= 0 {
		c.Load = consistent.DefaultLoad
	}
	return c
}

// Ring maps session IDs to backends. It is immutable: a change of the pool
// builds a new Ring, so lookups take no lock. Its input is canonical (sorted
// by name), so every proxy given the same set builds the same ring whatever
// order it learned the backends in.
type Ring struct {
	backends []*Backend // sorted by Name
	owner    []uint16   // partition -> index into backends
}

type member string

func (m member) String() string { return string(m) }

type hasher struct{}

func (hasher) Sum64(b []byte) uint64 { return xxhash.Sum64(b) }

// NewRing builds a ring over backends. An empty set gives a ring whose
// Lookup returns nil.
func NewRing(backends []*Backend, cfg RingConfig) (*Ring, error) {
	cfg = cfg.withDefaults()
	sorted := append([]*Backend(nil), backends...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	for i := 1; i < len(sorted); i++ {
		if sorted[i].Name == sorted[i-1].Name {
			return nil, fmt.Errorf("router: backend %q listed twice", sorted[i].Name)
		}
	}
	if len(sorted) > 1<<16-1 {
		return nil, fmt.Errorf("router: %d backends is over the limit", len(sorted))
	}
	r := &Ring{backends: sorted}
	if len(sorted) == 0 {
		return r, nil
	}
	// A backend of weight w takes part as w members (its name, then its name
	// with a NUL byte and k, for k = 2..w), so it owns about w shares of the partitions.
	var members []consistent.Member
	index := make(map[string]uint16, len(sorted))
	for i, b := range sorted {
		w := min(max(b.Weight, 1), MaxWeight)
		for k := 1; k <= w; k++ {
			name := b.Name
			if k > 1 {
				name = fmt.Sprintf("%s\x00%d", b.Name, k)
			}
			members = append(members, member(name))
			index[name] = uint16(i)
		}
	}
	c := consistent.New(members, consistent.Config{
		Hasher:            hasher{},
		PartitionCount:    cfg.Partitions,
		ReplicationFactor: cfg.Replication,
		Load:              cfg.Load,
	})
	r.owner = make([]uint16, cfg.Partitions)
	for p := range r.owner {
		r.owner[p] = index[c.GetPartitionOwner(p).String()]
	}
	return r, nil
}

// Lookup returns the backend that owns key, or nil when the ring is empty.
// It allocates nothing. Partitioning matches consistent.FindPartitionID.
func (r *Ring) Lookup(key []byte) *Backend {
	if len(r.owner) == 0 {
		return nil
	}
	p := xxhash.Sum64(key) % uint64(len(r.owner))
	return r.backends[r.owner[p]]
}

// Backends returns the ring's members sorted by name. The slice must not be modified.
func (r *Ring) Backends() []*Backend { return r.backends }

// Len is the number of backends on the ring.
func (r *Ring) Len() int { return len(r.backends) }

// Shares returns the fraction of the ring's partitions each backend owns,
// in the order of Backends (for operators: the ring share per backend).
func (r *Ring) Shares() []float64 {
	out := make([]float64, len(r.backends))
	if len(r.owner) == 0 {
		return out
	}
	for _, i := range r.owner {
		out[i]++
	}
	for i := range out {
		out[i] /= float64(len(r.owner))
	}
	return out
}

// Partitions is the number of partitions on the ring (zero when it is empty).
func (r *Ring) Partitions() int { return len(r.owner) }

// Owned counts the partitions the backend named owns: its share of new
// sessions is Owned/Partitions. It walks the ring, so it is for operators,
// not for routing.
func (r *Ring) Owned(name string) int {
	i, ok := slices.BinarySearchFunc(r.backends, name, func(b *Backend, n string) int { return strings.Compare(b.Name, n) })
	if !ok {
		return 0
	}
	n := 0
	for _, o := range r.owner {
		if int(o) == i {
			n++
		}
	}
	return n
}
