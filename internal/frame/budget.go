package frame

import "sync/atomic"

// Budget bounds the bytes that the Readers sharing it hold in bodies not yet
// whole: the memory peers can make a server hold with frames they announce
// and do not finish. A Reader whose body cannot grow within it fails with
// ErrBudget; the others are not affected. The methods of a nil *Budget do
// nothing and always succeed.
type Budget struct {
	max  int64
	used atomic.Int64
}

// NewBudget returns a Budget of max bytes.
func NewBudget(max int64) *Budget {
	return &Budget{max: max}
}

// Used reports the bytes held now.
func (b *Budget) Used() int64 {
	if b == nil {
		return 0
	}
	return b.used.Load()
}

// take reserves n bytes, or reports that they would exceed the budget.
func (b *Budget) take(n int) bool {
	if b == nil {
		return true
	}
	if b.used.Add(int64(n)) > b.max {
		b.used.Add(-int64(n))
		return false
	}
	return true
}

// give returns n bytes taken earlier.
func (b *Budget) give(n int) {
	if b != nil {
		b.used.Add(-int64(n))
	}
}
