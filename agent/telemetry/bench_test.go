package telemetry

import (
	"context"
	"strconv"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/drover-ml/drover/shared/semconv"
)

func benchTelemetry(b *testing.B) *Telemetry {
	b.Helper()
	tel, err := New(context.Background(), Config{Disabled: true}, testResource, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	return tel
}

// BenchmarkRecordRequest compares RecordRequest (this package's atomic
// series) with the same two measurements through SDK instruments, with a
// cached attribute set and with attributes built per call.
func BenchmarkRecordRequest(b *testing.B) {
	b.Run("series", func(b *testing.B) {
		tel := benchTelemetry(b)
		tel.RecordRequest("iris", "3", "rest", "ok", time.Millisecond) // warm up
		b.ReportAllocs()
		for b.Loop() {
			tel.RecordRequest("iris", "3", "rest", "ok", time.Millisecond)
		}
	})
	b.Run("series-parallel", func(b *testing.B) {
		tel := benchTelemetry(b)
		models := []string{"iris", "mnist", "resnet", "bert"}
		for _, m := range models {
			tel.RecordRequest(m, "3", "rest", "ok", time.Millisecond)
		}
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				tel.RecordRequest(models[i%len(models)], "3", "rest", "ok", time.Millisecond)
				i++
			}
		})
	})
	sdk := func(b *testing.B) (metric.Int64Counter, metric.Float64Histogram) {
		tel := benchTelemetry(b)
		m := tel.mp.Meter("bench")
		c, err := m.Int64Counter("bench.requests")
		if err != nil {
			b.Fatal(err)
		}
		h, err := m.Float64Histogram("bench.duration", metric.WithExplicitBucketBoundaries(latencyBounds...))
		if err != nil {
			b.Fatal(err)
		}
		return c, h
	}
	b.Run("sdk-cached-set", func(b *testing.B) {
		c, h := sdk(b)
		ctx := context.Background()
		a := newAttrOpts(attrKey{kind: setRequest, a: "iris", b: "3", c: "rest", d: "ok"})
		b.ReportAllocs()
		for b.Loop() {
			c.Add(ctx, 1, a.add...)
			h.Record(ctx, time.Millisecond.Seconds(), a.rec...)
		}
	})
	b.Run("sdk-attributes-per-call", func(b *testing.B) {
		c, h := sdk(b)
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			attrs := metric.WithAttributes(
				attribute.String(semconv.AttrModel, "iris"), attribute.String(semconv.AttrModelVersion, "3"),
				attribute.String(semconv.AttrProtocol, "rest"), attribute.String(semconv.AttrStatus, "ok"),
			)
			c.Add(ctx, 1, attrs)
			h.Record(ctx, time.Millisecond.Seconds(), attrs)
		}
	})
}

// BenchmarkInFlight measures the +1/-1 pair that brackets every request.
func BenchmarkInFlight(b *testing.B) {
	tel := benchTelemetry(b)
	b.ReportAllocs()
	for b.Loop() {
		tel.InFlight("iris", 1)
		tel.InFlight("iris", -1)
	}
}

// BenchmarkDistObserve measures Observe on a fixed-bin distribution (this
// package's atomic counters) and on an exponential one (the SDK).
func BenchmarkDistObserve(b *testing.B) {
	bins := make([]float64, 20)
	for i := range bins {
		bins[i] = float64(i)
	}
	for _, tc := range []struct {
		name string
		bins []float64
	}{{"fixed-20-bins", bins}, {"exponential", nil}} {
		b.Run(tc.name, func(b *testing.B) {
			d := benchTelemetry(b).Distribution("iris", "3", "x", KindInput, tc.bins)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				d.Observe(float64(i%23) - 1.5)
				i++
			}
		})
		b.Run(tc.name+"-parallel", func(b *testing.B) {
			d := benchTelemetry(b).Distribution("iris", "3", "x", KindInput, tc.bins)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					d.Observe(float64(i%23) - 1.5)
					i++
				}
			})
		})
	}
}

// BenchmarkDistribution measures the lookup of a cached *Dist, for callers
// that do not keep it.
func BenchmarkDistribution(b *testing.B) {
	tel := benchTelemetry(b)
	for i := range 8 {
		tel.Distribution("iris", "3", "f"+strconv.Itoa(i), KindInput, nil)
	}
	b.ReportAllocs()
	for b.Loop() {
		tel.Distribution("iris", "3", "f3", KindInput, nil)
	}
}
