package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/drover-ml/drover/collector/store"
	"github.com/drover-ml/drover/shared/testenv"
)

func TestJobIDDeterministic(t *testing.T) {
	start := time.Date(2026, 3, 1, 12, 0, 0, 123_000_000, time.UTC)
	id := JobID("iris", "3", start)
	if !regexp.MustCompile(`^job-[0-9a-f]{24}$`).MatchString(id) {
		t.Fatalf("JobID = %q, want job- and 24 hex digits", id)
	}
	same := map[string]time.Time{
		"again":                 start,
		"other zone":            start.In(time.FixedZone("X", 5*3600)),
		"below the millisecond": start.Add(999 * time.Microsecond), // the table keeps milliseconds
	}
	for name, s := range same {
		if got := JobID("iris", "3", s); got != id {
			t.Errorf("%s: JobID = %s, want %s", name, got, id)
		}
	}
	for name, got := range map[string]string{
		"model":   JobID("iris2", "3", start),
		"version": JobID("iris", "4", start),
		"start":   JobID("iris", "3", start.Add(time.Millisecond)),
		"joined":  JobID("iris\x003", "", start), // the separator keeps fields apart
	} {
		if got == id {
			t.Errorf("%s differs but JobID is the same: %s", name, got)
		}
	}
}

func TestScheduleTwiceCreatesOneJob(t *testing.T) {
	db := migrated(t)
	n := newNode(t, db, "node-a", testConfig(t, "/bin/true"), false) // not running: the job stays queued
	ctx := context.Background()
	inc := incident("iris", time.Now().Add(-time.Hour))
	id, created, err := n.Schedule(ctx, inc)
	if err != nil || !created {
		t.Fatalf("first Schedule = %s, %v, %v; want created", id, created, err)
	}
	id2, created2, err := n.Schedule(ctx, inc)
	if err != nil || created2 || id2 != id {
		t.Fatalf("second Schedule = %s, %v, %v; want %s, not created", id2, created2, err, id)
	}
	// Another node, without the local queue, sees the row.
	other := newNode(t, db, "node-b", testConfig(t, "/bin/true"), false)
	if id3, created3, err := other.Schedule(ctx, inc); err != nil || created3 || id3 != id {
		t.Fatalf("Schedule on another node = %s, %v, %v; want %s, not created", id3, created3, err, id)
	}
	if got := rowCount(t, db, id); got != 1 {
		t.Errorf("%d rows for the job, want 1", got)
	}
	row, err := n.Job(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if row.State != StateQueued || row.Attempt != 1 || row.LeaseOwner != "node-a" || row.Model != "iris" || row.ModelVersion != "3" {
		t.Errorf("row = %+v", row)
	}
	var spec Spec
	if err := json.Unmarshal([]byte(row.Spec), &spec); err != nil {
		t.Fatal(err)
	}
	if spec.ID != id || spec.Model != "iris" || len(spec.Reasons) != 1 || spec.DataWindow.End.Sub(spec.DataWindow.Start) != 24*time.Hour {
		t.Errorf("spec = %+v", spec)
	}
	if got := n.ev.kinds(id); !slices.Equal(got, []string{EventQueued}) {
		t.Errorf("events = %v", got)
	}
}

func TestCommandJobSucceeds(t *testing.T) {
	db := migrated(t)
	out := t.TempDir()
	argv := script(t, `
cat > "`+out+`/spec.json"
env | grep '^DROVER_' | sort > "`+out+`/env"
v=$((DROVER_MODEL_VERSION + 1))
dir="$DROVER_MODEL_STORE/$DROVER_MODEL/$v"
mkdir -p "$dir.tmp" && echo onnx > "$dir.tmp/model.onnx" && mv "$dir.tmp" "$dir"
echo "training $DROVER_MODEL on $DROVER_DATA_START..$DROVER_DATA_END"
echo "DROVER_RESULT_VERSION=$v"
echo "a warning" >&2
`)
	argv = append(argv, "{{.Model}}")
	cfg := testConfig(t, argv...)
	cfg.ClickHouseDSN = db.DSN
	n := newNode(t, db, "node-a", cfg, true)
	id, created, err := n.Schedule(context.Background(), incident("iris", time.Now().Add(-time.Hour)))
	if err != nil || !created {
		t.Fatalf("Schedule: %v %v", created, err)
	}
	row := waitTerminal(t, n.Manager, id, 20*time.Second)
	if row.State != StateSucceeded || row.ResultVersion != 4 || row.ExitCode != 0 || row.Attempt != 1 || row.LeaseOwner != "node-a" || row.Finished == nil {
		t.Errorf("row = %+v", row)
	}
	for _, want := range []string{"--- stdout ---", "training iris on", "DROVER_RESULT_VERSION=4", "--- stderr ---", "a warning"} {
		if !strings.Contains(row.Error, want) {
			t.Errorf("log %q lacks %q", row.Error, want)
		}
	}
	if _, err := os.Stat(filepath.Join(cfg.ModelStore, "iris", "4", "model.onnx")); err != nil {
		t.Errorf("the job's version: %v", err)
	}
	var spec Spec
	b, _ := os.ReadFile(filepath.Join(out, "spec.json"))
	if err := json.Unmarshal(b, &spec); err != nil || spec.ID != id || spec.Attempt != 1 || spec.ModelStore != cfg.ModelStore || spec.ClickHouseDSN != db.DSN {
		t.Errorf("spec on stdin = %+v (%v)", spec, err)
	}
	env, _ := os.ReadFile(filepath.Join(out, "env"))
	for _, want := range []string{"DROVER_JOB_ID=" + id, "DROVER_MODEL=iris", "DROVER_MODEL_VERSION=3", "DROVER_ATTEMPT=1", "DROVER_MODEL_STORE=" + cfg.ModelStore, "DROVER_DATA_START=", "DROVER_DATA_END=", "DROVER_CLICKHOUSE_DSN="} {
		if !strings.Contains(string(env), want) {
			t.Errorf("env lacks %q:\n%s", want, env)
		}
	}
	if got := n.ev.kinds(id); !slices.Equal(got, []string{EventQueued, EventStarted, EventSucceeded}) {
		t.Errorf("events = %v", got)
	}
	if ev, _ := n.ev.find(EventSucceeded); ev.ResultVersion != 4 {
		t.Errorf("succeeded event = %+v", ev)
	}
}

// TestResultVersionFromStore: without a DROVER_RESULT_VERSION line, the
// highest version above the serving one is the result.
func TestResultVersionFromStore(t *testing.T) {
	db := migrated(t)
	argv := script(t, `mkdir -p "$DROVER_MODEL_STORE/iris/2" "$DROVER_MODEL_STORE/iris/7" "$DROVER_MODEL_STORE/iris/9.tmp"`)
	n := newNode(t, db, "node-a", testConfig(t, argv...), true)
	id, _, err := n.Schedule(context.Background(), incident("iris", time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	if row := waitTerminal(t, n.Manager, id, 20*time.Second); row.State != StateSucceeded || row.ResultVersion != 7 {
		t.Errorf("state %s result %d, want succeeded 7", row.State, row.ResultVersion)
	}
}

func TestHangingCommandTimesOutAndRetries(t *testing.T) {
	db := migrated(t)
	dir := t.TempDir()
	count := filepath.Join(dir, "count")
	argv := script(t, `
echo "$DROVER_ATTEMPT" >> "`+count+`"
sleep 300 &
echo $! >> "`+dir+`/children"
wait
`)
	cfg := testConfig(t, argv...)
	cfg.Command.Timeout = time.Second // covers starting sh and its two echo lines
	cfg.Retries = 2
	n := newNode(t, db, "node-a", cfg, true)
	id, _, err := n.Schedule(context.Background(), incident("iris", time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	row := waitTerminal(t, n.Manager, id, 30*time.Second)
	if row.State != StateTimedOut || row.Attempt != 3 || row.ExitCode != -1 || !strings.Contains(row.Error, "timed out after 1s") {
		t.Errorf("row = %+v", row)
	}
	if got := lines(t, count); !slices.Equal(got, []string{"1", "2", "3"}) {
		t.Errorf("attempts run = %v, want 1 2 3", got)
	}
	want := []string{EventQueued, EventStarted, EventRetry, EventStarted, EventRetry, EventStarted, EventFailed}
	if got := n.ev.kinds(id); !slices.Equal(got, want) {
		t.Errorf("events = %v, want %v", got, want)
	}
	if ev, _ := n.ev.find(EventFailed); !strings.Contains(ev.Err, "timed out") || ev.State != StateTimedOut {
		t.Errorf("failed event = %+v", ev)
	}
	// The whole process group was killed, the script's child too.
	for _, pid := range lines(t, filepath.Join(dir, "children")) {
		p, _ := strconv.Atoi(pid)
		testenv.Eventually(t, 5*time.Second, "child "+pid+" is killed", func() bool {
			b, err := os.ReadFile("/proc/" + pid + "/stat")
			if err != nil {
				return true
			}
			f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
			return len(f) > 0 && f[0] == "Z" || syscall.Kill(p, 0) != nil
		})
	}
}

// TestTwoNodesRunOneExecution: two nodes that both think they own a model
// (a partition that heals, or a ring change) race on the same incident.
func TestTwoNodesRunOneExecution(t *testing.T) {
	for _, mode := range []string{"schedule", "resume"} {
		t.Run(mode, func(t *testing.T) {
			db := migrated(t)
			count := filepath.Join(t.TempDir(), "count")
			argv := script(t, `echo "$DROVER_JOB_ID" >> "`+count+`"; sleep 0.3`)
			cfg := testConfig(t, argv...)
			a := newNode(t, db, "node-a", cfg, mode == "schedule")
			b := newNode(t, db, "node-b", cfg, mode == "schedule")
			ctx := context.Background()
			var ids []string
			for i := range 3 {
				inc := incident("iris", time.Now().Add(time.Duration(-i)*time.Hour))
				var wg sync.WaitGroup
				var created [2]bool
				var got [2]string
				start := make(chan struct{})
				for j, n := range []*node{a, b} {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						var err error
						got[j], created[j], err = n.Schedule(ctx, inc)
						if err != nil {
							t.Errorf("Schedule on %s: %v", n.node, err)
						}
					}()
				}
				close(start)
				wg.Wait()
				if got[0] != got[1] {
					t.Fatalf("ids differ: %v", got)
				}
				if !created[0] && !created[1] {
					t.Errorf("incident %d: neither node created the job", i)
				}
				ids = append(ids, got[0])
			}
			if mode == "resume" {
				// Both queue every job at once, as two owners would after
				// a partition, and race on the claims.
				for _, n := range []*node{a, b} {
					n.mu.Lock()
					n.pending, n.queued = nil, map[string]*pendingJob{}
					n.mu.Unlock()
				}
				var wg sync.WaitGroup
				for _, n := range []*node{a, b} {
					wg.Add(1)
					go func() {
						defer wg.Done()
						ctx, cancel := context.WithCancel(context.Background())
						done := make(chan struct{})
						go func() { defer close(done); _ = n.Run(ctx) }()
						n.stop = func() { cancel(); <-done }
						t.Cleanup(n.stop)
					}()
				}
				wg.Wait()
			}
			for _, id := range ids {
				if row := waitTerminal(t, a.Manager, id, 30*time.Second); row.State != StateSucceeded {
					t.Errorf("job %s: %+v", id, row)
				}
			}
			testenv.Eventually(t, 30*time.Second, "both nodes idle", func() bool { return a.idle() && b.idle() })
			got := lines(t, count)
			slices.Sort(got)
			want := slices.Clone(ids)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("executions = %v, want each job once: %v", got, want)
			}
		})
	}
}

// TestOwnerDeathTakeover: node A dies mid-job (its context is cancelled, so
// it no longer renews the lease); node B waits for the lease to lapse and
// runs the job again, once.
func TestOwnerDeathTakeover(t *testing.T) {
	db := migrated(t)
	count := filepath.Join(t.TempDir(), "count")
	// The first execution (A's) runs until it is killed, however long
	// stopping A takes; a later one succeeds at once.
	argv := script(t, `echo "$(date +%s.%N) $DROVER_ATTEMPT" >> "`+count+`"
if [ "$(wc -l < "`+count+`")" -eq 1 ]; then exec sleep 300; fi
echo DROVER_RESULT_VERSION=4`)
	cfg := testConfig(t, argv...)
	a := newNode(t, db, "node-a", cfg, true)
	id, created, err := a.Schedule(context.Background(), incident("iris", time.Now()))
	if err != nil || !created {
		t.Fatalf("Schedule: %v %v", created, err)
	}
	testenv.Eventually(t, 30*time.Second, "A starts the job", func() bool { return len(lines(t, count)) == 1 })
	a.stop()
	dead, err := a.Job(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if dead.State != StateRunning || dead.LeaseOwner != "node-a" || dead.LeaseUntil == nil {
		t.Fatalf("after A died the row is %+v, want running with A's lease", dead)
	}
	lapse := dead.LeaseUntil.Add(cfg.MaxClockSkew)

	b := newNode(t, db, "node-b", cfg, true)
	row := waitTerminal(t, b.Manager, id, 60*time.Second) // after A's lease (4s) lapses
	if row.State != StateSucceeded || row.LeaseOwner != "node-b" || row.ResultVersion != 4 || row.Attempt != 1 {
		t.Errorf("row = %+v", row)
	}
	runs := lines(t, count)
	if len(runs) != 2 {
		t.Fatalf("executions = %v, want 2 (A's killed one and B's)", runs)
	}
	f, _ := strconv.ParseFloat(strings.Fields(runs[1])[0], 64)
	startedB := time.Unix(0, int64(f*1e9))
	if startedB.Before(lapse) {
		t.Errorf("B started at %s, before A's lease lapsed at %s", startedB, lapse)
	}
	if ev, ok := b.ev.find(EventStarted); !ok || ev.Time.Before(lapse) {
		t.Errorf("B's started event %+v, lease lapsed at %s", ev, lapse)
	}
	testenv.Eventually(t, 30*time.Second, "B idle", b.idle)
	if got := len(lines(t, count)); got != 2 {
		t.Errorf("%d executions, want 2", got)
	}
}

// TestPerModelLimit: one job per model at a time, and a model at its limit
// does not hold up another model.
func TestPerModelLimit(t *testing.T) {
	db := migrated(t)
	log := filepath.Join(t.TempDir(), "log")
	// An m1 job ends only once m2 has started (or after 20s, when m2 waited
	// for m1), however long m2's claim takes.
	argv := script(t, `echo "start $DROVER_MODEL" >> "`+log+`"
if [ "$DROVER_MODEL" = m1 ]; then
	i=0
	until grep -qx "start m2" "`+log+`" || [ $i -ge 200 ]; do i=$((i + 1)); sleep 0.1; done
fi
sleep 0.5
echo "end $DROVER_MODEL" >> "`+log+`"`)
	cfg := testConfig(t, argv...)
	cfg.MaxConcurrent, cfg.MaxPerModel = 2, 1
	n := newNode(t, db, "node-a", cfg, false)
	ctx := context.Background()
	now := time.Now()
	var ids []string
	for _, inc := range []Incident{incident("m1", now), incident("m1", now.Add(-time.Hour)), incident("m1", now.Add(-2*time.Hour)), incident("m2", now)} {
		id, _, err := n.Schedule(ctx, inc)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = n.Run(runCtx) }()
	defer func() { cancel(); <-done }()
	for _, id := range ids {
		if row := waitTerminal(t, n.Manager, id, 30*time.Second); row.State != StateSucceeded {
			t.Errorf("job %s: %s", id, row.State)
		}
	}
	got := lines(t, log)
	running := map[string]int{}
	m2Started, m1Ended := -1, -1
	for i, l := range got {
		kind, model, _ := strings.Cut(l, " ")
		if kind == "start" {
			running[model]++
			if running[model] > 1 {
				t.Errorf("line %d: two %s jobs at once: %v", i, model, got)
			}
			if model == "m2" {
				m2Started = i
			}
		} else {
			running[model]--
			if model == "m1" && m1Ended < 0 {
				m1Ended = i
			}
		}
	}
	if m2Started < 0 || m2Started > m1Ended {
		t.Errorf("m2 waited for m1: %v", got)
	}
}

func TestTail(t *testing.T) {
	tl := &tail{limit: 8, scan: true}
	for _, s := range []string{"DROVER_RESULT_", "VERSION=5\nnoise ", "DROVER_RESULT_VERSION=x\n", "0123456789"} {
		tl.Write([]byte(s))
	}
	if string(tl.buf) != "23456789" || tl.total != 64 {
		t.Errorf("tail = %q of %d", tl.buf, tl.total)
	}
	if v, ok := tl.result(); !ok || v != 5 {
		t.Errorf("result = %d %v, want 5", v, ok)
	}
	tl.Write([]byte("\nDROVER_RESULT_VERSION=12"))
	if v, _ := tl.result(); v != 12 {
		t.Errorf("result without final newline = %d, want 12", v)
	}
}

func TestBackoff(t *testing.T) {
	m := &Manager{cfg: Config{Backoff: time.Minute, MaxBackoff: 5 * time.Minute}}
	var got []time.Duration
	for a := 1; a <= 5; a++ {
		got = append(got, m.backoff(a))
	}
	want := []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 5 * time.Minute, 5 * time.Minute}
	if !slices.Equal(got, want) {
		t.Errorf("backoff = %v, want %v", got, want)
	}
}

// TestForgedRowsAreNotExecutedAsWritten: the jobs table is data; a row
// written by someone else (anyone with write access to ClickHouse) runs
// with the model store and DSN of the configuration, not its own, and a
// row whose fields do not check out fails without running anything. The
// specs this collector stores carry no DSN.
func TestForgedRowsAreNotExecutedAsWritten(t *testing.T) {
	db := migrated(t)
	out := t.TempDir()
	argv := script(t, `cat > "`+out+`/spec-$DROVER_JOB_ID.json"; echo "DROVER_RESULT_VERSION=0"`)
	cfg := testConfig(t, argv...)
	cfg.ClickHouseDSN = "clickhouse://trainer:secret@127.0.0.1:9000/drover"
	n := newNode(t, db, "node-a", cfg, false)
	ctx := context.Background()

	forge := func(model, version string, spec Spec) string {
		start := time.Now().Add(-time.Hour).UTC().Truncate(time.Millisecond)
		id := JobID(model, version, start)
		spec.ID, spec.Model, spec.Version, spec.IncidentStart, spec.Attempt = id, model, version, start, 1
		if spec.DataWindow.End.IsZero() {
			spec.DataWindow = Window{Start: start.Add(-time.Hour), End: start}
		}
		js, _ := json.Marshal(spec)
		now := time.Now().UTC().Truncate(time.Millisecond)
		row := store.JobRow{ID: id, Model: model, ModelVersion: version, IncidentStart: start, State: StateQueued, Attempt: 1,
			LeaseOwner: "node-a", Created: now, Updated: now, Spec: string(js), RowVersion: rowVersion(1, "node-a", false)}
		if err := n.tbl.insert(ctx, row); err != nil {
			t.Fatal(err)
		}
		return id
	}
	evil := forge("iris", "3", Spec{ModelStore: "/tmp/evil-store", ClickHouseDSN: "clickhouse://attacker.invalid:9000/x", Reasons: []string{"forged"}})
	badName := forge("../../etc", "3", Spec{})
	badVersion := forge("iris", "3; rm -rf /", Spec{})

	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- n.Run(runCtx) }()
	defer func() { cancel(); <-done }()

	if row := waitTerminal(t, n.Manager, evil, 20*time.Second); row.State != StateSucceeded {
		t.Fatalf("forged but well-formed row: %+v", row)
	}
	var spec Spec
	b, _ := os.ReadFile(filepath.Join(out, "spec-"+evil+".json"))
	if err := json.Unmarshal(b, &spec); err != nil || spec.ModelStore != cfg.ModelStore || spec.ClickHouseDSN != cfg.ClickHouseDSN {
		t.Errorf("the command got model store %q and DSN %q; want the configuration's (%v)", spec.ModelStore, spec.ClickHouseDSN, err)
	}
	for _, id := range []string{badName, badVersion} {
		row := waitTerminal(t, n.Manager, id, 20*time.Second)
		if row.State != StateFailed || !strings.Contains(row.Error, "spec of") {
			t.Errorf("row %s with bad fields: %s %q; want failed without running", id, row.State, row.Error)
		}
		if _, err := os.Stat(filepath.Join(out, "spec-"+id+".json")); err == nil {
			t.Errorf("the command ran for %s", id)
		}
	}

	// A job this collector schedules stores no DSN or model store.
	id, _, err := n.Schedule(ctx, incident("wine", time.Now().Add(-time.Minute)))
	if err != nil {
		t.Fatal(err)
	}
	row := waitTerminal(t, n.Manager, id, 20*time.Second)
	if strings.Contains(row.Spec, "secret") || strings.Contains(row.Spec, cfg.ModelStore) {
		t.Errorf("stored spec carries configuration: %s", row.Spec)
	}
	if _, _, err := n.Schedule(ctx, Incident{Model: "wine", Version: "3", Start: time.Now(), Reasons: []string{"bad\x00reason"}}); !errors.Is(err, ErrBadIncident) {
		t.Errorf("an incident with a control character in a reason: %v", err)
	}
}

// TestDrillOpenJobsPerModelCapped: incidents of many versions of one
// model (a sender inventing versions) make at most max_open_per_model
// jobs; the rest are refused with ErrTooManyJobs, counted, and dropped by
// the Queue without retrying; other models are not affected, and a
// retried incident that has its job is still answered with it.
func TestDrillOpenJobsPerModelCapped(t *testing.T) {
	db := migrated(t)
	cfg := testConfig(t, "/bin/true")
	cfg.MaxOpenPerModel = 2
	reg := prometheus.NewRegistry()
	m, err := New(Options{Conn: db.Conn, Database: db.Name, Node: "node-a", Config: cfg, Registerer: reg,
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	start := time.Now().Add(-time.Hour)
	var ids []string
	for v := range 5 {
		inc := incident("iris", start)
		inc.Version = strconv.Itoa(v + 1)
		id, created, err := m.Schedule(ctx, inc)
		switch {
		case v < 2 && (err != nil || !created):
			t.Errorf("v%d: Schedule = %v, %v; want created", v+1, created, err)
		case v >= 2 && (!errors.Is(err, ErrTooManyJobs) || created):
			t.Errorf("v%d: Schedule = %v, %v; want ErrTooManyJobs", v+1, created, err)
		}
		ids = append(ids, id)
	}
	if n := db.Count(t, "SELECT count(DISTINCT id) FROM "+db.Name+".jobs WHERE model = 'iris'"); n != 2 {
		t.Errorf("%d jobs of iris, want 2", n)
	}
	if n := testutil.ToFloat64(m.refused); n != 3 {
		t.Errorf("refused counted %v, want 3", n)
	}
	// The incident that has its job is answered with it, not refused.
	inc := incident("iris", start)
	inc.Version = "1"
	if id, created, err := m.Schedule(ctx, inc); err != nil || created || id != ids[0] {
		t.Errorf("retried incident: %s, %v, %v; want %s, not created", id, created, err, ids[0])
	}
	// Another model has its own cap.
	if _, created, err := m.Schedule(ctx, incident("fraud", start)); err != nil || !created {
		t.Errorf("fraud: created %v, %v", created, err)
	}
	// The Queue drops a refused incident at once instead of retrying it.
	q := NewQueue(m, QueueOptions{Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	qctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- q.Run(qctx) }()
	inc.Version = "9"
	q.Send(inc)
	testenv.Eventually(t, 30*time.Second, "queue empty", func() bool { return q.Len() == 0 })
	cancel()
	if err := <-done; err != nil {
		t.Error(err)
	}
	if n := testutil.ToFloat64(m.refused); n != 4 {
		t.Errorf("refused counted %v after the queue's incident, want 4", n)
	}
}
