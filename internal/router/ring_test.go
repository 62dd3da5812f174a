package router

import (
	"fmt"
	"math/rand"
	"testing"
)

func backends(names ...string) []*Backend {
	out := make([]*Backend, len(names))
	for i, n := range names {
		out[i] = &Backend{Name: n, Addr: n}
	}
	return out
}

func TestRingIsCanonical(t *testing.T) {
	// Two proxies that learned the same backends in different orders route alike.
	a, err := NewRing(backends("10.0.0.1:4321", "10.0.0.2:4321", "10.0.0.3:4321"), RingConfig{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewRing(backends("10.0.0.3:4321", "10.0.0.1:4321", "10.0.0.2:4321"), RingConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10000; i++ {
		key := []byte(fmt.Sprintf("session-%d", i))
		if a.Lookup(key).Name != b.Lookup(key).Name {
			t.Fatalf("key %s: %s vs %s", key, a.Lookup(key).Name, b.Lookup(key).Name)
		}
	}
}

func TestRingEmptyAndDuplicates(t *testing.T) {
	r, err := NewRing(nil, RingConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Lookup([]byte("x")) != nil {
		t.Fatal("empty ring returned a backend")
	}
	if _, err := NewRing(backends("a", "a"), RingConfig{}); err == nil {
		t.Fatal("duplicate backend accepted")
	}
}

func TestRingBoundedLoadAndSpread(t *testing.T) {
	r, err := NewRing(backends("a:1", "b:1", "c:1"), RingConfig{})
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	const n = 30000
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < n; i++ {
		counts[r.Lookup([]byte(fmt.Sprintf("%x", rng.Int63()))).Name]++
	}
	for name, c := range counts {
		// Bounded load: no backend owns more than 1.25x its fair share of
		// partitions; keys follow partitions, so allow a little noise.
		if c > n/3*13/10 {
			t.Errorf("backend %s got %d of %d keys: over the bound", name, c, n)
		}
		if c < n/3/2 {
			t.Errorf("backend %s got only %d of %d keys", name, c, n)
		}
	}
}

// Adding a 4th backend to 3 moves about a quarter of the sessions, not all.
func TestRingMovedShareOnAdd(t *testing.T) {
	three, _ := NewRing(backends("a:1", "b:1", "c:1"), RingConfig{})
	four, _ := NewRing(backends("a:1", "b:1", "c:1", "d:1"), RingConfig{})
	const n = 20000
	moved := 0
	for i := 0; i < n; i++ {
		k := []byte(fmt.Sprintf("sess-%d", i))
		if three.Lookup(k).Name != four.Lookup(k).Name {
			moved++
		}
	}
	share := float64(moved) / n
	t.Logf("moved share on adding a 4th backend: %.3f (ideal 0.25)", share)
	if share < 0.15 || share > 0.40 {
		t.Fatalf("moved share %.3f, want near 1/4", share)
	}
}

func TestRingLookupDoesNotAllocate(t *testing.T) {
	r, _ := NewRing(backends("a:1", "b:1", "c:1"), RingConfig{})
	k := []byte("0b8f7c1e-2d35-4a8b-9b53-6d6f1f2e3a4b")
	if n := testing.AllocsPerRun(100, func() { r.Lookup(k) }); n != 0 {
		t.Fatalf("Lookup allocates %v times", n)
	}
}

func BenchmarkRingLookup(b *testing.B) {
	r, _ := NewRing(backends("a:1", "b:1", "c:1"), RingConfig{})
	k := []byte("0b8f7c1e-2d35-4a8b-9b53-6d6f1f2e3a4b")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		r.Lookup(k)
	}
}

// A backend of weight 2 owns about twice the share of one of weight 1.
func TestRingWeights(t *testing.T) {
	bs := backends("a:1", "b:1", "c:1")
	bs[2].Weight = 2
	r, err := NewRing(bs, RingConfig{})
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	const n = 40000
	for i := 0; i < n; i++ {
		counts[r.Lookup([]byte(fmt.Sprintf("w-%d", i))).Name]++
	}
	share := float64(counts["c:1"]) / n
	t.Logf("shares: %v", counts)
	if share < 0.40 || share > 0.60 {
		t.Fatalf("weight-2 backend got %.2f of the keys, want about 0.5", share)
	}
}

// TestRingShares: shares follow the partitions each backend owns: they sum
// to 1, and a backend of weight 3 owns about three times a weight-1 one's.
func TestRingShares(t *testing.T) {
	r, err := NewRing([]*Backend{{Name: "a", Weight: 1}, {Name: "b", Weight: 3}}, RingConfig{})
	if err != nil {
		t.Fatal(err)
	}
	s := r.Shares()
	if len(s) != 2 || s[0]+s[1] < 0.999 || s[0]+s[1] > 1.001 {
		t.Fatalf("shares %v do not sum to 1", s)
	}
	if s[1] < 2*s[0] {
		t.Errorf("weight 3 owns %.2f, weight 1 owns %.2f", s[1], s[0])
	}
	empty, _ := NewRing(nil, RingConfig{})
	if len(empty.Shares()) != 0 {
		t.Error("an empty ring has shares")
	}
}

// Owned counts each backend's partitions: they add up to the ring's, and a
// backend of weight 3 owns more than one of weight 1.
func TestRingOwned(t *testing.T) {
	r, err := NewRing([]*Backend{{Name: "a", Weight: 1}, {Name: "b", Weight: 3}, {Name: "c", Weight: 1}}, RingConfig{})
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, n := range []string{"a", "b", "c"} {
		total += r.Owned(n)
	}
	if total != r.Partitions() || r.Partitions() == 0 {
		t.Fatalf("owned %d of %d partitions", total, r.Partitions())
	}
	if r.Owned("b") <= r.Owned("a") {
		t.Fatalf("weight 3 owns %d, weight 1 owns %d", r.Owned("b"), r.Owned("a"))
	}
	if r.Owned("zz") != 0 {
		t.Fatal("an unknown backend owns partitions")
	}
}
