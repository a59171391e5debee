package server

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/drover-ml/drover/agent/telemetry"
	"github.com/drover-ml/drover/collector/auth"
	"github.com/drover-ml/drover/collector/drift"
	"github.com/drover-ml/drover/shared/semconv"
	"github.com/drover-ml/drover/shared/testenv"
)

// TestAgentTelemetryReachesRollupsAndDrift sends what a drover-agent
// sends, through the agent's own telemetry package (OTel SDK, OTLP gRPC,
// delta temporality, two exports), and checks the whole path: raw points, the minute rollups, the resources
// table, and a drift check that counts exactly the observations made.
func TestAgentTelemetryReachesRollupsAndDrift(t *testing.T) {
	db := testenv.ClickHouse(t)
	c := startCollector(t, testConfig(t, db.DSN, db.Name))
	ctx := context.Background()

	tel, err := telemetry.New(ctx, telemetry.Config{Endpoint: c.grpcAddr, Interval: time.Hour, Timeout: 5 * time.Second, TokenFile: filepath.Join(c.dataDir, auth.AgentTokenFile)},
		telemetry.ResourceInfo{AgentID: "agent-e2e", HostName: "host-e2e", Version: "test"}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(ctx)

	bins := []float64{1, 2, 3}
	d := tel.Distribution("iris", "1", "petal_length", telemetry.KindInput, bins)
	want := make([]uint64, len(bins)+1)
	observe := func(n int) {
		for i := range n {
			v := float64(i%5) * 0.9 // 0, 0.9, 1.8, 2.7, 3.6: buckets 0, 0, 1, 2, 3
			d.Observe(v)
			b, _ := slices.BinarySearch(bins, v)
			want[b]++
		}
	}
	observe(100)
	for range 30 {
		tel.RecordRequest("iris", "1", "grpc", "ok", time.Millisecond)
	}
	if err := tel.ForceFlush(ctx); err != nil {
		t.Fatal(err)
	}
	observe(55)
	tel.RecordRequest("iris", "1", "grpc", "error", time.Millisecond)
	tel.RecordRequest("iris", "1", "grpc", "error", time.Millisecond)
	if err := tel.ForceFlush(ctx); err != nil {
		t.Fatal(err)
	}
	var total uint64
	for _, n := range want {
		total += n
	}

	// The minute rollup holds the delta histograms summed: every
	// observation once, whatever the number of exports.
	testenv.EventuallyNil(t, time.Minute, "the distribution in the minute rollup", func() error {
		var counts []uint64
		err := db.Conn.QueryRow(ctx, fmt.Sprintf(`SELECT sumForEachMerge(counts) FROM %s.metrics_histogram_1m
			WHERE model = 'iris' AND model_version = '1' AND metric = ? AND feature = 'petal_length'`, db.Name),
			semconv.MetricDistribution).Scan(&counts)
		return unless(err == nil && slices.Equal(counts, want), fmt.Sprintf("counts %v (err %v), want %v", counts, err, want))
	})
	var temporality string
	if err := db.Conn.QueryRow(ctx, fmt.Sprintf(`SELECT DISTINCT toString(temporality) FROM %s.metrics_histogram WHERE metric = ?`, db.Name),
		semconv.MetricDistribution).Scan(&temporality); err != nil || temporality != "delta" {
		t.Errorf("distribution temporality %q (err %v), want delta", temporality, err)
	}
	testenv.EventuallyNil(t, time.Minute, "the requests in the minute rollup", func() error {
		var ok, bad float64
		err := db.Conn.QueryRow(ctx, fmt.Sprintf(`SELECT sumIf(value, attributes['%[2]s'] = 'ok'), sumIf(value, attributes['%[2]s'] = 'error')
			FROM %[1]s.metrics_sum_1m WHERE model = 'iris' AND model_version = '1' AND metric = ?`, db.Name, semconv.AttrStatus),
			semconv.MetricRequests).Scan(&ok, &bad)
		return unless(err == nil && ok == 30 && bad == 2, fmt.Sprintf("ok %v error %v (err %v), want 30 and 2", ok, bad, err))
	})

	// The agent's resource is one row; the points refer to it.
	var host, agent string
	var id uint64
	if err := db.Conn.QueryRow(ctx, fmt.Sprintf(`SELECT resource_id, attributes['%s'], agent_id FROM %s.resources FINAL`, semconv.AttrHostName, db.Name)).
		Scan(&id, &host, &agent); err != nil || host != "host-e2e" || agent != "agent-e2e" || id == 0 {
		t.Errorf("resources: id %d host %q agent %q (err %v)", id, host, agent, err)
	}
	if n := count(t, db.Conn, db.Name, "metrics_histogram", fmt.Sprintf("resource_id = %d", id)); n == 0 {
		t.Errorf("no histogram point refers to resource %d", id)
	}
	if n := count(t, db.Conn, db.Name, "resources", "1"); n != 1 {
		t.Errorf("%d resources rows, want 1 (written once)", n)
	}

	// A drift check of the version counts the same observations.
	r, err := drift.NewChecker(db.Conn, db.Name, "test", nil).Check(ctx, "iris", "1", drift.DefaultPolicy(), time.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Features) != 1 || r.Features[0].Feature != "petal_length" || r.Features[0].CurCount != total {
		t.Fatalf("check features %+v, want petal_length with %d observations", r.Features, total)
	}
	for i, n := range r.Features[0].Current {
		if uint64(n) != want[i] {
			t.Errorf("check counts %v, want %v", r.Features[0].Current, want)
			break
		}
	}
}
