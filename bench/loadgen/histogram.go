package loadgen

import (
	"math"
	"math/bits"
	"time"
)

// Histogram records durations in log-linear buckets, like an HDR histogram:
// values below 2^(subBits+1) ns have a bucket each, and every power of two
// above is cut into 2^subBits equal buckets, so any recorded value is known
// to within 1/2^subBits (1.6%) of itself. Record allocates nothing and takes
// tens of nanoseconds. A Histogram is not safe for concurrent use: give each
// goroutine its own and Merge them.
type Histogram struct {
	counts [histBuckets]uint64
	n      uint64
	sum    float64 // nanoseconds, for the mean
	min    int64
	max    int64
}

const (
	subBits     = 6
	subCount    = 1 << subBits
	maxShift    = 63 - subBits // values up to 2^63 ns
	histBuckets = (maxShift + 2) * subCount
)

// bucketOf returns the bucket index of a non-negative value in nanoseconds.
func bucketOf(v int64) int {
	if v < 2*subCount {
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - (subBits + 1)
	return shift*subCount + int(v>>shift)
}

// bucketRange returns the smallest value of bucket i and the bucket's width.
func bucketRange(i int) (low, width int64) {
	if i < 2*subCount {
		return int64(i), 1
	}
	shift := i/subCount - 1
	top := int64(i - shift*subCount)
	return top << shift, 1 << shift
}

// Record adds one duration; negative durations count as zero.
func (h *Histogram) Record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0
	}
	h.counts[bucketOf(v)]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += float64(v)
}

// Merge adds every value recorded in o.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
	h.sum += o.sum
}

// Reset forgets every recorded value.
func (h *Histogram) Reset() { *h = Histogram{} }

// Count is the number of values recorded.
func (h *Histogram) Count() uint64 { return h.n }

// Min and Max are the exact extremes recorded (zero when empty).
func (h *Histogram) Min() time.Duration { return time.Duration(h.min) }

// Max is the largest value recorded.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Mean is the exact mean of the values recorded.
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.n))
}

// Percentile returns the value below or at which p percent of the recorded
// values lie (0 < p <= 100), as the middle of its bucket, clamped to the
// exact minimum and maximum. An empty histogram gives 0.
func (h *Histogram) Percentile(p float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(p / 100 * float64(h.n)))
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		if c == 0 {
			continue
		}
		seen += c
		if seen >= rank {
			low, width := bucketRange(i)
			v := low + (width-1)/2
			return time.Duration(min(max(v, h.min), h.max))
		}
	}
	return time.Duration(h.max)
}

// CDFPoint is one point of a latency distribution: Fraction of the values
// are at most Value.
type CDFPoint struct {
	Value    time.Duration
	Fraction float64
}

// CDF returns the cumulative distribution, one point per non-empty bucket
// (at the bucket's upper end), for charts.
func (h *Histogram) CDF() []CDFPoint {
	if h.n == 0 {
		return nil
	}
	var out []CDFPoint
	var seen uint64
	for i, c := range h.counts {
		if c == 0 {
			continue
		}
		seen += c
		low, width := bucketRange(i)
		v := min(max(low+width-1, h.min), h.max)
		out = append(out, CDFPoint{Value: time.Duration(v), Fraction: float64(seen) / float64(h.n)})
	}
	return out
}
