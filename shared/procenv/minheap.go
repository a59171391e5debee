package procenv

import (
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
)

// MinHeap keeps the garbage collector from starting a cycle before the
// heap holds Bytes: after each cycle it sets the collector's target
// (GOGC) so that the next one comes when the heap reaches Bytes, or when
// the live heap doubles (Go's GOGC=100) where that is more. Go's own minimum is 4 MiB
// (GOGC 100 doubles the live heap from there), so a process whose live
// heap is a few megabytes and that allocates for every request collects
// many times a second; each cycle runs mark workers on the idle CPUs,
// which a busy server's other processes wanted. A heap that outgrows
// Bytes/2 is collected at GOGC=100, as before.
//
// It hooks the end of each cycle through a cleanup on an object made for
// that (runtime.AddCleanup), so it runs no goroutine of its own; the
// collector's target changes without stopping the world.
type MinHeap struct {
	// Bytes is the heap below which no cycle starts (with GOMEMLIMIT, the
	// limit still comes first).
	Bytes uint64

	stopped atomic.Bool
	once    sync.Once
	mu      sync.Mutex
	set     int // the GOGC set last
	sample  []metrics.Sample
}

// minHeapSentinel is the object whose cleanup marks a cycle's end: it has
// a pointer, so the tiny allocator, whose blocks hold several objects and
// free them together, does not place it.
type minHeapSentinel struct{ _ *int }

// minHeapRunning says that a MinHeap tunes GOGC, which belongs to the
// process: a second one would undo the first's settings.
var minHeapRunning atomic.Bool

// Start sets the target for the live heap now and from then on after each
// garbage collection, until the returned stop; stop sets GOGC back to
// Go's 100. Calling Start again does nothing, and so does Start on another
// MinHeap while one runs: it reports false.
func (h *MinHeap) Start() (stop func(), started bool) {
	h.once.Do(func() {
		if !minHeapRunning.CompareAndSwap(false, true) {
			h.stopped.Store(true)
			return
		}
		started = true
		h.sample = []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		h.tune()
		h.arm()
	})
	return h.stop, started
}

func (h *MinHeap) stop() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopped.Swap(true) {
		return
	}
	debug.SetGCPercent(goGCPercent)
	h.set = goGCPercent
	minHeapRunning.Store(false)
}

// GCPercent is the target set last (0 before Start).
func (h *MinHeap) GCPercent() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.set
}

func (h *MinHeap) arm() {
	runtime.AddCleanup(&minHeapSentinel{}, func(h *MinHeap) { h.cycle() }, h)
}

// cycle runs after each garbage collection.
func (h *MinHeap) cycle() {
	if h.stopped.Load() {
		return
	}
	h.tune()
	h.arm()
}

// tune sets GOGC for the live heap the last cycle marked.
func (h *MinHeap) tune() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopped.Load() {
		return
	}
	metrics.Read(h.sample)
	live := uint64(0)
	if h.sample[0].Value.Kind() == metrics.KindUint64 {
		live = h.sample[0].Value.Uint64()
	}
	p := gcPercentFor(live, h.Bytes)
	if p != h.set {
		debug.SetGCPercent(p)
		h.set = p
	}
}

// maxGCPercent bounds the target set for a nearly empty heap.
const maxGCPercent = 1 << 20

// goMinHeap is Go's minimum heap target at GOGC=100: before the first
// cycle, and for a smaller live heap, the target is this times GOGC/100.
const goMinHeap = 4 << 20

// goGCPercent is Go's default GOGC, the target over a heap above the floor.
const goGCPercent = 100

// gcPercentFor is the GOGC at which a live heap of live bytes is next
// collected at minBytes, or at twice the live heap where that comes later.
// A live heap of 0 (no cycle yet) or under Go's 4 MiB minimum counts as
// that minimum, which GOGC scales too.
func gcPercentFor(live, minBytes uint64) int {
	live = max(live, goMinHeap)
	if minBytes <= live {
		return goGCPercent
	}
	p := math.Ceil((float64(minBytes)/float64(live) - 1) * 100)
	switch {
	case p <= goGCPercent:
		return goGCPercent
	case p > maxGCPercent:
		return maxGCPercent
	}
	return int(p)
}
