package store

import (
	"fmt"
	"hash/fnv"
	"iter"
	"slices"
	"time"
	"unsafe"
)

// Temporality is an OTLP aggregation temporality, with OTLP's numbering, so
// that the ingest can convert the protobuf enum with a plain conversion.
// It is stored as Enum8('unspecified' = 0, 'delta' = 1, 'cumulative' = 2).
type Temporality int8

// Temporalities.
const (
	TemporalityUnspecified Temporality = 0
	TemporalityDelta       Temporality = 1
	TemporalityCumulative  Temporality = 2
)

var temporalityNames = [...]string{"unspecified", "delta", "cumulative"}

// String returns the Enum8 name: unspecified, delta or cumulative.
func (t Temporality) String() string {
	if t >= 0 && int(t) < len(temporalityNames) {
		return temporalityNames[t]
	}
	return fmt.Sprintf("Temporality(%d)", int8(t))
}

// Scan reads the Enum8 column (by name, as the driver hands it over) or a
// number, so that rows scan into the Row structs.
func (t *Temporality) Scan(src any) error {
	switch v := src.(type) {
	case string:
		for i, name := range temporalityNames {
			if v == name {
				*t = Temporality(i)
				return nil
			}
		}
		return fmt.Errorf("temporality %q: want unspecified, delta or cumulative", v)
	case int8:
		*t = Temporality(v)
	case int64:
		*t = Temporality(v)
	default:
		return fmt.Errorf("temporality: cannot scan %T", src)
	}
	return nil
}

// Point holds the columns that every metrics_* table shares: when the point
// was measured, where it came from, which model and metric it belongs to.
// Model and ModelVersion come from the drover.model and drover.model.version
// point attributes, else from the resource attributes; Attributes are the
// point attributes without the ones pulled out into columns. The resource's
// attributes are stored once per resource, in the resources table, under
// ResourceID (see ResourceID).
type Point struct {
	Time         time.Time         `ch:"time"`
	StartTime    time.Time         `ch:"start_time"`
	Service      string            `ch:"service"`
	Host         string            `ch:"host"`
	AgentID      string            `ch:"agent_id"`
	Model        string            `ch:"model"`
	ModelVersion string            `ch:"model_version"`
	Metric       string            `ch:"metric"`
	Unit         string            `ch:"unit"`
	Attributes   map[string]string `ch:"attributes"`
	ResourceID   uint64            `ch:"resource_id"`
	ScopeName    string            `ch:"scope_name"`
	ScopeVersion string            `ch:"scope_version"`
}

// ResourceRow is a row of resources: the attributes of an OTLP resource (an
// agent, a host, a service), stored once instead of on every point. A
// later row for the same ResourceID replaces an earlier one (the one with
// the latest LastSeen wins); the ingest writes a resource again every hour
// while it sends data, and rows not written for the metrics TTL expire.
type ResourceRow struct {
	ResourceID uint64            `ch:"resource_id"`
	LastSeen   time.Time         `ch:"last_seen"`
	Service    string            `ch:"service"`
	Host       string            `ch:"host"`
	AgentID    string            `ch:"agent_id"`
	Attributes map[string]string `ch:"attributes"`
}

// ResourceID identifies a resource by its attributes: FNV-1a (64 bit) over
// the keys in sorted order, each key and value followed by a zero byte. It
// is 0 for a resource without attributes, which has no resources row. The
// same attributes give the same id in every process.
func ResourceID(attrs map[string]string) uint64 {
	if len(attrs) == 0 {
		return 0
	}
	keys := make([]string, 0, len(attrs))
	for k := range attrs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	h := fnv.New64a()
	zero := []byte{0}
	for _, k := range keys {
		h.Write([]byte(k))
		h.Write(zero)
		h.Write([]byte(attrs[k]))
		h.Write(zero)
	}
	return h.Sum64()
}

// GaugeRow is a row of metrics_gauge.
type GaugeRow struct {
	Point
	Value float64 `ch:"value"`
}

// SumRow is a row of metrics_sum (OTLP Sum: counters and up-down counters).
type SumRow struct {
	Point
	Temporality Temporality `ch:"temporality"`
	IsMonotonic bool        `ch:"is_monotonic"`
	Value       float64     `ch:"value"`
}

// HistogramRow is a row of metrics_histogram: an explicit-bucket histogram.
// Counts has len(Bounds)+1 buckets, as in OTLP. Feature comes from the
// drover.feature attribute. Min and Max are nil when the point has none;
// Sum is 0 when the point has none.
type HistogramRow struct {
	Point
	Feature     string      `ch:"feature"`
	Temporality Temporality `ch:"temporality"`
	Count       uint64      `ch:"count"`
	Sum         float64     `ch:"sum"`
	Min         *float64    `ch:"min"`
	Max         *float64    `ch:"max"`
	Bounds      []float64   `ch:"bounds"`
	Counts      []uint64    `ch:"counts"`
}

// ExpHistogramRow is a row of metrics_exp_histogram: an OTLP exponential
// histogram. Bucket i of the positive range counts values in
// (base^(PositiveOffset+i), base^(PositiveOffset+i+1)] with base =
// 2^(2^-Scale); the negative range mirrors it for -value.
type ExpHistogramRow struct {
	Point
	Feature              string      `ch:"feature"`
	Temporality          Temporality `ch:"temporality"`
	Count                uint64      `ch:"count"`
	Sum                  float64     `ch:"sum"`
	Min                  *float64    `ch:"min"`
	Max                  *float64    `ch:"max"`
	Scale                int32       `ch:"scale"`
	ZeroCount            uint64      `ch:"zero_count"`
	ZeroThreshold        float64     `ch:"zero_threshold"`
	PositiveOffset       int32       `ch:"positive_offset"`
	PositiveBucketCounts []uint64    `ch:"positive_bucket_counts"`
	NegativeOffset       int32       `ch:"negative_offset"`
	NegativeBucketCounts []uint64    `ch:"negative_bucket_counts"`
}

// SummaryRow is a row of metrics_summary: Quantiles[i] (in [0, 1]) has the
// value QuantileValues[i].
type SummaryRow struct {
	Point
	Count          uint64    `ch:"count"`
	Sum            float64   `ch:"sum"`
	Quantiles      []float64 `ch:"quantiles"`
	QuantileValues []float64 `ch:"quantile_values"`
}

// EventRow is a row of events: an OTLP log record. Event is its drover.event
// attribute; TraceID and SpanID are lower-case hex, empty when absent.
type EventRow struct {
	Time           time.Time         `ch:"time"`
	ObservedTime   time.Time         `ch:"observed_time"`
	Service        string            `ch:"service"`
	Host           string            `ch:"host"`
	AgentID        string            `ch:"agent_id"`
	Model          string            `ch:"model"`
	ModelVersion   string            `ch:"model_version"`
	Event          string            `ch:"event"`
	SeverityNumber uint8             `ch:"severity_number"`
	SeverityText   string            `ch:"severity_text"`
	Body           string            `ch:"body"`
	Attributes     map[string]string `ch:"attributes"`
	ResourceID     uint64            `ch:"resource_id"`
	TraceID        string            `ch:"trace_id"`
	SpanID         string            `ch:"span_id"`
}

// SampleRow is a row of samples: one sampled request, for training. Inputs,
// Outputs and Label are JSON; Label is empty while the request has none.
type SampleRow struct {
	Time         time.Time         `ch:"time"`
	Model        string            `ch:"model"`
	ModelVersion string            `ch:"model_version"`
	Host         string            `ch:"host"`
	RequestID    string            `ch:"request_id"`
	Inputs       string            `ch:"inputs"`
	Outputs      string            `ch:"outputs"`
	Label        string            `ch:"label"`
	Attributes   map[string]string `ch:"attributes"`
}

// Drift tests, the values of DriftRow.Test.
const (
	DriftTestPSI         = "psi"
	DriftTestJS          = "js"
	DriftTestKS          = "ks"
	DriftTestWasserstein = "wasserstein"
	DriftTestChi2        = "chi2"
	DriftTestMetric      = "metric"
	DriftTestErrorRate   = "error_rate"
	DriftTestP99         = "p99"
)

// DriftRow is a row of drift_results: one test of one feature (or metric) of
// a model version over [WindowStart, WindowEnd) against Reference, computed
// by Node.
type DriftRow struct {
	Time         time.Time `ch:"time"`
	Model        string    `ch:"model"`
	ModelVersion string    `ch:"model_version"`
	Feature      string    `ch:"feature"`
	Test         string    `ch:"test"`
	Value        float64   `ch:"value"`
	Threshold    float64   `ch:"threshold"`
	Drifted      bool      `ch:"drifted"`
	WindowStart  time.Time `ch:"window_start"`
	WindowEnd    time.Time `ch:"window_end"`
	Reference    string    `ch:"reference"`
	Node         string    `ch:"node"`
}

// JobRow is a row of jobs: one state of a re-optimization job. Every change
// inserts the whole row again with a higher RowVersion; the highest wins.
// LeaseUntil, Started and Finished are nil until set; ResultVersion is 0
// until the job produced a version.
type JobRow struct {
	ID            string     `ch:"id"`
	Model         string     `ch:"model"`
	ModelVersion  string     `ch:"model_version"`
	IncidentStart time.Time  `ch:"incident_start"`
	State         string     `ch:"state"`
	Attempt       uint32     `ch:"attempt"`
	LeaseOwner    string     `ch:"lease_owner"`
	LeaseUntil    *time.Time `ch:"lease_until"`
	Created       time.Time  `ch:"created"`
	Updated       time.Time  `ch:"updated"`
	Started       *time.Time `ch:"started"`
	Finished      *time.Time `ch:"finished"`
	ExitCode      int32      `ch:"exit_code"`
	ResultVersion uint64     `ch:"result_version"`
	Error         string     `ch:"error"`
	Spec          string     `ch:"spec"`
	// Report is the built-in optimizer's report (JSON); empty otherwise.
	Report     string `ch:"report"`
	RowVersion uint64 `ch:"row_version"`
}

// Batch is a set of rows for every table, inserted together by Store.Insert.
// A Batch is not safe for concurrent modification; Insert only reads it.
type Batch struct {
	Resources     []ResourceRow
	Gauges        []GaugeRow
	Sums          []SumRow
	Histograms    []HistogramRow
	ExpHistograms []ExpHistogramRow
	Summaries     []SummaryRow
	Events        []EventRow
	Samples       []SampleRow
	Drift         []DriftRow
	Jobs          []JobRow
	DeadLetters   []DeadLetterRow
}

// Rows returns the number of rows in b, over all tables.
func (b *Batch) Rows() int {
	return len(b.Resources) + len(b.Gauges) + len(b.Sums) + len(b.Histograms) + len(b.ExpHistograms) +
		len(b.Summaries) + len(b.Events) + len(b.Samples) +
		len(b.Drift) + len(b.Jobs) + len(b.DeadLetters)
}

// MemBytes estimates the memory b's rows hold: each row's struct, the
// arrays of histograms and summaries, and the strings that are a row's own
// (the bodies of events and samples, the attributes of resources, events
// and samples, jobs' texts, dead letters). Names that rows share (model, metric, host, attribute maps
// shared by the points of a request) count once per row as their header
// only. Bounds on memory use it (the ingest's row cache); it is an
// estimate, not an accounting.
func (b *Batch) MemBytes() int {
	n := len(b.Resources)*int(unsafe.Sizeof(ResourceRow{})) +
		len(b.Gauges)*int(unsafe.Sizeof(GaugeRow{})) +
		len(b.Sums)*int(unsafe.Sizeof(SumRow{})) +
		len(b.Histograms)*int(unsafe.Sizeof(HistogramRow{})) +
		len(b.ExpHistograms)*int(unsafe.Sizeof(ExpHistogramRow{})) +
		len(b.Summaries)*int(unsafe.Sizeof(SummaryRow{})) +
		len(b.Events)*int(unsafe.Sizeof(EventRow{})) +
		len(b.Samples)*int(unsafe.Sizeof(SampleRow{})) +
		len(b.Drift)*int(unsafe.Sizeof(DriftRow{})) +
		len(b.Jobs)*int(unsafe.Sizeof(JobRow{})) +
		len(b.DeadLetters)*int(unsafe.Sizeof(DeadLetterRow{}))
	for i := range b.Resources {
		n += mapBytes(b.Resources[i].Attributes)
	}
	for i := range b.Histograms {
		h := &b.Histograms[i]
		n += 8 * (len(h.Bounds) + len(h.Counts))
		if h.Min != nil {
			n += 8
		}
		if h.Max != nil {
			n += 8
		}
	}
	for i := range b.ExpHistograms {
		h := &b.ExpHistograms[i]
		n += 8 * (len(h.PositiveBucketCounts) + len(h.NegativeBucketCounts))
	}
	for i := range b.Summaries {
		n += 8 * (len(b.Summaries[i].Quantiles) + len(b.Summaries[i].QuantileValues))
	}
	for i := range b.Events {
		e := &b.Events[i]
		n += len(e.Body) + len(e.TraceID) + len(e.SpanID) + mapBytes(e.Attributes)
	}
	for i := range b.Samples {
		s := &b.Samples[i]
		n += len(s.RequestID) + len(s.Inputs) + len(s.Outputs) + len(s.Label) + mapBytes(s.Attributes)
	}
	for i := range b.Jobs {
		n += len(b.Jobs[i].Error) + len(b.Jobs[i].Spec) + len(b.Jobs[i].Report)
	}
	for i := range b.DeadLetters {
		n += len(b.DeadLetters[i].Reason) + len(b.DeadLetters[i].Row)
	}
	return n
}

// mapBytes estimates an attribute map's memory: its keys and values and
// about 48 bytes of table per entry.
func mapBytes(m map[string]string) int {
	n := 0
	for k, v := range m {
		n += len(k) + len(v) + 48
	}
	return n
}

// TableRows yields each table that b has rows for (by the names of the
// Table constants, in the order Insert writes them) and its number of rows.
func (b *Batch) TableRows() iter.Seq2[string, int] {
	return func(yield func(string, int) bool) {
		for _, t := range [...]struct {
			name string
			n    int
		}{
			{TableResources, len(b.Resources)}, {TableGauge, len(b.Gauges)}, {TableSum, len(b.Sums)}, {TableHistogram, len(b.Histograms)},
			{TableExpHistogram, len(b.ExpHistograms)}, {TableSummary, len(b.Summaries)}, {TableEvents, len(b.Events)},
			{TableSamples, len(b.Samples)}, {TableDrift, len(b.Drift)},
			{TableJobs, len(b.Jobs)}, {TableDeadLetters, len(b.DeadLetters)},
		} {
			if t.n > 0 && !yield(t.name, t.n) {
				return
			}
		}
	}
}

// Reset empties b, keeping its slices' capacity for reuse.
func (b *Batch) Reset() {
	b.Resources = b.Resources[:0]
	b.Gauges = b.Gauges[:0]
	b.Sums = b.Sums[:0]
	b.Histograms = b.Histograms[:0]
	b.ExpHistograms = b.ExpHistograms[:0]
	b.Summaries = b.Summaries[:0]
	b.Events = b.Events[:0]
	b.Samples = b.Samples[:0]
	b.Drift = b.Drift[:0]
	b.Jobs = b.Jobs[:0]
	b.DeadLetters = b.DeadLetters[:0]
}
