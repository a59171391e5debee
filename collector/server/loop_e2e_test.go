package server

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drover-ml/drover/agent/agent"
	"github.com/drover-ml/drover/agent/agent/agenttest"
	agentconfig "github.com/drover-ml/drover/agent/config"
	"github.com/drover-ml/drover/collector/adminclient"
	"github.com/drover-ml/drover/collector/auth"
	"github.com/drover-ml/drover/deploy/local/demo"
	"github.com/drover-ml/drover/shared/runtime"
	"github.com/drover-ml/drover/shared/testenv"
)

// loopBudget bounds the loop itself, from the workload's start until the
// metric is restored (issue 17: the whole test ≤ 90 s).
const loopBudget = 75 * time.Second

// TestLoopEndToEnd is `make run`'s loop (docs/demo.md) with faster
// settings: the demo's own configuration files (deploy/local/collector.yaml
// and agent.yaml) with shorter windows and intervals, a real collector
// (embedded ClickHouse, the built-in optimizer) and two real agents
// following it, the demo model published with its training data and rolled
// out, and the demo's workload and drift. It asserts each stage in order:
// the incident, exactly one job, its report improved, the version with the
// lineage incident → job → version, the canary, its promotion by the
// analysis, every agent on the new version, and the live accuracy back
// within 5 % of its value before the drift.
func TestLoopEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("the loop takes about a minute")
	}
	ctx := context.Background()
	db := testenv.ClickHouse(t)
	cfg, err := Load(filepath.Join("..", "..", "deploy", "local", "collector.yaml"))
	if err != nil {
		t.Fatalf("the demo's collector.yaml: %v", err)
	}
	// What differs from make run: the test's engine and directories,
	// and faster settings (docs/demo.md names the knobs).
	cfg.DataDir = t.TempDir()
	cfg.ClickHouse.DSN, cfg.ClickHouse.Database = db.DSN, db.Name
	cfg.ClickHouse.Embedded = Embedded{}
	cfg.Cluster.Disabled = true
	cfg.OTLP.AdvertiseGRPC, cfg.OTLP.AdvertiseHTTP = "", ""
	cfg.Writer.FlushInterval = 200 * time.Millisecond
	p := cfg.Drift.Default
	p.Interval, p.Window = time.Second, 10*time.Second
	p.MinSamples, p.MinRequests, p.MinLabels = 100, 100, 50
	cfg.Drift.Default = p
	cfg.Jobs.Backoff, cfg.Jobs.ResumeInterval = time.Second, time.Second
	cfg.Jobs.Builtin.MinRows = 150
	cfg.Jobs.Builtin.MaxProcs = 1
	// The canary: fewer samples and a wider latency tolerance than make
	// run's (the race detector makes p99s of a few hundred requests noisy);
	// its accuracy is far better anyway.
	cfg.Fleet.CanaryAnalysis.Duration = 10 * time.Second
	cfg.Fleet.CanaryAnalysis.MinSamples = 300
	cfg.Fleet.CanaryAnalysis.MaxRegression = 0.9

	began := time.Now()
	phase := func(what string) { t.Logf("%6.1fs %s", time.Since(began).Seconds(), what) }
	c := runCollector(t, cfg, hooks{canaryInterval: 200 * time.Millisecond, driftTick: 200 * time.Millisecond})
	t.Cleanup(func() { phase("stopping the collector"); c.stop(); phase("collector stopped") })
	waitReady(t, c)
	phase("collector ready")
	cl := adminclient.New("http://"+c.adminAddr, adminToken(t, c.dataDir))
	defer cl.Close()

	// v1: the demo model, published with its training data (the drift
	// reference bins) and rolled out to both agents.
	d, err := demo.Load()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, err := demo.WriteVersion(ctx, d, dir); err != nil {
		t.Fatal(err)
	}
	if res, _, err := cl.Publish(ctx, demo.ModelName, dir, adminclient.PublishOptions{
		TrainingData: filepath.Join(dir, demo.TrainingFile), Label: demo.Label, Author: "loop-test"}); err != nil || res.Version != 1 {
		t.Fatalf("publish v1: %+v, %v", res, err)
	}
	acfg, err := agentconfig.Load(filepath.Join("..", "..", "deploy", "local", "agent.yaml"))
	if err != nil {
		t.Fatalf("the demo's agent.yaml: %v", err)
	}
	tokenFile := filepath.Join(c.dataDir, auth.AgentTokenFile)
	acfg.Runtime = runtime.Options{IntraOpThreads: 1, InterOpThreads: 1}
	acfg.Control.Collectors = []string{"http://" + c.adminAddr}
	acfg.Control.TokenFile, acfg.Telemetry.TokenFile = tokenFile, tokenFile
	acfg.Control.HeartbeatInterval = time.Second
	acfg.Telemetry.Endpoint = c.grpcAddr
	acfg.Telemetry.Interval = 500 * time.Millisecond
	acfg.Monitoring.Window = 10 * time.Second
	acfg.Loading.WarmupRuns = 5
	agents := make([]*agenttest.Agent, 2)
	var bases []string
	for i := range agents {
		f := acfg
		f.Control.Labels = map[string]string{"agent": string(rune('a' + i))}
		agents[i] = agenttest.Start(t, agent.Config{File: f, ModelDir: t.TempDir(), DataDir: t.TempDir()}, nil)
		bases = append(bases, agents[i].Base)
	}
	testenv.Eventually(t, 30*time.Second, "two agents registered", func() bool {
		as, _, err := cl.Agents(ctx)
		return err == nil && len(as) == 2
	})
	if _, _, err := cl.Rollout(ctx, demo.ModelName, adminclient.RolloutRequest{Version: 1, Reason: "loop test"}); err != nil {
		t.Fatalf("rollout v1: %v", err)
	}
	for _, a := range agents {
		a.WaitServing(t, demo.ModelName, 1)
	}
	phase("v1 serving on both agents")

	nt, _, err := cl.CreateToken(ctx, adminclient.TokenRequest{Name: "loop-workload", Role: adminclient.RoleClient})
	if err != nil {
		t.Fatal(err)
	}
	w, err := demo.NewWorkload(demo.WorkloadConfig{Model: demo.ModelName, Agents: bases, Collector: "http://" + c.adminAddr,
		CollectorToken: nt.Token, Rate: 80, DriftAfter: 12 * time.Second, Seed: 1}, d)
	if err != nil {
		t.Fatal(err)
	}
	wctx, stopWork := context.WithCancel(ctx)
	workDone := make(chan error, 1)
	go func() { workDone <- w.Run(wctx) }()
	defer func() {
		stopWork()
		if err := <-workDone; err != nil {
			t.Errorf("workload: %v", err)
		}
	}()

	var out strings.Builder
	start := time.Now()
	watcher := &demo.Watcher{Client: cl, Model: demo.ModelName, Workload: w, Out: &out, Start: start, Poll: 200 * time.Millisecond,
		RestoreAnswers: 150}
	lctx, cancel := context.WithTimeout(ctx, loopBudget)
	err = watcher.Watch(lctx)
	cancel()
	l := watcher.Measure()
	phase("loop done")
	l.Summary(&out, start)
	t.Logf("the loop:\n%s", out.String())
	if err != nil {
		t.Fatalf("the loop did not complete: %v", err)
	}

	// Each stage, in order.
	for i := 1; i < len(demo.Stages); i++ {
		prev, cur := l.At[demo.Stages[i-1]], l.At[demo.Stages[i]]
		if prev.IsZero() || cur.IsZero() || cur.Before(prev) {
			t.Errorf("stage %q at %v, before %q at %v", demo.Stages[i], cur, demo.Stages[i-1], prev)
		}
	}
	// Exactly one job for the drifted version, still once the new version
	// serves; its report improved. (A job of v2 would answer an incident
	// of v2's own: with the test's 10 s windows under -race, one opened in
	// one run of five; it is logged, not counted.)
	jobs, _, err := cl.Jobs(ctx, adminclient.JobFilter{Model: demo.ModelName})
	if err != nil {
		t.Fatal(err)
	}
	ofV1 := 0
	for _, j := range jobs {
		if j.ModelVersion == 1 {
			ofV1++
		} else {
			incs, _, _ := cl.Incidents(ctx, demo.ModelName)
			t.Logf("a job of v%d: %+v; incidents: %+v", j.ModelVersion, j, incs)
		}
	}
	if l.Jobs != 1 || ofV1 != 1 {
		t.Errorf("%d jobs when the search was done, %d of v1 at the end, want exactly 1", l.Jobs, ofV1)
	}
	if !l.Job.IncidentStart.Equal(l.Incident.Start) || l.Incident.ModelVersion != 1 {
		t.Errorf("job %s for the incident of %v, want the incident on v1 at %v", l.Job.ID, l.Job.IncidentStart, l.Incident.Start)
	}
	if l.Report == nil || !l.Report.Improved || !(l.Report.Holdout.New > l.Report.Holdout.Old) {
		t.Errorf("report %+v, want improved with the candidate's held-out score above the serving version's", l.Report)
	}
	// The lineage: incident → job → version.
	r := l.Record
	if r == nil || l.Version != 2 || r.Source != "optimize" || !slices.Equal(r.Parents, []uint64{1}) ||
		r.Job == nil || *r.Job != l.Job.ID || r.Incident == nil || *r.Incident == "" {
		t.Errorf("version %d record %+v, want v2 from optimize, parent 1, job %s and its incident", l.Version, r, l.Job.ID)
	}
	if l.Job.ResultVersion == nil || *l.Job.ResultVersion != l.Version {
		t.Errorf("job result version %v, want %d", l.Job.ResultVersion, l.Version)
	}
	// Promoted by the canary analysis, not by a person.
	if l.Promotion.Change != "analysis" || l.Promotion.Serving != l.Version {
		t.Errorf("promotion %+v, want the analysis making v%d serving", l.Promotion, l.Version)
	}
	for i, a := range agents {
		if got := a.Serving(t, demo.ModelName); got != int64(l.Version) {
			t.Errorf("agent %d serves v%d, want v%d", i, got, l.Version)
		}
	}
	// The metric: degraded by the drift, restored by the new version.
	if l.NBefore < 200 || l.NDrifted < 100 || l.NAfter < 150 {
		t.Errorf("answers counted: %d before, %d drifted on v1, %d on v%d; too few to judge", l.NBefore, l.NDrifted, l.NAfter, l.Version)
	}
	if l.Drifted > l.Before-0.2 {
		t.Errorf("accuracy on drifted rows %.3f, want it at least 0.2 below %.3f (the drift did not degrade the model)", l.Drifted, l.Before)
	}
	if l.After < l.Before*0.95 {
		t.Errorf("accuracy after v%d %.3f, want within 5%% of %.3f before the drift", l.Version, l.After, l.Before)
	}
	if errs, last := w.Errors(); errs > 0 {
		t.Logf("workload: %d failed requests or label posts (last: %v)", errs, last)
	}
}
