package evaluate

import (
	"math"
	"testing"
)

// TestGeneratedIDsSampleAtTheirRate: ids from NewRequestID differ only in a
// counter, yet each rate samples its share of them.
func TestGeneratedIDsSampleAtTheirRate(t *testing.T) {
	const n = 200000
	seen := make(map[string]bool, n)
	for _, rate := range []float64{0.01, 0.05, 0.5} {
		hits := 0
		for i := 0; i < n; i++ {
			id := NewRequestID()
			if len(id) != 32 || seen[id] {
				t.Fatalf("id %q is malformed or repeated", id)
			}
			seen[id] = true
			if Sampled(id, rate) {
				hits++
			}
		}
		share, sd := float64(hits)/n, math.Sqrt(rate*(1-rate)/n)
		if math.Abs(share-rate) > 5*sd {
			t.Errorf("rate %v: sampled share %v, want within %v", rate, share, 5*sd)
		}
	}
}
