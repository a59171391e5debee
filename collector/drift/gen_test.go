package drift

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/drover-ml/drover/collector/store"
	"github.com/drover-ml/drover/shared/semconv"
	"github.com/drover-ml/drover/shared/testenv"
)

var testBounds = []float64{-2, -1, 0, 1, 2}

// scenario describes generated telemetry of one model version: every
// minute from Start to End, each host adds PerMinute observations per
// feature (normal, mean 0; mean Shift for drifted features from DriftFrom
// on), request counts, latencies and f1/accuracy gauges.
type scenario struct {
	Model, Version      string
	Start, End          time.Time
	DriftFrom           time.Time
	Hosts               int
	Features            int
	Drifted             map[string]bool
	Shift               float64
	PerMinute           int
	F1Ref, F1Cur        float64 // f1 before and after DriftFrom
	LateHost, Restarted bool    // one more host starting at DriftFrom+30m; host-0 restarting at DriftFrom+40m
	// Temporality of the histograms and counters: "" or "cumulative",
	// "delta" (as drover agents send them), or "mixed" (delta from hosts
	// with an even index, cumulative from the others).
	Temporality string
}

func (s scenario) delta(host int) bool {
	return s.Temporality == "delta" || s.Temporality == "mixed" && host%2 == 0
}

// points are the generated increments, for offline computation.
type genPoint struct {
	at      time.Time
	feature string
	inc     []float64
}

func bucket(v float64) int { return sort.SearchFloat64s(testBounds, v) } // (b[i-1], b[i]]

func (s scenario) generate() (*store.Batch, []genPoint) {
	rng := rand.New(rand.NewPCG(1, 2))
	b := &store.Batch{}
	var gen []genPoint
	point := func(at, start time.Time, host, metric string) store.Point {
		return store.Point{Time: at, StartTime: start, Service: semconv.ServiceNameAgent, Host: host, AgentID: "agent-" + host,
			Model: s.Model, ModelVersion: s.Version, Metric: metric}
	}
	hosts := s.Hosts
	if s.LateHost {
		hosts++
	}
	for h := range hosts {
		host := fmt.Sprintf("host-%d", h)
		first := s.Start
		if h == s.Hosts { // the late host
			first = s.DriftFrom.Add(30 * time.Minute)
		}
		restart := s.Restarted && h == 0
		delta := s.delta(h)
		for f := range s.Features {
			feature := fmt.Sprintf("f%d", f)
			cum := make([]uint64, len(testBounds)+1)
			start := first.Add(-10 * time.Second)
			for at := first.Add(30 * time.Second); at.Before(s.End); at = at.Add(time.Minute) {
				if restart && at.After(s.DriftFrom.Add(40*time.Minute)) && start.Before(s.DriftFrom) {
					start, cum = at.Add(-10*time.Second), make([]uint64, len(cum))
				}
				mean := 0.0
				if s.Drifted[feature] && !at.Before(s.DriftFrom) {
					mean = s.Shift
				}
				inc := make([]float64, len(cum))
				for range s.PerMinute {
					inc[bucket(rng.NormFloat64()+mean)]++
				}
				var n uint64
				for i := range cum {
					cum[i] += uint64(inc[i])
					n += cum[i]
				}
				gen = append(gen, genPoint{at, feature, inc})
				row := store.HistogramRow{
					Point: point(at, start, host, semconv.MetricDistribution), Feature: feature,
					Temporality: store.TemporalityCumulative, Count: n, Bounds: testBounds, Counts: append([]uint64(nil), cum...),
				}
				if delta {
					row.StartTime, row.Temporality, row.Count, row.Counts = at.Add(-time.Minute), store.TemporalityDelta, 0, make([]uint64, len(inc))
					for i, v := range inc {
						row.Counts[i] = uint64(v)
						row.Count += uint64(v)
					}
				}
				b.Histograms = append(b.Histograms, row)
			}
		}
		// Requests (ok and error), latency and evaluation gauges.
		start := first.Add(-10 * time.Second)
		var ok, bad, joined float64
		lat := make([]uint64, 4)
		for at := first.Add(30 * time.Second); at.Before(s.End); at = at.Add(time.Minute) {
			ok += 100
			bad += 1
			lat[0] += 50
			lat[1] += 40
			lat[2] += 9
			lat[3] += 1
			for status, v := range map[string]float64{"ok": ok, "error": bad} {
				p := point(at, start, host, semconv.MetricRequests)
				p.Attributes = map[string]string{semconv.AttrStatus: status}
				row := store.SumRow{Point: p, Temporality: store.TemporalityCumulative, IsMonotonic: true, Value: v}
				if delta {
					row.StartTime, row.Temporality, row.Value = at.Add(-time.Minute), store.TemporalityDelta, map[string]float64{"ok": 100, "error": 1}[status]
				}
				b.Sums = append(b.Sums, row)
			}
			row := store.HistogramRow{Point: point(at, start, host, semconv.MetricRequestLatency),
				Temporality: store.TemporalityCumulative, Count: lat[0] + lat[1] + lat[2] + lat[3],
				Bounds: []float64{0.001, 0.01, 0.1}, Counts: append([]uint64(nil), lat...)}
			if delta {
				row.StartTime, row.Temporality, row.Count, row.Counts = at.Add(-time.Minute), store.TemporalityDelta, 100, []uint64{50, 40, 9, 1}
			}
			b.Histograms = append(b.Histograms, row)
			// Labels joined to samples (behind the labels metrics): 20 a
			// minute, a cumulative counter as the agent sends it.
			joined += 20
			fp := point(at, start, host, semconv.MetricFeedback)
			fp.Attributes = map[string]string{semconv.AttrStatus: "joined"}
			b.Sums = append(b.Sums, store.SumRow{Point: fp, Temporality: store.TemporalityCumulative, IsMonotonic: true, Value: joined})
			f1 := s.F1Ref
			if !at.Before(s.DriftFrom) {
				f1 = s.F1Cur
			}
			for metric, v := range map[string]float64{"f1": f1, "accuracy": 0.95} {
				p := point(at, time.Time{}, host, semconv.MetricEval)
				p.Attributes = map[string]string{semconv.AttrMetric: metric, semconv.AttrSource: "labels"}
				b.Gauges = append(b.Gauges, store.GaugeRow{Point: p, Value: v})
			}
		}
	}
	return b, gen
}

// offline sums the generated increments of a feature in [from, to).
func offline(gen []genPoint, feature string, from, to time.Time) []float64 {
	out := make([]float64, len(testBounds)+1)
	for _, g := range gen {
		if g.feature == feature && !g.at.Before(from) && g.at.Before(to) {
			for i, v := range g.inc {
				out[i] += v
			}
		}
	}
	return out
}

func insert(t testing.TB, db *testenv.DB, b *store.Batch, token string) {
	t.Helper()
	st := store.New(db.Conn, db.Name, db.Options)
	defer st.Close()
	if err := st.Insert(context.Background(), b, token); err != nil {
		t.Fatalf("insert: %v", err)
	}
}

func batchOf(rows []store.DriftRow) *store.Batch { return &store.Batch{Drift: rows} }
