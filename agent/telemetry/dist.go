package telemetry

import (
	"context"
	"math"
	"slices"
	"time"
)

const distDescription = "Observed values of a model input feature or output, for drift detection."

// Feature kinds, the kind argument of Distribution.
const (
	KindInput  = "input"
	KindOutput = "output"
)

// Dist is the distribution of one feature (or output) of one model
// version. Its histograms are cumulative since the series was created, so
// they add up across hosts and over time. Observe is safe for concurrent use
// and does not allocate; a nil *Dist ignores observations.
type Dist struct {
	t     *Telemetry
	attrs *attrOpts
	start time.Time

	// Fixed bins (from the manifest), aggregated here and exported by the
	// producer; bounds is nil for an exponential histogram, which the SDK
	// aggregates.
	bounds []float64
	buckets
	min atomicFloat
	max atomicFloat
}

// Distribution returns the distribution of feature (kind input or output)
// of a model version, creating it on first use; later calls with the same
// names return the same *Dist whatever their bins. bins are the version's
// fixed bin edges (strictly increasing and finite): the series is then an
// explicit-bucket histogram with exactly those bounds. Without bins, or
// with bins that are not valid (logged), it is a base-2 exponential
// histogram. The caller may reuse bins afterwards. Callers on hot paths
// should keep the *Dist rather than look it up each time.
func (t *Telemetry) Distribution(model, version, feature, kind string, bins []float64) *Dist {
	if t == nil {
		return nil
	}
	k := attrKey{kind: setFeature, a: model, b: version, c: feature, d: kind}
	if d, ok := t.series.dists.load(k); ok {
		return d
	}
	return t.series.dists.loadOrStore(k, 0, func() *Dist { return t.newDist(k, bins) }, nil)
}

func (t *Telemetry) newDist(k attrKey, bins []float64) *Dist {
	d := &Dist{t: t, attrs: newAttrOpts(k), start: t.now()}
	if len(bins) == 0 {
		return d
	}
	if why := validBins(bins); why != "" {
		t.log.Warn("distribution bins are "+why+"; using an exponential histogram",
			"model", k.a, "version", k.b, "feature", k.c, "kind", k.d)
		return d
	}
	d.bounds = slices.Clone(bins)
	d.buckets = newBuckets(d.bounds)
	d.min.store(math.Inf(1))
	d.max.store(math.Inf(-1))
	return d
}

// Observe adds v to the distribution. NaN and infinite values are not
// added; they are counted in drover.distribution.invalid.
func (d *Dist) Observe(v float64) {
	if d == nil {
		return
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		d.t.inst.distInvalid.Add(context.Background(), 1, d.attrs.add...)
		return
	}
	if d.bounds == nil {
		d.t.inst.dist.Record(context.Background(), v, d.attrs.rec...)
		return
	}
	d.observe(v)
	d.min.lower(v)
	d.max.raise(v)
}

// Bounds returns the fixed bin edges of d, nil for an exponential
// histogram. The slice must not be modified.
func (d *Dist) Bounds() []float64 {
	if d == nil {
		return nil
	}
	return d.bounds
}

// validBins reports why bins cannot be histogram bounds ("" if they can).
func validBins(bins []float64) string {
	for i, b := range bins {
		if math.IsNaN(b) || math.IsInf(b, 0) {
			return "not finite"
		}
		if i > 0 && b <= bins[i-1] {
			return "not strictly increasing"
		}
	}
	return ""
}
