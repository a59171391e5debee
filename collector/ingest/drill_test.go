package ingest

import (
	"context"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"

	"github.com/drover-ml/drover/collector/spool"
	"github.com/drover-ml/drover/collector/store"
	"github.com/drover-ml/drover/shared/testenv"
)

// Drills: the writer against the real engine (testenv), for the failures
// of issue 16.

// acceptMetrics hands md to the sink as the receivers do.
func acceptMetrics(ctx context.Context, s Sink, md pmetric.Metrics) error {
	er := pmetricotlp.NewExportRequestFromMetrics(md)
	payload, err := er.MarshalProto()
	if err != nil {
		return err
	}
	return s.Accept(ctx, KindMetrics, payload, md.DataPointCount(), md)
}

// migratedStore returns a fresh migrated database and a Store on it.
func migratedStore(t *testing.T, db *testenv.DB) *store.Store {
	t.Helper()
	if err := store.Migrate(context.Background(), db.Conn, store.MigrateOptions{Database: db.Name}); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	s := store.New(db.Conn, db.Name, db.Options)
	t.Cleanup(s.Close)
	return s
}

// TestDrillFailedLoginKeepsTheBatch: ClickHouse refuses the collector's
// login (a password rotated under it). The writer keeps the batch in the
// spool and retries; nothing acknowledged is dropped. (It used to take
// AUTHENTICATION_FAILED for bad data, log "dropped" and ack the spool.)
// On an engine of its own: the embedded engine is known to stop answering
// after failed handshakes, which the retries then meet as connection
// errors, as they would a server that went away.
func TestDrillFailedLoginKeepsTheBatch(t *testing.T) {
	db := testenv.OwnClickHouse(t)
	migratedStore(t, db)
	opts := *db.Options
	opts.Auth.Password = "rotated-away"
	opts.DialTimeout = 5 * time.Second
	conn, err := clickhouse.Open(&opts)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	wrong := store.New(conn, db.Name, &opts)
	defer wrong.Close()

	// Requests without resource attributes: the batch is one table's, so
	// the insert makes one login (a second would meet the engine gone).
	const n, pts = 3, 4
	sp := openTestSpool(t, spool.Options{})
	sink := &SpoolSink{Spool: sp}
	for i := 1; i <= n; i++ {
		md := pmetric.NewMetrics()
		dps := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
		dps.SetName("drill.login")
		g := dps.SetEmptyGauge().DataPoints()
		for p := range pts {
			dp := g.AppendEmpty()
			dp.SetTimestamp(pcommon.NewTimestampFromTime(time.Now()))
			dp.SetDoubleValue(float64(i*100 + p))
		}
		if err := acceptMetrics(context.Background(), sink, md); err != nil {
			t.Fatal(err)
		}
	}
	stats := NewStats(prometheus.NewRegistry())
	stop := runWriter(t, WriterConfig{BatchRows: 1000, FlushInterval: time.Millisecond, MaxBackoff: 10 * time.Millisecond}, sp, nil, wrong, stats)
	testenv.Eventually(t, waitLimit, "the writer to retry the refused login", func() bool {
		return testutil.ToFloat64(stats.InsertErrors.WithLabelValues("true")) >= 3 || sp.Acked() > 0
	})
	stop()
	if got := testutil.ToFloat64(stats.InsertErrors.WithLabelValues("false")); got != 0 {
		t.Errorf("%v inserts counted as permanent failures; a failed login is an outage", got)
	}
	if acked := sp.Acked(); acked != 0 {
		t.Errorf("spool acked up to %d while every insert failed: the batch was dropped", acked)
	}
	if recs, _ := sp.Pending(); recs != n {
		t.Errorf("spool holds %d records after the writer stopped, want %d", recs, n)
	}
}
