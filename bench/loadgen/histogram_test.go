package loadgen

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBucketsCoverValues(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	values := []int64{0, 1, 127, 128, 129, 255, 256, 1000, 1 << 20, 1<<40 + 12345, 1<<62 + 1}
	for range 10000 {
		values = append(values, rng.Int64N(1<<uint(rng.IntN(62)+1)))
	}
	for _, v := range values {
		i := bucketOf(v)
		if i < 0 || i >= histBuckets {
			t.Fatalf("bucketOf(%d) = %d out of range", v, i)
		}
		low, width := bucketRange(i)
		if v < low || v >= low+width {
			t.Fatalf("value %d in bucket %d = [%d, %d)", v, i, low, low+width)
		}
		if v >= 2*subCount && float64(width)/float64(low) > 1.0/subCount {
			t.Fatalf("bucket %d of width %d at %d is wider than 1/%d", i, width, low, subCount)
		}
	}
}

func TestPercentilesWithinPrecision(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var h Histogram
	var exact []int64
	for range 100000 {
		// Log-uniform from 1 µs to 100 ms, like latencies.
		v := int64(1000 * math.Pow(10, rng.Float64()*5))
		exact = append(exact, v)
		h.Record(time.Duration(v))
	}
	slices.Sort(exact)
	for _, p := range []float64{1, 50, 90, 99, 99.9, 100} {
		rank := int(float64(len(exact))*p/100+0.999999) - 1
		want := float64(exact[max(rank, 0)])
		got := float64(h.Percentile(p))
		if d := (got - want) / want; d > 1.0/subCount || d < -1.0/subCount {
			t.Errorf("p%v = %v, exact %v (off by %.2f%%)", p, time.Duration(got), time.Duration(want), d*100)
		}
	}
	if h.Count() != uint64(len(exact)) || h.Min() != time.Duration(exact[0]) || h.Max() != time.Duration(exact[len(exact)-1]) {
		t.Errorf("count/min/max = %d %v %v", h.Count(), h.Min(), h.Max())
	}
}

func TestMergeAndCDF(t *testing.T) {
	var a, b Histogram
	for i := 1; i <= 100; i++ {
		a.Record(time.Duration(i) * time.Microsecond)
		b.Record(time.Duration(i+100) * time.Microsecond)
	}
	a.Merge(&b)
	if a.Count() != 200 || a.Min() != time.Microsecond || a.Max() != 200*time.Microsecond {
		t.Fatalf("merged count/min/max = %d %v %v", a.Count(), a.Min(), a.Max())
	}
	if p := a.Percentile(50); p < 98*time.Microsecond || p > 102*time.Microsecond {
		t.Errorf("merged p50 = %v, want about 100µs", p)
	}
	cdf := a.CDF()
	if len(cdf) == 0 || cdf[len(cdf)-1].Fraction != 1 || cdf[len(cdf)-1].Value != a.Max() {
		t.Fatalf("CDF ends at %+v", cdf[len(cdf)-1])
	}
	for i := 1; i < len(cdf); i++ {
		if cdf[i].Value <= cdf[i-1].Value || cdf[i].Fraction <= cdf[i-1].Fraction {
			t.Fatalf("CDF not increasing at %d: %+v %+v", i, cdf[i-1], cdf[i])
		}
	}
	var empty Histogram
	if empty.Percentile(99) != 0 || empty.CDF() != nil || empty.Mean() != 0 {
		t.Error("empty histogram reports values")
	}
}

func TestRecordAllocatesNothing(t *testing.T) {
	var h Histogram
	if n := testing.AllocsPerRun(1000, func() { h.Record(1234 * time.Nanosecond) }); n != 0 {
		t.Fatalf("Record allocates %v times", n)
	}
}
