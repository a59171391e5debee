package telemetry

import (
	"context"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// The OTLP export can carry the series of producer as deltas, which the
// collector sums across hosts per minute. deltaProducer computes them from
// the same cumulative atomics that Prometheus reads, so recording is the
// same lock-free, allocation-free path whatever the temporality; all the
// delta work happens at collection.
//
// A delta is "since the last successful export", not "since the last
// collection": deltaProducer keeps, per series, the cumulative snapshot
// that the collector acknowledged (acked) and the one the latest Produce
// took (pending). metricExporter commits pending into acked after an export
// succeeds; after a failure nothing is committed, so the next export's
// delta also holds the failed interval's counts and nothing is lost while
// the collector is down. The price: an export that fails on the agent's
// side after the collector stored it (a timeout on the response) is counted
// twice. That is also why the OTLP exporter does not retry: the next
// interval's export is the retry.
//
// Commit takes the latest pending without checking that it is the one the
// exporter just sent: the exporter cannot tell which Produce its data came
// from. That holds because the periodic reader runs collect and export one
// after the other in one goroutine (its ticks and ForceFlush) and, at
// Shutdown, only after that goroutine has stopped; nothing else collects
// from the OTLP reader, and it does not split exports into batches. A
// pending snapshot is committed at most once.
//
// What is omitted: a series whose delta count is zero is left out of the
// export, and keeps its acked snapshot (so a sum that a collection read
// ahead of its counts is not lost). Delta points of fixed-bin
// distributions have no min and max: the atomics hold them since the
// series started, and an interval's extremes would cost the hot path more.

// maxRetired bounds the request series and, separately, the fixed-bin
// distributions that wait, after their version was forgotten, for an
// export of their last delta; beyond it the oldest are dropped with their
// last counts (only while the collector is down and versions keep being
// unloaded).
const maxRetired = maxSeries

// snapshot is a histogram's cumulative counts and sum at a time.
type snapshot struct {
	time   time.Time
	counts []uint64
	sum    float64
}

// deltaProducer is the delta view of a producer, for the OTLP reader; it
// implements sdkmetric.Producer. It is safe for concurrent use.
type deltaProducer struct {
	p *producer

	mu      sync.Mutex
	acked   map[*buckets]snapshot // by series; a series not in it was never acked
	pending *deltaRound           // the latest Produce's, until committed
	// Series of forgotten versions, until an export of their last delta
	// succeeds.
	retiredReqs  []*requestSeries
	retiredDists []*Dist
}

func newDeltaProducer(p *producer) *deltaProducer {
	return &deltaProducer{p: p, acked: map[*buckets]snapshot{}}
}

// deltaRound is one Produce of a deltaProducer: what it read (acked) and
// what it took (snaps, the next acked if the export succeeds).
type deltaRound struct {
	acked map[*buckets]snapshot
	snaps map[*buckets]snapshot
	// The retired series included.
	reqs  []*requestSeries
	dists []*Dist
}

// Produce returns the series like producer.Produce, with the monotonic
// ones (drover.requests, drover.request.duration, fixed-bin
// drover.distribution) as deltas since the last committed Produce.
func (d *deltaProducer) Produce(context.Context) ([]metricdata.ScopeMetrics, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r := &deltaRound{
		acked: d.acked,
		snaps: make(map[*buckets]snapshot, len(d.acked)),
		reqs:  slices.Clone(d.retiredReqs),
		dists: slices.Clone(d.retiredDists),
	}
	out := d.p.produce(d.p.t.now(), r)
	r.acked = nil
	d.pending = r
	return out, nil
}

// commit makes the pending snapshots the acked ones; metricExporter calls
// it after an export succeeds. Series left out of that Produce (forgotten
// ones whose last delta it held, or that were dropped) lose their state.
func (d *deltaProducer) commit() {
	d.mu.Lock()
	defer d.mu.Unlock()
	r := d.pending
	if r == nil {
		return
	}
	d.pending = nil
	d.acked = r.snaps
	if len(r.reqs) == 0 && len(r.dists) == 0 {
		return
	}
	done := make(map[*buckets]bool, len(r.reqs)+len(r.dists))
	for _, s := range r.reqs {
		done[&s.latency] = true
	}
	for _, x := range r.dists {
		done[&x.buckets] = true
	}
	for b := range done {
		delete(d.acked, b)
	}
	d.retiredReqs = slices.DeleteFunc(d.retiredReqs, func(s *requestSeries) bool { return done[&s.latency] })
	d.retiredDists = slices.DeleteFunc(d.retiredDists, func(x *Dist) bool { return done[&x.buckets] })
}

// retireLocked keeps series that producer no longer holds until their last
// delta is exported. d.mu must be held since before they left producer's
// maps, so that no Produce misses them in both places (it would forget
// their acked snapshot and later send their whole count again).
func (d *deltaProducer) retireLocked(reqs []*requestSeries, dists []*Dist) {
	d.retiredReqs = append(d.retiredReqs, reqs...)
	d.retiredDists = append(d.retiredDists, dists...)
	if n := len(d.retiredReqs) - maxRetired; n > 0 {
		for _, s := range d.retiredReqs[:n] {
			delete(d.acked, &s.latency)
		}
		d.retiredReqs = slices.Delete(d.retiredReqs, 0, n)
	}
	if n := len(d.retiredDists) - maxRetired; n > 0 {
		for _, x := range d.retiredDists[:n] {
			delete(d.acked, &x.buckets)
		}
		d.retiredDists = slices.Delete(d.retiredDists, 0, n)
	}
}

// point returns the data point of histogram b at now: cumulative with a
// nil round; otherwise the delta since b's acked snapshot (or since start
// if it has none), recording b's snapshot in the round, and false when the
// delta count is zero.
func (r *deltaRound) point(b *buckets, attrs attribute.Set, start, now time.Time) (metricdata.HistogramDataPoint[float64], bool) {
	pt := b.point(attrs, start, now)
	if r == nil {
		return pt, true
	}
	cur := snapshot{time: now, counts: slices.Clone(pt.BucketCounts), sum: pt.Sum}
	prev, acked := r.acked[b]
	if acked {
		pt.StartTime = prev.time
		pt.Count = 0
		for i := range pt.BucketCounts {
			pt.BucketCounts[i] -= prev.counts[i]
			pt.Count += pt.BucketCounts[i]
		}
		pt.Sum -= prev.sum
	}
	if pt.Count == 0 {
		if acked {
			r.snaps[b] = prev
		}
		return pt, false
	}
	r.snaps[b] = cur
	return pt, true
}

// mergeSame merges adjacent delta points with the same attributes and
// bounds (a forgotten version's series and the one that replaced it, in
// the same export) into one, so that an export holds one point per series.
func mergeSame(pts []metricdata.HistogramDataPoint[float64]) []metricdata.HistogramDataPoint[float64] {
	out := pts[:0]
	for _, p := range pts {
		if n := len(out); n > 0 && out[n-1].Attributes.Equals(&p.Attributes) && slices.Equal(out[n-1].Bounds, p.Bounds) {
			q := &out[n-1]
			for i := range q.BucketCounts {
				q.BucketCounts[i] += p.BucketCounts[i]
			}
			q.Count += p.Count
			q.Sum += p.Sum
			if p.StartTime.Before(q.StartTime) {
				q.StartTime = p.StartTime
			}
			continue
		}
		out = append(out, p)
	}
	return out
}
