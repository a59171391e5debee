package evaluate

import (
	"fmt"
	"hash/fnv"
	"math"
	"regexp"
	"testing"
)

// referenceFraction is Sampled's documented contract written with the
// standard library's FNV-1a.
func referenceFraction(id string) float64 {
	h := fnv.New64a()
	h.Write([]byte(id))
	x := h.Sum64()
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return float64(x>>11) / math.Pow(2, 53)
}

func TestSampledContract(t *testing.T) {
	for i := range 1000 {
		id := fmt.Sprintf("req-%d", i)
		if got, want := fraction(id), referenceFraction(id); got != want {
			t.Fatalf("fraction(%q) = %v, want %v", id, got, want)
		}
	}
	// Pinned (computed independently) so that a change of the function, which
	// would make components disagree, cannot go unnoticed.
	if got := fraction("abc"); math.Abs(got-pinnedABC) > 1e-15 {
		t.Errorf(`fraction("abc") = %.17g, want %.17g`, got, pinnedABC)
	}
}

const pinnedABC = 0.20281503190180583

func TestSampledRates(t *testing.T) {
	tests := map[string]struct {
		rate float64
		want bool
	}{
		"zero":     {0, false},
		"negative": {-0.5, false},
		"NaN":      {math.NaN(), false},
		"one":      {1, true},
		"above":    {2, true},
		"+Inf":     {math.Inf(1), true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			for i := range 200 {
				if got := Sampled(fmt.Sprint(i), tc.rate); got != tc.want {
					t.Fatalf("Sampled(%d, %v) = %v", i, tc.rate, got)
				}
			}
		})
	}
}

// Sequential ids (differing only in their last characters) are sampled at
// the rate asked, and a lower rate's sample is a subset of a higher one's.
func TestSampledUniform(t *testing.T) {
	const n = 100_000
	for _, rate := range []float64{0.01, 0.1, 0.5, 0.9} {
		hit := 0
		for i := range n {
			id := fmt.Sprintf("req-%08d", i)
			s := Sampled(id, rate)
			if s {
				hit++
			}
			if s && !Sampled(id, math.Min(1, rate*1.5)) {
				t.Fatalf("%s is sampled at %v but not at %v", id, rate, rate*1.5)
			}
		}
		sigma := math.Sqrt(rate * (1 - rate) / n)
		if got := float64(hit) / n; math.Abs(got-rate) > 5*sigma {
			t.Errorf("rate %v: sampled %v of sequential ids", rate, got)
		}
	}
}

func TestNewRequestID(t *testing.T) {
	hexRe := regexp.MustCompile(`^[0-9a-f]{32}$`)
	seen := map[string]bool{}
	for range 1000 {
		id := NewRequestID()
		if !hexRe.MatchString(id) {
			t.Fatalf("NewRequestID() = %q, want 32 lowercase hex digits", id)
		}
		if seen[id] {
			t.Fatalf("NewRequestID() returned %q twice", id)
		}
		seen[id] = true
	}
}

func BenchmarkSampled(b *testing.B) {
	id := NewRequestID()
	n := 0
	for b.Loop() {
		if Sampled(id, 0.1) {
			n++
		}
	}
	_ = n
}
