package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drover-ml/drover/collector/auth"
	"github.com/drover-ml/drover/collector/drift"
	"github.com/drover-ml/drover/collector/jobs"
	"github.com/drover-ml/drover/collector/ring"
	"github.com/drover-ml/drover/collector/store"
	"github.com/drover-ml/drover/shared/semconv"
	"github.com/drover-ml/drover/shared/testenv"
)

// The generated agent metrics: two hosts serving each model, three
// features binned on genBounds. Model "m" drifts once (every feature's mean
// moves from 0 to shiftMean); model "flap" alternates between the two
// distributions at every check.
var (
	genBounds   = []float64{-2, -1, 0, 1, 2}
	genHosts    = []string{"host-0", "host-1"}
	genFeatures = []string{"f0", "f1", "f2"}
)

const (
	shiftMean  = 2.5
	genStep    = 250 * time.Millisecond // agents' export interval
	perPoint   = 30                     // observations per host, feature and point of "m"
	flapBurst  = 400                    // observations per host and feature at a flap switch
	genHistory = 60 * time.Second       // backfilled history, all with the reference distribution
)

// clusterNode is a collector of the test cluster, running in this process.
type clusterNode struct {
	name, admin string
	// token is an admin token: the one this node bootstrapped, else set by
	// the test (one of another node of the cluster).
	token string
	stop  func() // cancels Run (the ring leaves gracefully) and waits for it
}

func startNode(t *testing.T, cfg Config, h hooks, logs *testenv.Buffer) *clusterNode {
	t.Helper()
	ls := Listeners{OTLPGRPC: listen(t), OTLPHTTP: listen(t), Admin: listen(t)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})) // Run adds node=
	go func() { done <- run(ctx, cfg, ls, log, h) }()
	n := &clusterNode{name: cfg.Cluster.NodeName, admin: ls.Admin.Addr().String()}
	var once sync.Once
	n.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("collector %s: %v", n.name, err)
			}
		})
	}
	t.Cleanup(n.stop)
	testenv.EventuallyNil(t, time.Minute, n.name+" ready", func() error {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("collector %s stopped: %v", n.name, err)
		default:
		}
		resp, err := http.Get("http://" + n.admin + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return unless(resp.StatusCode == http.StatusOK, resp.Status)
	})
	if b, err := os.ReadFile(filepath.Join(cfg.DataDir, auth.AdminTokenFile)); err == nil {
		n.token = strings.TrimSpace(string(b))
	}
	return n
}

// view is GET /v1/cluster of n.
func (n *clusterNode) view() (ring.ClusterView, error) {
	var v ring.ClusterView
	req, _ := http.NewRequest("GET", "http://"+n.admin+"/v1/cluster", nil)
	req.Header.Set("Authorization", "Bearer "+n.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return v, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return v, fmt.Errorf("GET /v1/cluster: %s", resp.Status)
	}
	return v, json.NewDecoder(resp.Body).Decode(&v)
}

// alive returns the names of the alive members of v, sorted.
func alive(v ring.ClusterView) []string {
	var out []string
	for _, m := range v.Members {
		if m.State == ring.StateAlive {
			out = append(out, m.Name)
		}
	}
	return out
}

// ownerIn returns the member that v says owns model, or "".
func ownerIn(v ring.ClusterView, model string) string {
	for _, m := range v.Members {
		if slices.Contains(m.Models, model) {
			return m.Name
		}
	}
	return ""
}

// agree polls the views of nodes until each sees exactly the members want
// alive and all name the same owner of every model; it returns the owners.
func agree(t *testing.T, nodes []*clusterNode, want []string, models ...string) map[string]string {
	t.Helper()
	var owners map[string]string
	testenv.EventuallyNil(t, time.Minute, fmt.Sprintf("members %v agreeing on the owners of %v", want, models), func() error {
		owners = map[string]string{}
		var seen []string
		for _, n := range nodes {
			v, err := n.view()
			if err != nil {
				return fmt.Errorf("%s: %v", n.name, err)
			}
			seen = append(seen, fmt.Sprintf("%s sees %+v", n.name, v.Members))
			if !slices.Equal(alive(v), want) {
				return errors.New(strings.Join(seen, "; "))
			}
			for _, model := range models {
				o := ownerIn(v, model)
				if o == "" || (owners[model] != "" && owners[model] != o) {
					return errors.New(strings.Join(seen, "; "))
				}
				owners[model] = o
			}
		}
		return nil
	})
	return owners
}

// agents generates the metrics that drover agents export: cumulative
// drover.distribution histograms per host and feature and drover.requests
// counters. Not safe for concurrent use.
type agents struct {
	rng   *rand.Rand
	start time.Time // start_time of every series
	cum   map[string][]uint64
	reqs  map[string]float64
}

func newAgents(start time.Time) *agents {
	return &agents{rng: rand.New(rand.NewPCG(7, 11)), start: start, cum: map[string][]uint64{}, reqs: map[string]float64{}}
}

func (a *agents) point(at time.Time, host, model, metric string) store.Point {
	return store.Point{Time: at, StartTime: a.start, Service: semconv.ServiceNameAgent, Host: host, AgentID: "agent-" + host,
		Model: model, ModelVersion: "1", Metric: metric}
}

// add appends to b one point of every series of model at time at: n new
// observations per host and feature drawn from N(mean, 1) (n may be 0: the
// series goes on without new observations), and 10 more requests.
func (a *agents) add(b *store.Batch, at time.Time, model string, n int, mean float64) {
	for _, host := range genHosts {
		for _, f := range genFeatures {
			k := model + "/" + host + "/" + f
			cum := a.cum[k]
			if cum == nil {
				cum = make([]uint64, len(genBounds)+1)
				a.cum[k] = cum
			}
			for range n {
				cum[sort.SearchFloat64s(genBounds, a.rng.NormFloat64()+mean)]++
			}
			var total uint64
			for _, c := range cum {
				total += c
			}
			b.Histograms = append(b.Histograms, store.HistogramRow{
				Point: a.point(at, host, model, semconv.MetricDistribution), Feature: f,
				Temporality: store.TemporalityCumulative, Count: total, Bounds: genBounds, Counts: slices.Clone(cum),
			})
		}
		a.reqs[model+"/"+host] += 10
		p := a.point(at, host, model, semconv.MetricRequests)
		p.Attributes = map[string]string{semconv.AttrStatus: "ok"}
		b.Sums = append(b.Sums, store.SumRow{Point: p, Temporality: store.TemporalityCumulative, IsMonotonic: true,
			Value: a.reqs[model+"/"+host]})
	}
}

// feed keeps the agents exporting every genStep until its context ends.
// Model "m" has the reference distribution until shift is set. Once
// flapping is set, "flap" gets a burst of observations right after each of
// its checks, alternately shifted and not, and none in between: its
// policy's window (1.5 check intervals) then holds exactly the burst that
// followed the previous check, so the checks alternate between drifted and
// not (the first one, with no burst yet, has no verdict).
type feed struct {
	shift    atomic.Bool
	flapping atomic.Bool
	flapFrom atomic.Int64 // unix ms; flap checks from then on flip the phase
	flips    atomic.Int64
}

func (f *feed) run(ctx context.Context, t *testing.T, a *agents, st *store.Store, db *testenv.DB) {
	tick := time.NewTicker(genStep)
	defer tick.Stop()
	var seq int
	var seenChecks uint64
	shifted := false // the phase of "flap"
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := time.Now()
		b := &store.Batch{}
		mean := 0.0
		if f.shift.Load() {
			mean = shiftMean
		}
		a.add(b, now, "m", perPoint, mean)
		burst := 0
		if f.flapping.Load() {
			var n uint64
			err := db.Conn.QueryRow(ctx, "SELECT count() FROM "+db.Name+".drift_results WHERE model = 'flap' AND test = 'check' AND toUnixTimestamp64Milli(time) >= ?",
				f.flapFrom.Load()).Scan(&n)
			if err != nil {
				if ctx.Err() == nil {
					t.Errorf("feed: count flap checks: %v", err)
				}
				return
			}
			if n != seenChecks {
				seenChecks, shifted, burst = n, !shifted, flapBurst
				f.flips.Add(1)
			}
		}
		flapMean := 0.0
		if shifted {
			flapMean = shiftMean
		}
		a.add(b, now, "flap", burst, flapMean)
		seq++
		if err := st.Insert(ctx, b, fmt.Sprintf("feed/%d", seq)); err != nil {
			if ctx.Err() == nil {
				t.Errorf("feed: insert: %v", err)
			}
			return
		}
	}
}

// reoptimize is the command executor's job: it counts its runs, keeps the
// spec it read on stdin and publishes the next version of the model.
const reoptimize = `set -eu
echo "$DROVER_MODEL $DROVER_JOB_ID attempt=$DROVER_ATTEMPT" >> "$RUNS_FILE"
cat > "$SPECS_DIR/$DROVER_JOB_ID.json"
next=$((DROVER_MODEL_VERSION + 1))
mkdir -p "$DROVER_MODEL_STORE/$DROVER_MODEL/$next"
printf 'onnx bytes\n' > "$DROVER_MODEL_STORE/$DROVER_MODEL/$next/model.onnx"
echo "DROVER_RESULT_VERSION=$next"
`

// TestClusterDriftToOneJob runs three collectors on loopback, sharing one
// ClickHouse database, and checks the "must show" end to end:
// membership converges and the nodes agree on owners; a drift injected
// into the agents' metrics is detected by the owner of the model, which is
// stopped after its first drifted check, in the middle of the incident (its
// ring leaves gracefully: the ring has no crash hook this package can
// reach); the model moves to another node, which restores the detector
// state from drift_results and confirms the same incident (same start);
// exactly one job runs the command executor once, and the job row records
// the incident and the published version; a model whose distribution
// flips at every check produces at most one job.
func TestClusterDriftToOneJob(t *testing.T) {
	if testing.Short() {
		t.Skip("three collectors and a drift incident take about half a minute")
	}
	db := testenv.ClickHouse(t)
	logs := &testenv.Buffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("collector logs:\n%s", logs.String())
		}
	})
	dir := t.TempDir()
	modelStore, specs := filepath.Join(dir, "models"), filepath.Join(dir, "specs")
	runs, script := filepath.Join(dir, "runs"), filepath.Join(dir, "reoptimize.sh")
	for _, d := range []string{modelStore, specs} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(script, []byte(reoptimize), 0o644); err != nil {
		t.Fatal(err)
	}

	// Checks every 2 s over 10 s windows; 3 drifted of the last 4 checks
	// open an incident, so the first drifted check is at least 4 s before
	// the incident. "flap" is checked every 3 s over 4.5 s windows.
	dc := drift.DefaultConfig()
	dc.Default.Interval, dc.Default.Window, dc.Default.MinSamples = 2*time.Second, 10*time.Second, 100
	dc.Default.ConfirmM, dc.Default.ConfirmN, dc.Default.Cooldown = 3, 4, time.Hour
	flap := dc.Default
	flap.Interval, flap.Window = 3*time.Second, 4500*time.Millisecond
	dc.Models = map[string]drift.Policy{"flap": flap}
	jc := jobs.DefaultConfig()
	jc.Executor = jobs.ExecutorCommand
	jc.Command.Argv = []string{"/bin/sh", script}
	jc.Command.Env = map[string]string{"RUNS_FILE": runs, "SPECS_DIR": specs}
	jc.Command.Timeout = 30 * time.Second
	jc.Retries = 0
	jc.Settle, jc.Lease = time.Second, 10*time.Second // a slow claim is dropped until its lease lapses
	jc.ModelStore = modelStore
	key := gossipKeyFile(t) // one key for the cluster
	nodeConfig := func(name string, join ...string) Config {
		cfg := testConfig(t, db.DSN, db.Name)
		cfg.Cluster = Cluster{NodeName: name, GossipAddr: "127.0.0.1:0", Join: join, KeyFile: key}
		// A cluster needs a registry store every node reaches: here one
		// directory of this machine, declared shared.
		cfg.Registry.BlobURL, cfg.Registry.SharedPath = "file://"+filepath.ToSlash(filepath.Join(dir, "blobs")), true
		cfg.Drift = dc
		cfg.Jobs = jc
		return cfg
	}
	fast := hooks{
		ring: func(rc *ring.Config) {
			l := ring.LoopbackConfig(rc.NodeName)
			rc.RejoinInterval, rc.LeaveTimeout, rc.ProbeInterval, rc.ProbeTimeout = l.RejoinInterval, l.LeaveTimeout, l.ProbeInterval, l.ProbeTimeout
			rc.SuspicionMult, rc.GossipInterval, rc.PushPullInterval, rc.DeadNodeReclaimTime = l.SuspicionMult, l.GossipInterval, l.PushPullInterval, l.DeadNodeReclaimTime
		},
		driftTick: 200 * time.Millisecond,
	}

	// 1. Three collectors: n0 first (its gossip port is picked by the
	// kernel and read from its view), then n1 and n2 joining it.
	n0 := startNode(t, nodeConfig("n0"), fast, logs)
	var seed string
	testenv.EventuallyNil(t, time.Minute, "n0's gossip address", func() error {
		v, err := n0.view()
		if err != nil {
			return err
		}
		for _, m := range v.Members {
			if m.Name == "n0" && m.Addr != "" {
				seed = m.Addr
				return nil
			}
		}
		return fmt.Errorf("%+v", v)
	})
	nodes := []*clusterNode{n0, startNode(t, nodeConfig("n1", seed), fast, logs), startNode(t, nodeConfig("n2", seed), fast, logs)}
	for _, n := range nodes[1:] {
		n.token = n0.token // tokens are the cluster's: n0 bootstrapped them
	}
	byName := map[string]*clusterNode{}
	for _, n := range nodes {
		byName[n.name] = n
	}

	// 2. Membership converges.
	agree(t, nodes, []string{"n0", "n1", "n2"})

	// 3. A minute of history with the reference distribution (the first
	// window of version 1 is its reference), then agents exporting live.
	st := store.New(db.Conn, db.Name, db.Options)
	defer st.Close()
	start := time.Now().Add(-genHistory)
	a := newAgents(start.Add(-time.Second))
	history := &store.Batch{}
	for at := start; at.Before(time.Now()); at = at.Add(genStep) {
		a.add(history, at, "m", perPoint, 0)
		a.add(history, at, "flap", perPoint, 0)
	}
	if err := st.Insert(context.Background(), history, "history"); err != nil {
		t.Fatal(err)
	}
	f := &feed{}
	feedCtx, stopFeed := context.WithCancel(context.Background())
	var feedDone sync.WaitGroup
	feedDone.Go(func() { f.run(feedCtx, t, a, st, db) })
	t.Cleanup(func() { stopFeed(); feedDone.Wait() })

	owners := agree(t, nodes, []string{"n0", "n1", "n2"}, "m", "flap")
	owner := owners["m"]
	t.Logf("owners: %v", owners)

	q := func(query string, args ...any) *driftRows {
		t.Helper()
		var r driftRows
		if err := db.Conn.QueryRow(context.Background(), query, args...).Scan(&r.clean, &r.drifted, &r.judged); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		return &r
	}
	checksOf := func(model, node string) *driftRows {
		return q("SELECT countIf(test = 'check' AND NOT drifted), countIf(test = 'check' AND drifted), countIf(test = 'psi') FROM "+
			db.Name+".drift_results WHERE model = ? AND node = ?", model, node)
	}
	// The owner checks "m" with verdicts and finds no drift in the
	// reference distribution.
	testenv.EventuallyNil(t, time.Minute, "clean checks of m by its owner", func() error {
		r := checksOf("m", owner)
		if r.drifted > 0 {
			t.Fatalf("m drifted before the shift: %+v", r)
		}
		return unless(r.clean >= 2 && r.judged > 0, fmt.Sprintf("%+v", r))
	})

	// 4. Drift: shift "m" and start flapping "flap". At the first drifted
	// check of "m", stop its owner: the incident is not confirmed yet.
	f.flapFrom.Store(time.Now().UnixMilli())
	f.flapping.Store(true)
	f.shift.Store(true)
	var first struct {
		node string
		at   time.Time
	}
	testenv.EventuallyNil(t, time.Minute, "the first drifted check of m", func() error {
		rows, err := db.Conn.Query(context.Background(), "SELECT node, time FROM "+db.Name+
			".drift_results WHERE model = 'm' AND test = 'check' AND drifted ORDER BY time LIMIT 1")
		if err != nil {
			return err
		}
		defer rows.Close()
		if !rows.Next() {
			return errors.New("none yet")
		}
		return rows.Scan(&first.node, &first.at)
	})
	byName[owner].stop()
	first.at = first.at.UTC()
	if first.node != owner {
		t.Fatalf("the first drifted check of m ran on %s, not on its owner %s", first.node, owner)
	}
	before := checksOf("m", owner)
	t.Logf("stopped %s after %d drifted check(s) of m, the first at %s", owner, before.drifted, first.at.Format(time.RFC3339Nano))
	if before.drifted >= uint64(dc.Default.ConfirmM) {
		t.Fatalf("%s made %d drifted checks before it stopped: the incident was confirmed before the kill", owner, before.drifted)
	}

	// Its models move: the survivors agree on another owner.
	var survivors []*clusterNode
	var names []string
	for _, n := range nodes {
		if n.name != owner {
			survivors = append(survivors, n)
			names = append(names, n.name)
		}
	}
	owners = agree(t, survivors, names, "m", "flap")
	next := owners["m"]
	t.Logf("m moved from %s to %s; flap is on %s", owner, next, owners["flap"])

	// Exactly one job, run once by the new owner, succeeded; the job row
	// links the incident (model, version, start) to the published version.
	var job store.JobRow
	testenv.EventuallyNil(t, time.Minute, "the job of m succeeded", func() error {
		var rows []store.JobRow
		if err := db.Conn.Select(context.Background(), &rows, "SELECT * FROM "+db.Name+".jobs FINAL WHERE model = 'm'"); err != nil {
			return err
		}
		if len(rows) > 1 {
			t.Fatalf("%d jobs for m: %+v", len(rows), rows)
		}
		if len(rows) == 0 {
			return fmt.Errorf("no job; checks of m by %s: %+v", next, checksOf("m", next))
		}
		job = rows[0]
		if jobs.Terminal(job.State) && job.State != jobs.StateSucceeded {
			t.Fatalf("job %s ended %s: %s", job.ID, job.State, job.Error)
		}
		return unless(job.State == jobs.StateSucceeded, fmt.Sprintf("%s %s", job.ID, job.State))
	})
	if job.ModelVersion != "1" || !job.IncidentStart.Equal(first.at) || job.ID != jobs.JobID("m", "1", first.at) ||
		job.ResultVersion != 2 || job.LeaseOwner != next || job.Attempt != 1 || job.ExitCode != 0 {
		t.Errorf("job row %+v; want version 1, incident start %s (the killed owner's first drifted check), id %s, result version 2, run by %s in one attempt",
			job, first.at, jobs.JobID("m", "1", first.at), next)
	}
	var incNode string
	var incStart time.Time
	var incidents uint64
	if err := db.Conn.QueryRow(context.Background(), "SELECT count(), any(node), any(window_start) FROM "+db.Name+
		".drift_results WHERE model = 'm' AND test = 'incident'").Scan(&incidents, &incNode, &incStart); err != nil {
		t.Fatal(err)
	}
	if incidents != 1 || incNode != next || !incStart.Equal(first.at) {
		t.Errorf("incidents of m: %d, the first opened by %s starting %s; want 1 opened by %s starting %s",
			incidents, incNode, incStart.UTC(), next, first.at)
	}
	var spec jobs.Spec
	if b, err := os.ReadFile(filepath.Join(specs, job.ID+".json")); err != nil {
		t.Errorf("the job's spec on stdin: %v", err)
	} else if err := json.Unmarshal(b, &spec); err != nil {
		t.Errorf("the job's spec on stdin: %v: %s", err, b)
	} else if spec.ID != job.ID || spec.Model != "m" || spec.Version != "1" || !spec.IncidentStart.Equal(first.at) ||
		spec.ModelStore != modelStore || spec.Attempt != 1 || len(spec.Reasons) == 0 {
		t.Errorf("spec %+v", spec)
	}
	if _, err := os.Stat(filepath.Join(modelStore, "m", "2", "model.onnx")); err != nil {
		t.Errorf("published version: %v", err)
	}

	// 5. "flap" flipped at every check for a while: at most one job (with
	// perfect alternation none: 3 of 4 checks never drift).
	testenv.EventuallyNil(t, time.Minute, "flap to flip six times", func() error {
		n := f.flips.Load()
		return unless(n >= 6, fmt.Sprintf("%d flips", n))
	})
	var flapChecks []bool
	rows, err := db.Conn.Query(context.Background(), "SELECT drifted FROM "+db.Name+
		".drift_results WHERE model = 'flap' AND test = 'check' AND toUnixTimestamp64Milli(time) >= ? ORDER BY time", f.flapFrom.Load())
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var d bool
		if err := rows.Scan(&d); err != nil {
			t.Fatal(err)
		}
		flapChecks = append(flapChecks, d)
	}
	rows.Close()
	t.Logf("flap checks since it started flapping (drifted or not): %v", flapChecks)
	if !slices.Contains(flapChecks, true) || !slices.Contains(flapChecks, false) {
		t.Errorf("flap did not flap: %v", flapChecks)
	}
	flapJobs := count(t, db.Conn, db.Name, "jobs FINAL", "model = 'flap'")
	flapIncidents := count(t, db.Conn, db.Name, "drift_results", "model = 'flap' AND test = 'incident'")
	if flapJobs > 1 || flapIncidents > 1 {
		t.Errorf("flapping made %d incidents and %d jobs; want at most one", flapIncidents, flapJobs)
	}
	t.Logf("flap: %d incident(s), %d job(s)", flapIncidents, flapJobs)

	// Still one job for m, executed once, all this time later.
	if n := count(t, db.Conn, db.Name, "jobs FINAL", "model = 'm'"); n != 1 {
		t.Errorf("%d jobs for m at the end", n)
	}
	b, err := os.ReadFile(runs)
	if err != nil {
		t.Fatal(err)
	}
	var mRuns []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if strings.HasPrefix(line, "m ") {
			mRuns = append(mRuns, line)
		}
	}
	if len(mRuns) != 1 || !strings.Contains(mRuns[0], job.ID) {
		t.Errorf("runs of the command for m: %q; want one, of %s", mRuns, job.ID)
	}
}

// driftRows counts drift_results rows: clean and drifted checks, and
// per-feature PSI rows (checks with a verdict).
type driftRows struct{ clean, drifted, judged uint64 }

// gossipKeyFile writes a new gossip key for a test cluster and returns
// its path.
func gossipKeyFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "gossip.key")
	if _, _, err := ring.LoadOrCreateSecretKeyFile(path); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestJoiningWithoutAGossipKeyIsRefused: a collector told to join peers,
// with no gossip key and without cluster.insecure, does not start.
func TestJoiningWithoutAGossipKeyIsRefused(t *testing.T) {
	cfg := testConfig(t, "clickhouse://127.0.0.1:1", "unused")
	cfg.Cluster = Cluster{NodeName: "lonely", GossipAddr: "127.0.0.1:0", Join: []string{"127.0.0.1:7946"}}
	cfg.Registry.SharedPath = true
	err := run(context.Background(), cfg, Listeners{OTLPGRPC: listen(t), OTLPHTTP: listen(t), Admin: listen(t)}, slog.New(slog.DiscardHandler), hooks{})
	if err == nil || !strings.Contains(err.Error(), "without a gossip key") {
		t.Fatalf("Run = %v; want the refusal to join without a key", err)
	}
}
