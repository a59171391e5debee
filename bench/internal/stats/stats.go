// Package stats summarizes latency samples for the benchmarks.
package stats

import (
	"slices"
	"time"
)

// Quantile returns the q-quantile (0..1) of ds, nearest rank; 0 when empty.
// ds is sorted in place.
func Quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := int(q*float64(len(ds))+0.5) - 1
	i = max(0, min(i, len(ds)-1))
	return ds[i]
}

// Micros formats d in microseconds with one decimal.
func Micros(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

// Median returns the median of xs (the mean of the middle two when their
// number is even); 0 when empty. xs is not changed.
func Median[T ~int64 | ~float64](xs []T) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// MedianOf is the median of f over xs.
func MedianOf[E any, T ~int64 | ~float64](xs []E, f func(E) T) T {
	v := make([]T, len(xs))
	for i, x := range xs {
		v[i] = f(x)
	}
	return Median(v)
}
