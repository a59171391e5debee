package store

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/drover-ml/drover/shared/testenv"
)

var update = flag.Bool("update", false, "rewrite testdata/cluster.golden.sql from the rendered cluster DDL")

// dataTables are the tables that hold data, with the partition key, sorting
// key and TTL expression each must have (as system.tables shows them).
var dataTables = []struct {
	name, partition, sorting, ttl string
}{
	{"metrics_gauge", "toDate(time)", "model, model_version, metric, host, time", "TTL toDateTime(time) + toIntervalDay(30)"},
	{"metrics_sum", "toDate(time)", "model, model_version, metric, host, time", "TTL toDateTime(time) + toIntervalDay(30)"},
	{"metrics_histogram", "toDate(time)", "model, model_version, metric, feature, host, time", "TTL toDateTime(time) + toIntervalDay(30)"},
	{"metrics_exp_histogram", "toDate(time)", "model, model_version, metric, feature, host, time", "TTL toDateTime(time) + toIntervalDay(30)"},
	{"metrics_summary", "toDate(time)", "model, model_version, metric, host, time", "TTL toDateTime(time) + toIntervalDay(30)"},
	{"events", "toDate(time)", "model, model_version, event, host, time", "TTL toDateTime(time) + toIntervalDay(30)"},
	{"samples", "toDate(time)", "model, model_version, time", "TTL toDateTime(time) + toIntervalDay(30)"},
	{"drift_results", "toDate(time)", "model, model_version, feature, test, time", "TTL toDateTime(time) + toIntervalDay(30)"},
	{"jobs", "toDate(created)", "id", "TTL toDateTime(created) + toIntervalDay(30)"},
	{"metrics_gauge_1m", "toDate(time)", "model, model_version, metric, host, attributes_hash, time", "TTL time + toIntervalDay(30)"},
	{"metrics_gauge_1h", "toDate(time)", "model, model_version, metric, host, attributes_hash, time", "TTL time + toIntervalDay(365)"},
	{"metrics_histogram_1m", "toDate(time)", "model, model_version, metric, feature, bounds, time", "TTL time + toIntervalDay(30)"},
	{"metrics_histogram_1h", "toDate(time)", "model, model_version, metric, feature, bounds, time", "TTL time + toIntervalDay(365)"},
	{"metrics_sum_1m", "toDate(time)", "model, model_version, metric, attributes_hash, time", "TTL time + toIntervalDay(30)"},
	{"metrics_sum_1h", "toDate(time)", "model, model_version, metric, attributes_hash, time", "TTL time + toIntervalDay(365)"},
	{"metrics_eval_1m", "toDate(time)", "model, model_version, attributes_hash, time", "TTL time + toIntervalDay(30)"},
	{"resources", "", "resource_id", "TTL (toDateTime(last_seen) + toIntervalDay(30)) + toIntervalDay(1)"},
	{"attribute_sets", "", "attributes_hash", "TTL last_seen + toIntervalDay(365)"},
	{"tokens", "", "name", ""}, // configuration: kept forever
	{"audit_log", "toDate(time)", "token_name, action, time", "TTL toDateTime(time) + toIntervalDay(30)"},
	{"registry_versions", "", "model, version", ""}, // lineage: kept forever
	{"job_attempts", "toDate(started)", "id, attempt, started", "TTL toDateTime(started) + toIntervalDay(30)"},
	{"dead_letters", "toDate(time)", "table_name, time", "TTL toDateTime(time) + toIntervalDay(30)"},
	{"desired_state", "", "model, revision", ""}, // history: kept forever
	{"agents", "", "agent", ""},
	{"labels", "toDate(time)", "model, request_id, time", "TTL toDateTime(time) + toIntervalDay(30)"},
}

var views = []string{"metrics_gauge_1h_mv", "metrics_gauge_1m_mv", "metrics_histogram_1h_mv", "metrics_histogram_1m_mv",
	"metrics_sum_1h_mv", "metrics_sum_1m_mv", "metrics_eval_1m_mv", "attribute_sets_mv"}

func TestMigrateIsIdempotent(t *testing.T) {
	db := testenv.ClickHouse(t)
	ctx := context.Background()
	opts := MigrateOptions{Database: db.Name}
	if err := Migrate(ctx, db.Conn, opts); err != nil {
		t.Fatalf("first migrate: %v", err)
	}
	want, err := RenderMigrations(opts)
	if err != nil {
		t.Fatal(err)
	}
	type record struct {
		Version   uint32    `ch:"version"`
		Name      string    `ch:"name"`
		Checksum  string    `ch:"checksum"`
		AppliedAt time.Time `ch:"applied_at"`
	}
	var first []record
	if err := db.Conn.Select(ctx, &first, "SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version"); err != nil {
		t.Fatal(err)
	}
	if len(first) != len(want) || len(want) < 4 {
		t.Fatalf("schema_migrations has %d rows, want %d (one per migration)", len(first), len(want))
	}
	for i, m := range want {
		if r := first[i]; r.Version != m.Version || r.Name != m.Name || r.Checksum != m.Checksum {
			t.Errorf("schema_migrations row %d = %+v, want version %d name %s checksum %s", i, r, m.Version, m.Name, m.Checksum)
		}
	}

	if err := Migrate(ctx, db.Conn, opts); err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	var second []record
	if err := db.Conn.Select(ctx, &second, "SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version"); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(second) != fmt.Sprint(first) {
		t.Errorf("second migrate changed schema_migrations:\n%v\nwant\n%v", second, first)
	}

	var names []string
	rows, err := db.Conn.Query(ctx, "SELECT name FROM system.tables WHERE database = currentDatabase() ORDER BY name")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	wantNames := []string{"schema_migrations"}
	for _, d := range dataTables {
		wantNames = append(wantNames, d.name)
	}
	wantNames = append(wantNames, views...)
	if got, want := strings.Join(names, " "), strings.Join(slices.Sorted(slices.Values(wantNames)), " "); got != want {
		t.Errorf("tables after two migrations:\n got %s\nwant %s", got, want)
	}
}

// embeddedCopy returns the embedded migrations as a MapFS that a test can
// change.
func embeddedCopy(t *testing.T) fstest.MapFS {
	t.Helper()
	m := fstest.MapFS{}
	err := fs.WalkDir(migrationFiles, "migrations", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(migrationFiles, p)
		m[p] = &fstest.MapFile{Data: b}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestMigrateDetectsChangedMigration(t *testing.T) {
	db := testenv.ClickHouse(t)
	ctx := context.Background()
	opts := MigrateOptions{Database: db.Name}
	if err := Migrate(ctx, db.Conn, opts); err != nil {
		t.Fatal(err)
	}
	changed := embeddedCopy(t)
	f := changed["migrations/0002_events_samples.sql"]
	f.Data = bytes.Replace(f.Data, []byte("body                String CODEC(ZSTD(3))"), []byte("body                String CODEC(ZSTD(9))"), 1)
	// A new migration next to the changed one must not be applied either.
	changed["migrations/0099_extra.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE IF NOT EXISTS {{table \"extra\"}} (x UInt8) ENGINE = {{engine \"MergeTree\"}} ORDER BY x;\n")}

	err := migrate(ctx, db.Conn, opts, changed)
	if !errors.Is(err, ErrChecksumMismatch) {
		t.Fatalf("migrate with a changed applied migration: err = %v, want ErrChecksumMismatch", err)
	}
	if !strings.Contains(err.Error(), "0002_events_samples") {
		t.Errorf("error %q does not name the changed migration 0002_events_samples", err)
	}
	if n := db.Count(t, "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = 'extra'"); n != 0 {
		t.Errorf("a new migration was applied although an applied one had changed")
	}
}

func TestMigrateAppliesNewMigrations(t *testing.T) {
	db := testenv.ClickHouse(t)
	ctx := context.Background()
	opts := MigrateOptions{Database: db.Name, TTLDays: 7}
	if err := Migrate(ctx, db.Conn, opts); err != nil {
		t.Fatal(err)
	}
	more := embeddedCopy(t)
	more["migrations/0099_extra.sql"] = &fstest.MapFile{Data: []byte(`-- a later migration
CREATE TABLE IF NOT EXISTS {{table "extra"}} {{on_cluster}} (time DateTime, x UInt8)
ENGINE = {{engine "MergeTree"}}
ORDER BY x
TTL time + INTERVAL {{ttl_days}} DAY;
`)}
	if err := migrate(ctx, db.Conn, opts, more); err != nil {
		t.Fatalf("migrate with a new migration: %v", err)
	}
	var engineFull string
	if err := db.Conn.QueryRow(ctx, "SELECT engine_full FROM system.tables WHERE database = currentDatabase() AND name = 'extra'").Scan(&engineFull); err != nil {
		t.Fatalf("new migration not applied: %v", err)
	}
	if !strings.Contains(engineFull, "toIntervalDay(7)") {
		t.Errorf("extra: engine_full %q, want TTL of 7 days", engineFull)
	}
	if n := db.Count(t, "SELECT count() FROM schema_migrations FINAL WHERE version = 99 AND name = '0099_extra'"); n != 1 {
		t.Errorf("0099_extra recorded %d times, want 1", n)
	}
	// The embedded set alone (an older binary) leaves the newer migration be.
	if err := Migrate(ctx, db.Conn, opts); err != nil {
		t.Errorf("migrate a database with a migration this binary lacks: %v", err)
	}
}

func TestMigrateFailingStatementNamesIt(t *testing.T) {
	db := testenv.ClickHouse(t)
	bad := fstest.MapFS{"migrations/0001_bad.sql": &fstest.MapFile{Data: []byte(
		"CREATE TABLE IF NOT EXISTS {{table \"ok\"}} (x UInt8) ENGINE = {{engine \"MergeTree\"}} ORDER BY x;\nCREATE TABLE {{table \"bad\"}} (x NoSuchType) ENGINE = {{engine \"MergeTree\"}} ORDER BY x;\n")}}
	err := migrate(context.Background(), db.Conn, MigrateOptions{Database: db.Name}, bad)
	if err == nil {
		t.Fatal("migrate with a bad statement succeeded")
	}
	for _, want := range []string{"0001_bad", "statement 2", "NoSuchType"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if n := db.Count(t, "SELECT count() FROM schema_migrations"); n != 0 {
		t.Errorf("a failed migration was recorded as applied")
	}
}

func TestTablesHavePartitionTTLAndDedupWindow(t *testing.T) {
	db, _ := migrated(t)
	for _, want := range dataTables {
		t.Run(want.name, func(t *testing.T) {
			var partition, sorting, engineFull, create string
			err := db.Conn.QueryRow(context.Background(),
				"SELECT partition_key, sorting_key, engine_full, create_table_query FROM system.tables WHERE database = currentDatabase() AND name = ?",
				want.name).Scan(&partition, &sorting, &engineFull, &create)
			if err != nil {
				t.Fatal(err)
			}
			create = strings.ReplaceAll(create, "`", "")
			if partition != want.partition {
				t.Errorf("partition key %q, want %q", partition, want.partition)
			}
			if sorting != want.sorting {
				t.Errorf("sorting key %q, want %q", sorting, want.sorting)
			}
			if strings.Contains(sorting, "attributes,") || strings.HasSuffix(sorting, "attributes") {
				t.Errorf("sorting key %q holds an attribute map", sorting)
			}
			must := []string{"non_replicated_deduplication_window = 10000"}
			if want.ttl != "" {
				must = append(must, want.ttl)
				if want.partition != "" { // whole parts expire only in partitions by time
					must = append(must, "ttl_only_drop_parts = 1")
				}
			} else if strings.Contains(engineFull, "TTL") {
				t.Errorf("engine %q has a TTL, want none", engineFull)
			}
			for _, m := range must {
				if !strings.Contains(engineFull, m) {
					t.Errorf("engine_full %q lacks %q", engineFull, m)
				}
			}
			// Names are LowCardinality, times have their codecs.
			for _, c := range []string{"model LowCardinality(String)", "model_version LowCardinality(String)", "metric LowCardinality(String)", "host LowCardinality(String)", "service LowCardinality(String)"} {
				name := strings.Fields(c)[0]
				if regexp.MustCompile(`[(,] *`+name+` `).MatchString(create) && !strings.Contains(create, c) {
					t.Errorf("column %s is not %s: %s", name, c, create)
				}
			}
			if strings.HasPrefix(want.name, "metrics_") && !strings.HasSuffix(want.name, "_1m") && !strings.HasSuffix(want.name, "_1h") {
				for _, c := range []string{"time DateTime64(9, 'UTC') CODEC(DoubleDelta, ZSTD(1))", "attributes Map(LowCardinality(String), String) CODEC(ZSTD(1))"} {
					if !strings.Contains(create, c) {
						t.Errorf("create query lacks %q: %s", c, create)
					}
				}
			}
		})
	}
}

func TestMigrateOptionsAreValidated(t *testing.T) {
	for name, tc := range map[string]struct {
		opts MigrateOptions
		want string
	}{
		"database with a dot":   {MigrateOptions{Database: "a.b"}, `database "a.b"`},
		"database injection":    {MigrateOptions{Database: "x; DROP"}, `database "x; DROP"`},
		"cluster with a quote":  {MigrateOptions{Cluster: "c'x"}, `cluster "c'x"`},
		"negative ttl":          {MigrateOptions{TTLDays: -1}, "ttl_days -1: must be > 0"},
		"negative rollup ttl":   {MigrateOptions{RollupTTLDays: -3}, "rollup_ttl_days -3: must be > 0"},
		"two errors are joined": {MigrateOptions{Database: "1x", TTLDays: -1}, `database "1x"`},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := RenderMigrations(tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestRenderSingleServer(t *testing.T) {
	ms, err := RenderMigrations(MigrateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		for _, s := range m.Statements {
			for _, bad := range []string{"ON CLUSTER", "Replicated", LocalSuffix, "Distributed", "{{", "}}"} {
				if strings.Contains(s, bad) {
					t.Errorf("%s: single-server statement contains %q:\n%s", m.Name, bad, s)
				}
			}
			if strings.HasPrefix(s, "CREATE TABLE") && !strings.Contains(s, "drover.") {
				t.Errorf("%s: statement does not qualify the table with the default database drover:\n%s", m.Name, s)
			}
		}
	}
}

// renderCluster renders every statement Migrate runs in cluster mode.
func renderCluster(t *testing.T) string {
	t.Helper()
	opts := MigrateOptions{Cluster: "drover_cluster"}
	ms, err := RenderMigrations(opts)
	if err != nil {
		t.Fatal(err)
	}
	opts, _ = opts.withDefaults()
	var b strings.Builder
	b.WriteString("-- Rendered by TestRenderClusterGolden with MigrateOptions{Cluster: \"drover_cluster\"}.\n")
	b.WriteString("-- Regenerate: go test ./collector/store -run TestRenderClusterGolden -update\n\n-- bootstrap\n\n")
	for _, s := range bootstrapStatements(opts) {
		b.WriteString(s + ";\n\n")
	}
	for _, m := range ms {
		fmt.Fprintf(&b, "-- %s\n\n", m.Name)
		for _, s := range m.Statements {
			b.WriteString(s + ";\n\n")
		}
	}
	return b.String()
}

func TestRenderClusterGolden(t *testing.T) {
	got := renderCluster(t)
	golden := filepath.Join("testdata", "cluster.golden.sql")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("rendered cluster DDL differs from %s; if the change is intended, run with -update and review the diff.\n%s", golden, lineDiff(string(want), got))
	}

	// Structure, independent of the golden file.
	ms, err := RenderMigrations(MigrateOptions{Cluster: "drover_cluster"})
	if err != nil {
		t.Fatal(err)
	}
	locals := map[string]bool{}
	distributed := map[string]bool{}
	createRE := regexp.MustCompile(`^CREATE (TABLE|MATERIALIZED VIEW) IF NOT EXISTS drover\.(\w+) ON CLUSTER 'drover_cluster'`)
	alterRE := regexp.MustCompile(`^ALTER TABLE drover\.\w+ ON CLUSTER 'drover_cluster'\s`)
	dropRE := regexp.MustCompile(`^DROP TABLE IF EXISTS drover\.(\w+) ON CLUSTER 'drover_cluster'$`)
	dropped := map[string][]string{} // table -> what was dropped, in order
	for _, m := range ms {
		for _, s := range m.Statements {
			if alterRE.MatchString(s) {
				continue
			}
			if d := dropRE.FindStringSubmatch(s); d != nil {
				name := strings.TrimSuffix(d[1], LocalSuffix)
				dropped[name] = append(dropped[name], d[1])
				continue
			}
			c := createRE.FindStringSubmatch(s)
			if c == nil {
				t.Errorf("%s: statement is not CREATE ... IF NOT EXISTS drover.x ON CLUSTER 'drover_cluster':\n%s", m.Name, s)
				continue
			}
			name := c[2]
			switch {
			case c[1] == "MATERIALIZED VIEW":
				if !regexp.MustCompile(`TO drover\.\w+_local AS`).MatchString(s) || !regexp.MustCompile(`FROM drover\.\w+_local AS src`).MatchString(s) {
					t.Errorf("%s: view %s does not read and write local tables:\n%s", m.Name, name, s)
				}
			case strings.HasSuffix(name, LocalSuffix):
				locals[strings.TrimSuffix(name, LocalSuffix)] = true
				want := "ENGINE = Replicated"
				if !strings.Contains(s, want) || !strings.Contains(s, "('/clickhouse/tables/{shard}/{database}/"+name+"', '{replica}'") {
					t.Errorf("%s: %s is not Replicated with the path of %s:\n%s", m.Name, name, name, s)
				}
				if !strings.Contains(s, "replicated_deduplication_window = 10000") {
					t.Errorf("%s: %s lacks replicated_deduplication_window", m.Name, name)
				}
			default:
				distributed[name] = true
				if !strings.Contains(s, "AS drover."+name+"_local\nENGINE = Distributed('drover_cluster', 'drover', '"+name+"_local'") {
					t.Errorf("%s: %s is not Distributed over %s_local:\n%s", m.Name, name, name, s)
				}
			}
		}
	}
	for _, d := range dataTables {
		if !locals[d.name] || !distributed[d.name] {
			t.Errorf("table %s: local %v, distributed %v; want both", d.name, locals[d.name], distributed[d.name])
		}
	}
	for name, ds := range dropped {
		if want := []string{name, name + LocalSuffix}; !slices.Equal(ds, want) {
			t.Errorf("dropped %q, want %q: the Distributed table, then its local tables", ds, want)
		}
		if slices.ContainsFunc(dataTables, func(d struct{ name, partition, sorting, ttl string }) bool { return d.name == name }) {
			t.Errorf("dropped table %s is in dataTables", name)
		}
	}
	if len(dropped["model_versions"]) == 0 {
		t.Error("model_versions is not dropped")
	}
}

// TestDroppedTablesAreGone: model_versions (0003) is dropped by 0011.
func TestDroppedTablesAreGone(t *testing.T) {
	db, _ := migrated(t)
	if n := db.Count(t, "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name LIKE 'model_versions%'"); n != 0 {
		t.Errorf("%d model_versions tables after Migrate, want none", n)
	}
}

// lineDiff shows the first lines where a and b differ.
func lineDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < len(al) || i < len(bl); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return fmt.Sprintf("line %d:\n- %s\n+ %s", i+1, x, y)
		}
	}
	return ""
}
