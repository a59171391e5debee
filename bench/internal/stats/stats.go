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
