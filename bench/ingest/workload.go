package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
)

// sentinel is the timestamp written into the templates; its 8 little-endian
// bytes are found once and overwritten with each round's time when a
// request is sent, so replaying costs a copy and a few stores, not an encode.
const sentinel = uint64(0x7e57_a11c_e5ca_1ab1)

// Workload is a fixed set of series, encoded once as the requests of one
// round (every series once). Round r has its points at Base + r×Step.
type Workload struct {
	Requests       [][]byte // one round
	offsets        [][]int  // per request: where the sentinel timestamps are
	PointsPerReq   []int
	PointsPerRound int
	GaugesPerRound int
	HistsPerRound  int
	Base           time.Time
	Step           time.Duration
	BytesPerRound  int
}

// Per (host, model): 5 gauge points and 5 histogram points.
var models = []struct{ name, version string }{{"fraud-detector", "7"}, {"recommender", "12"}}

var latencyBounds = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}
var batchBounds = []float64{1, 2, 4, 8, 16, 32, 64, 128}
var featureBounds = []float64{0, 10, 20, 30, 40, 50, 60, 70, 80, 90}

// NewWorkload builds the templates for hosts agents, hostsPerReq agents per
// request (each agent contributes 20 points). With gaugesOnly the histogram
// series are sent as gauges, to compare with per-gauge-point references.
func NewWorkload(hosts, hostsPerReq int, gaugesOnly, delta bool, base time.Time, step time.Duration) (*Workload, error) {
	w := &Workload{Base: base, Step: step}
	start := pcommon.NewTimestampFromTime(base.Add(-time.Hour))
	for first := 0; first < hosts; first += hostsPerReq {
		md := pmetric.NewMetrics()
		points := 0
		for h := first; h < min(first+hostsPerReq, hosts); h++ {
			points += addAgent(md, h, start, gaugesOnly, delta)
		}
		req := pmetricotlp.NewExportRequestFromMetrics(md)
		b, err := req.MarshalProto()
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		offs := findSentinels(b)
		if len(offs) != points {
			return nil, fmt.Errorf("template has %d timestamps for %d points", len(offs), points)
		}
		w.Requests = append(w.Requests, b)
		w.offsets = append(w.offsets, offs)
		w.PointsPerReq = append(w.PointsPerReq, points)
		w.PointsPerRound += points
		w.BytesPerRound += len(b)
	}
	w.GaugesPerRound = hosts * len(models) * 5
	w.HistsPerRound = hosts * len(models) * 5
	if gaugesOnly {
		w.GaugesPerRound, w.HistsPerRound = w.GaugesPerRound+w.HistsPerRound, 0
	}
	return w, nil
}

func findSentinels(b []byte) []int {
	var pat [8]byte
	binary.LittleEndian.PutUint64(pat[:], sentinel)
	var offs []int
	for i := 0; ; {
		j := bytes.Index(b[i:], pat[:])
		if j < 0 {
			return offs
		}
		offs = append(offs, i+j)
		i += j + 8
	}
}

// RoundTime is the timestamp of every point of round r.
func (w *Workload) RoundTime(r int) time.Time { return w.Base.Add(time.Duration(r) * w.Step) }

// Fill copies template i into dst (reusing its capacity) with round r's time.
func (w *Workload) Fill(dst []byte, i, r int) []byte {
	dst = append(dst[:0], w.Requests[i]...)
	t := uint64(w.RoundTime(r).UnixNano())
	for _, o := range w.offsets[i] {
		binary.LittleEndian.PutUint64(dst[o:], t)
	}
	return dst
}

// addAgent appends one agent's resource (as drover-agent sends it) and
// returns its number of points.
func addAgent(md pmetric.Metrics, h int, start pcommon.Timestamp, gaugesOnly, delta bool) int {
	rm := md.ResourceMetrics().AppendEmpty()
	ra := rm.Resource().Attributes()
	host := fmt.Sprintf("gpu-node-%04d.prod.example.internal", h)
	ra.PutStr("service.name", "drover-agent")
	ra.PutStr("service.version", "0.9.3")
	ra.PutStr("service.instance.id", fmt.Sprintf("%08x-4b1d-4e0f-9c2a-%012x", h*2654435761&0xffffffff, h))
	ra.PutStr("host.name", host)
	ra.PutStr("host.arch", "amd64")
	ra.PutStr("os.type", "linux")
	ra.PutStr("drover.agent.id", fmt.Sprintf("%s:/var/lib/drover", host))
	ra.PutStr("deployment.environment.name", "prod")
	ra.PutStr("cloud.region", []string{"eu-west-1", "us-east-1", "ap-south-1"}[h%3])
	ra.PutStr("k8s.namespace.name", "ml-serving")
	ra.PutStr("k8s.pod.name", fmt.Sprintf("drover-agent-%05x", h*7919))
	sm := rm.ScopeMetrics().AppendEmpty()
	sm.Scope().SetName("github.com/drover-ml/drover/agent")
	sm.Scope().SetVersion("0.9.3")
	ms := sm.Metrics()
	ts := pcommon.Timestamp(sentinel)
	n := 0
	gauge := func(name, unit string, pts [][]string, v float64) {
		m := ms.AppendEmpty()
		m.SetName(name)
		m.SetUnit(unit)
		m.SetDescription("")
		dps := m.SetEmptyGauge().DataPoints()
		for i, attrs := range pts {
			dp := dps.AppendEmpty()
			dp.SetTimestamp(ts)
			dp.SetStartTimestamp(start)
			dp.SetDoubleValue(v + float64(i) + float64(h%17)/7)
			putAttrs(dp.Attributes(), attrs)
			n++
		}
	}
	hist := func(name, unit string, bounds []float64, pts [][]string) {
		if gaugesOnly {
			gauge(name, unit, pts, bounds[0])
			return
		}
		m := ms.AppendEmpty()
		m.SetName(name)
		m.SetUnit(unit)
		hh := m.SetEmptyHistogram()
		hh.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
		if delta {
			hh.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
		}
		for i, attrs := range pts {
			dp := hh.DataPoints().AppendEmpty()
			dp.SetTimestamp(ts)
			dp.SetStartTimestamp(start)
			dp.ExplicitBounds().FromRaw(bounds)
			counts := make([]uint64, len(bounds)+1)
			var total uint64
			for b := range counts {
				counts[b] = uint64((h+i+b*13)%97 + b)
				total += counts[b]
			}
			dp.BucketCounts().FromRaw(counts)
			dp.SetCount(total)
			dp.SetSum(float64(total) * bounds[len(bounds)/2])
			dp.SetMin(bounds[0] / 2)
			dp.SetMax(bounds[len(bounds)-1])
			putAttrs(dp.Attributes(), attrs)
			n++
		}
	}
	for _, md := range models {
		mv := []string{"drover.model", md.name, "drover.model.version", md.version}
		with := func(kv ...string) []string { return append(append([]string{}, mv...), kv...) }
		gauge("drover.model.loaded", "1", [][]string{with("drover.model.runtime", "onnxruntime")}, 1)
		gauge("drover.requests.inflight", "{request}", [][]string{with("drover.protocol", "rest"), with("drover.protocol", "grpc")}, 3)
		gauge("drover.model.memory", "By", [][]string{with("drover.model.runtime", "onnxruntime")}, 512<<20)
		gauge("drover.queue.depth", "{request}", [][]string{with("drover.route.role", "primary")}, 0)
		hist("drover.request.duration", "s", latencyBounds, [][]string{
			with("drover.protocol", "rest", "drover.status", "ok", "drover.route.role", "primary"),
			with("drover.protocol", "grpc", "drover.status", "ok", "drover.route.role", "primary"),
			with("drover.protocol", "rest", "drover.status", "timeout", "drover.route.role", "primary"),
		})
		hist("drover.batch.size", "{request}", batchBounds, [][]string{with("drover.route.role", "primary")})
		hist("drover.feature.distribution", "1", featureBounds, [][]string{with("drover.feature", "customer_age", "drover.feature.kind", "input")})
	}
	return n
}

func putAttrs(m pcommon.Map, kv []string) {
	m.EnsureCapacity(len(kv) / 2)
	for i := 0; i+1 < len(kv); i += 2 {
		m.PutStr(kv[i], kv[i+1])
	}
}
