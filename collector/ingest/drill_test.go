package ingest

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
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

// poisonRequest is a request of the poison drill: pts gauge points of
// metric drill.poison, point p at at(p) with value val(p).
func poisonRequest(pts int, at func(p int) time.Time, val func(p int) float64) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("host.name", "host-a")
	m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName("drill.poison")
	g := m.SetEmptyGauge().DataPoints()
	for p := range pts {
		dp := g.AppendEmpty()
		dp.SetTimestamp(pcommon.NewTimestampFromTime(at(p)))
		dp.SetDoubleValue(val(p))
	}
	return md
}

// poisonDrill spools, in one batch: good requests, one whose 400 points
// span 400 days (ClickHouse refuses the INSERT: too many partitions), one
// with a point the table's constraint refuses (value 666), good requests.
// It returns how many requests it spooled and the good points among them.
func poisonDrill(t *testing.T, sink *SpoolSink) (n uint64, stored int) {
	t.Helper()
	now := time.Now().UTC()
	recent := func(p int) time.Time { return now.Add(-time.Duration(p) * time.Second) }
	val := func(p int) float64 { return float64(p) }
	reqs := []pmetric.Metrics{
		poisonRequest(5, recent, val),
		poisonRequest(5, recent, val),
		// 400 days ahead, so that no TTL merge drops them during the test.
		poisonRequest(400, func(p int) time.Time { return now.Add(time.Duration(p) * 24 * time.Hour) }, val),
		poisonRequest(5, recent, func(p int) float64 {
			if p == 2 {
				return 666
			}
			return float64(p)
		}),
		poisonRequest(5, recent, val),
	}
	for _, md := range reqs {
		if err := acceptMetrics(context.Background(), sink, md); err != nil {
			t.Fatal(err)
		}
		stored += md.DataPointCount()
	}
	return uint64(len(reqs)), stored - 1
}

func countRows(t *testing.T, db *testenv.DB, q string) uint64 {
	t.Helper()
	var n uint64
	if err := db.Conn.QueryRow(context.Background(), q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// TestDrillPoisonBatchIsSplit (issue 16, first finding): a batch with rows
// ClickHouse refuses for their data no longer stops ingestion. The writer
// splits it: the 400 days of points go in pieces ClickHouse takes, the
// point the table refuses goes to dead_letters with its error code, every
// other row is stored, the spool is acked and the next request is written.
// (Before: the 400 days were TOO_MANY_PARTS, retried forever, and every
// later request queued behind them.)
func TestDrillPoisonBatchIsSplit(t *testing.T) {
	db := testenv.ClickHouse(t)
	s := migratedStore(t, db)
	if err := db.Conn.Exec(context.Background(), "ALTER TABLE "+db.Name+".metrics_gauge ADD CONSTRAINT drill CHECK value != 666"); err != nil {
		t.Fatal(err)
	}
	sp := openTestSpool(t, spool.Options{})
	rows := NewRowCache(1 << 20)
	sink := &SpoolSink{Spool: sp, Rows: rows}
	n, good := poisonDrill(t, sink)
	stats := NewStats(prometheus.NewRegistry())
	runWriter(t, WriterConfig{BatchRows: 1 << 20, FlushInterval: 10 * time.Millisecond, MaxBackoff: 10 * time.Millisecond}, sp, rows, s, stats)
	waitAcked(t, sp, n)

	if got := countRows(t, db, "SELECT count() FROM "+db.Name+".metrics_gauge WHERE metric = 'drill.poison'"); got != uint64(good) {
		t.Errorf("metrics_gauge holds %d drill points, want the %d ClickHouse takes", got, good)
	}
	if got := countRows(t, db, "SELECT count() FROM "+db.Name+".metrics_gauge WHERE value = 666"); got != 0 {
		t.Errorf("the refused point was stored %d times", got)
	}
	var dl []store.DeadLetterRow
	if err := db.Conn.Select(context.Background(), &dl, "SELECT time, table_name, code, code_name, reason, batch, row FROM "+db.Name+".dead_letters"); err != nil {
		t.Fatal(err)
	}
	if len(dl) != 1 {
		t.Fatalf("dead_letters holds %d rows, want the one refused point: %+v", len(dl), dl)
	}
	d := dl[0]
	if d.Table != store.TableGauge || d.Code != 469 || d.CodeName != "VIOLATED_CONSTRAINT" || d.Batch != token(sp.ID(), 1, n) ||
		!strings.Contains(d.Row, `"Value":666`) || !strings.Contains(d.Reason, "drill") || time.Since(d.Time) > time.Hour {
		t.Errorf("dead letter = %+v; want the metrics_gauge row of value 666, code 469 VIOLATED_CONSTRAINT, batch %s", d, token(sp.ID(), 1, n))
	}
	if got := testutil.ToFloat64(stats.DeadLetters.WithLabelValues("table")); got != 1 {
		t.Errorf("drover_collector_dead_letters_total{where=table} = %v, want 1", got)
	}

	// Ingestion goes on.
	if err := acceptMetrics(context.Background(), sink, poisonRequest(3, func(p int) time.Time { return time.Now() }, func(p int) float64 { return 1000 + float64(p) })); err != nil {
		t.Fatal(err)
	}
	waitAcked(t, sp, n+1)
	if got := countRows(t, db, "SELECT count() FROM "+db.Name+".metrics_gauge WHERE metric = 'drill.poison'"); got != uint64(good+3) {
		t.Errorf("after the next request: %d drill points, want %d", got, good+3)
	}
}

// TestDrillDeadLettersRefusedGoToTheFile: when dead_letters refuses the
// dead letters too, they go to the dead-letter file (JSON lines), counted
// as where=file, and the batch's other rows are stored.
func TestDrillDeadLettersRefusedGoToTheFile(t *testing.T) {
	db := testenv.ClickHouse(t)
	s := migratedStore(t, db)
	ctx := context.Background()
	for _, q := range []string{
		"ALTER TABLE " + db.Name + ".metrics_gauge ADD CONSTRAINT drill CHECK value != 666",
		"ALTER TABLE " + db.Name + ".dead_letters ADD CONSTRAINT drill CHECK code != 469",
	} {
		if err := db.Conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	sp := openTestSpool(t, spool.Options{})
	sink := &SpoolSink{Spool: sp}
	n, good := poisonDrill(t, sink)
	file := filepath.Join(t.TempDir(), "dead_letters.jsonl")
	stats := NewStats(prometheus.NewRegistry())
	runWriter(t, WriterConfig{BatchRows: 1 << 20, FlushInterval: 10 * time.Millisecond, MaxBackoff: 10 * time.Millisecond, DeadLetterFile: file}, sp, nil, s, stats)
	waitAcked(t, sp, n)

	if got := countRows(t, db, "SELECT count() FROM "+db.Name+".metrics_gauge WHERE metric = 'drill.poison'"); got != uint64(good) {
		t.Errorf("metrics_gauge holds %d drill points, want %d", got, good)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 1 {
		t.Fatalf("dead-letter file has %d lines, want 1:\n%s", len(lines), data)
	}
	var d store.DeadLetterRow
	if err := json.Unmarshal([]byte(lines[0]), &d); err != nil {
		t.Fatal(err)
	}
	if d.Table != store.TableGauge || d.Code != 469 || !strings.Contains(d.Row, `"Value":666`) {
		t.Errorf("dead letter in the file = %+v, want the metrics_gauge row of value 666, code 469", d)
	}
	if got := testutil.ToFloat64(stats.DeadLetters.WithLabelValues("file")); got != 1 {
		t.Errorf("drover_collector_dead_letters_total{where=file} = %v, want 1", got)
	}
}
