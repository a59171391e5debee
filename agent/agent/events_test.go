package agent

import (
	"context"
	"net/http/httptest"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/drover-ml/drover/agent/telemetry"
	"github.com/drover-ml/drover/agent/versions"
	"github.com/drover-ml/drover/shared/semconv"
)

// event is an exported event record: its name and attributes.
type event struct {
	name  string
	attrs map[string]string
}

// logCapture keeps the event records telemetry exports.
type logCapture struct {
	mu   sync.Mutex
	recs []event
}

func (c *logCapture) Export(_ context.Context, recs []sdklog.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range recs {
		e := event{name: r.EventName(), attrs: map[string]string{}}
		r.WalkAttributes(func(kv attribute.KeyValue) bool {
			e.attrs[string(kv.Key)] = kv.Value.String()
			return true
		})
		c.recs = append(c.recs, e)
	}
	return nil
}
func (c *logCapture) Shutdown(context.Context) error   { return nil }
func (c *logCapture) ForceFlush(context.Context) error { return nil }

func (c *logCapture) records() []event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.recs)
}

// noMetrics drops the OTLP metric exports (Prometheus still sees them).
type noMetrics struct{}

func (noMetrics) Temporality(k sdkmetric.InstrumentKind) metricdata.Temporality {
	return sdkmetric.DefaultTemporalitySelector(k)
}
func (noMetrics) Aggregation(k sdkmetric.InstrumentKind) sdkmetric.Aggregation {
	return sdkmetric.DefaultAggregationSelector(k)
}
func (noMetrics) Export(context.Context, *metricdata.ResourceMetrics) error { return nil }
func (noMetrics) ForceFlush(context.Context) error                          { return nil }
func (noMetrics) Shutdown(context.Context) error                            { return nil }

// TestRecordEvent: every version lifecycle event becomes the OTLP event
// docs/metrics.md lists, with its attributes; swaps and loads are counted.
func TestRecordEvent(t *testing.T) {
	logs := &logCapture{}
	tel, err := telemetry.New(context.Background(), telemetry.Config{Endpoint: "127.0.0.1:1", Interval: time.Hour},
		telemetry.ResourceInfo{AgentID: "a", HostName: "h"}, nil,
		telemetry.WithLogExporter(logs), telemetry.WithMetricExporter(noMetrics{}))
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())

	for _, e := range []versions.Event{
		{Kind: versions.EventLoaded, Model: "m", Version: 2, Duration: 1500 * time.Millisecond},
		{Kind: versions.EventSwapped, Model: "m", Version: 2, Previous: 1},
		{Kind: versions.EventLoadFailed, Model: "m", Version: 3, Reason: "bad file"},
		{Kind: versions.EventRejected, Model: "m", Version: 4, Reason: "gate: worse"},
		{Kind: versions.EventSwapped, Model: "m", Version: 1, Previous: 2},
		{Kind: versions.EventRolledBack, Model: "m", Version: 1, Previous: 2, Reason: "version 1 is pinned"},
		{Kind: versions.EventUnloaded, Model: "m", Version: 2},
	} {
		recordEvent(tel, nil, e)
	}
	if err := tel.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	ev := func(kind, version string, more ...string) event {
		e := event{name: kind, attrs: map[string]string{
			semconv.AttrEventKind: kind, semconv.AttrModel: "m", semconv.AttrModelVersion: version,
		}}
		for i := 0; i < len(more); i += 2 {
			e.attrs[more[i]] = more[i+1]
		}
		return e
	}
	want := []event{
		ev(semconv.EventLoaded, "2", "drover.load.seconds", "1.5"),
		ev(semconv.EventSwapped, "2", semconv.AttrPrevious, "1"),
		ev(semconv.EventLoadFailed, "3", semconv.AttrReason, "bad file"),
		ev(semconv.EventRejected, "4", semconv.AttrReason, "gate: worse"),
		ev(semconv.EventSwapped, "1", semconv.AttrPrevious, "2"),
		ev(semconv.EventRolledBack, "1", semconv.AttrPrevious, "2", semconv.AttrReason, "version 1 is pinned"),
		ev(semconv.EventUnloaded, "2"),
	}
	if got := logs.records(); !reflect.DeepEqual(got, want) {
		t.Fatalf("events:\n got %v\nwant %v", got, want)
	}

	// A rollback is a swap, counted once.
	rec := httptest.NewRecorder()
	tel.PrometheusHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	swaps := regexp.MustCompile(`(?m)^drover_model_swaps_total\{drover_model="m",[^}]*\} (\d+)$`).FindStringSubmatch(rec.Body.String())
	if swaps == nil || swaps[1] != "2" {
		t.Errorf("swaps counted: %v, want 2", swaps)
	}
	if !strings.Contains(rec.Body.String(), `drover_model_load_failures_total{drover_model="m",drover_model_version="3"`) {
		t.Error("the load failure is not counted")
	}
}
