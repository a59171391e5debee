package stats

import (
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	in := []float64{5, 1, 3}
	if got := Median(in); got != 3 {
		t.Errorf("Median(5 1 3) = %v, want 3", got)
	}
	if in[0] != 5 || in[1] != 1 {
		t.Errorf("Median changed its input: %v", in)
	}
	if got := Median([]time.Duration{4, 1, 3, 2}); got != 2 { // (2+3)/2 in integer nanoseconds
		t.Errorf("Median(4 1 3 2 ns) = %v, want 2ns", got)
	}
	if got := Median([]float64{4, 1, 3, 2}); got != 2.5 {
		t.Errorf("Median(4 1 3 2) = %v, want 2.5", got)
	}
	if got := Median[float64](nil); got != 0 {
		t.Errorf("Median(nil) = %v, want 0", got)
	}
	type r struct{ v float64 }
	if got := MedianOf([]r{{9}, {7}, {8}}, func(x r) float64 { return x.v }); got != 8 {
		t.Errorf("MedianOf = %v, want 8", got)
	}
}

func TestQuantile(t *testing.T) {
	ds := []time.Duration{50, 10, 40, 20, 30}
	if got := Quantile(ds, 0.5); got != 30 {
		t.Errorf("p50 = %v, want 30ns", got)
	}
	if got := Quantile(ds, 0.99); got != 50 {
		t.Errorf("p99 = %v, want 50ns", got)
	}
}
