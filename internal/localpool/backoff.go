package localpool

import "time"

// backoff is the restart delay of one child: it starts at min, doubles on
// every call to next up to max, and starts over after reset.
type backoff struct {
	min, max time.Duration
	cur      time.Duration // the delay next will return; zero before first use
}

// next returns the delay before the coming restart and doubles the one after.
func (b *backoff) next() time.Duration {
	if b.cur < b.min {
		b.cur = b.min
	}
	d := b.cur
	if d > b.max/2 {
		b.cur = b.max // also keeps the doubling from overflowing
	} else {
		b.cur = 2 * d
	}
	return min(d, b.max)
}

// reset makes the next delay min again, once a child has proved stable.
func (b *backoff) reset() { b.cur = b.min }
