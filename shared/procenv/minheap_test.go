package procenv

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
)

func TestGCPercentFor(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		live, min uint64
		want      int
	}{
		{5 * mib, 64 * mib, 1180},   // 5 MiB × 12.8 = 64 MiB
		{8 * mib, 64 * mib, 700},    // 8 × 8
		{0, 64 * mib, 1500},         // no cycle yet: Go's 4 MiB minimum × 16
		{mib, 64 * mib, 1500},       // under the minimum: the same
		{40 * mib, 64 * mib, 100},   // 40 × 1.6 < 40 × 2: Go's
		{32 * mib, 64 * mib, 100},   // exactly double
		{64 * mib, 64 * mib, 100},   // at the floor
		{100 * mib, 64 * mib, 100},  // over it: Go's
		{5 * mib, 0, 100},           // no floor
		{4 * mib, 1 << 50, 1 << 20}, // bounded
		{6 * mib, 64*mib + 1, 967},  // rounded up: 966.67
		{3 * mib, 16 * mib, 300},    // 4 MiB × 4
	} {
		if got := gcPercentFor(c.live, c.min); got != c.want {
			t.Errorf("gcPercentFor(%d, %d) = %d, want %d", c.live, c.min, got, c.want)
		}
	}
}

var sink []byte

// gcCycles counts the garbage collections while fn runs.
func gcCycles(fn func()) uint64 {
	s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(s)
	before := s[0].Value.Uint64()
	fn()
	metrics.Read(s)
	return s[0].Value.Uint64() - before
}

// TestMinHeap runs the real collector: allocating 256 MiB of garbage with
// a live heap of a few megabytes takes dozens of cycles at Go's default
// and a handful with a 64 MiB floor; stop gives GOGC back.
func TestMinHeap(t *testing.T) {
	if os.Getenv("GOGC") != "" {
		t.Skip("GOGC is set in the environment")
	}
	garbage := func() {
		for range 256 << 10 {
			sink = make([]byte, 1<<10)
		}
	}
	runtime.GC()
	plain := gcCycles(garbage)

	h := &MinHeap{Bytes: 64 << 20}
	stop, ok := h.Start()
	if !ok {
		t.Fatal("Start did not start")
	}
	defer stop()
	runtime.GC() // a cycle's end sets the target for the live heap
	floored := gcCycles(garbage)
	if p := h.GCPercent(); p <= 100 {
		t.Errorf("GOGC with a 64 MiB floor = %d, want more than 100", p)
	}
	t.Logf("cycles for 256 MiB of garbage: %d at Go's default, %d with a 64 MiB floor (GOGC %d)", plain, floored, h.GCPercent())
	if plain < 20 || floored*4 > plain {
		t.Errorf("cycles: %d at Go's default, %d with a 64 MiB floor; want at least 20, and a quarter of it at most", plain, floored)
	}
	if _, ok := h.Start(); ok {
		t.Error("a second Start started again")
	}
	other := &MinHeap{Bytes: 8 << 20}
	if _, ok := other.Start(); ok {
		t.Error("a second MinHeap started while one runs")
	}
	runtime.GC()
	runtime.GC()
	if p := h.GCPercent(); p != 1500 && p < 1000 {
		t.Errorf("GOGC after a second MinHeap's Start = %d, want the first's (over 1000)", p)
	}

	stop()
	if p := debug.SetGCPercent(100); p != 100 {
		t.Errorf("GOGC after stop = %d, want 100", p)
	}
	runtime.GC()
	runtime.GC()
	if p := debug.SetGCPercent(100); p != 100 {
		t.Errorf("GOGC two cycles after stop = %d, want 100", p)
	}
	if after := gcCycles(garbage); after*2 < plain {
		t.Errorf("cycles after stop: %d, want about Go's default's %d", after, plain)
	}
	// Once stopped, another may start.
	next := &MinHeap{Bytes: 8 << 20}
	stopNext, ok := next.Start()
	if !ok {
		t.Fatal("a MinHeap after the first stopped did not start")
	}
	stopNext()
}
