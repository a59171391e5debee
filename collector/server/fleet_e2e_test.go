package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drover-ml/drover/agent/agent"
	"github.com/drover-ml/drover/agent/agent/agenttest"
	"github.com/drover-ml/drover/agent/config"
	"github.com/drover-ml/drover/agent/telemetry"
	"github.com/drover-ml/drover/collector/adminclient"
	"github.com/drover-ml/drover/collector/auth"
	"github.com/drover-ml/drover/collector/fleet"
	"github.com/drover-ml/drover/collector/labels"
	"github.com/drover-ml/drover/shared/manifest"
	"github.com/drover-ml/drover/shared/testenv"
	"github.com/drover-ml/drover/shared/testmodels"
)

// e2eWait bounds what the end-to-end test polls for.
const e2eWait = 30 * time.Second

// e2eModel is the model of the end-to-end test: a two-class classifier;
// v1 predicts the index of the larger input, v2 the other one.
const e2eModel = "clf"

// classify sends x to the agent with request id id and returns the
// version that answered and the predicted class; err is a transport
// error or a status other than 200 (safe to call from any goroutine).
func classify(a *agenttest.Agent, id string, x [2]float32) (version string, class int64, err error) {
	body := fmt.Sprintf(`{"id": %q, "inputs": [{"name": %q, "shape": [1, 2], "datatype": "FP32", "data": [%g, %g]}]}`,
		id, testmodels.ClassifierInput, x[0], x[1])
	resp, err := a.HTTP.Post(a.Base+"/v2/models/"+e2eModel+"/infer", "application/json", bytes.NewReader([]byte(body)))
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", 0, fmt.Errorf("infer %s: %d %s", id, resp.StatusCode, b)
	}
	var out struct {
		ModelVersion string `json:"model_version"`
		Outputs      []struct {
			Name string          `json:"name"`
			Data json.RawMessage `json:"data"`
		} `json:"outputs"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return "", 0, fmt.Errorf("infer %s: %v: %s", id, err, b)
	}
	for _, o := range out.Outputs {
		if o.Name == testmodels.ClassifierLabel {
			var d []int64
			if err := json.Unmarshal(o.Data, &d); err != nil || len(d) != 1 {
				return "", 0, fmt.Errorf("infer %s: label output %s", id, o.Data)
			}
			return out.ModelVersion, d[0], nil
		}
	}
	return "", 0, fmt.Errorf("infer %s: no label output: %s", id, b)
}

// TestFleetEndToEnd runs a real collector (embedded ClickHouse) and three
// real agents (agent.Run, real ONNX Runtime) following it, and checks
// issue 14's "Must show" through the admin client: a rollout reaches every
// agent, a rollback under load fails no request, a 20 % canary serves
// v2 to 0.2 ± 0.05 of each agent's requests, a version in use cannot be
// deleted, a label posted to an agent that did not sample the request
// counts in the fleet's F1 at the collector (equal to the offline
// computation), --auto promotes a better canary and aborts a worse one
// (the analysis every 200 ms, duration 8s, min_samples 20, on agent 0's
// telemetry and the labels agent 1 forwards), and an agent restarted
// without the collector serves the last desired versions.
func TestFleetEndToEnd(t *testing.T) {
	db := testenv.ClickHouse(t)
	// The canary analysis checks every 200 ms (30 s by default).
	cfg := testConfig(t, db.DSN, db.Name)
	// The registration answers name the OTLP receivers on this address.
	cfg.Cluster.AdvertiseAddr = "127.0.0.1"
	c := runCollector(t, cfg, hooks{canaryInterval: 200 * time.Millisecond})
	t.Cleanup(c.stop)
	waitReady(t, c)
	ctx := context.Background()
	cl := adminclient.New("http://"+c.adminAddr, adminToken(t, c.dataDir))
	defer cl.Close()

	// v1: class = argmax(x); v2: class = argmin(x).
	for v := uint64(1); v <= 2; v++ {
		w := [][]float32{{1, 0}, {0, 1}}
		if v == 2 {
			w = [][]float32{{0, 1}, {1, 0}}
		}
		m, err := testmodels.Classifier(w, []float32{0, 0})
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, manifest.ModelFile), m, 0o644); err != nil {
			t.Fatal(err)
		}
		if res, _, err := cl.Publish(ctx, e2eModel, dir, adminclient.PublishOptions{}); err != nil || res.Version != v {
			t.Fatalf("publish v%d: %+v, %v", v, res, err)
		}
	}

	// Agent 0 samples every request and sends its telemetry (samples
	// included) to the collector; agents 1 and 2 sample nothing. Agent 0
	// names no telemetry endpoint or token: it sends where the
	// registration answer says, with its control token, so the F1 and
	// the --auto analysis below, which read its samples and metrics from
	// ClickHouse, prove the OTLP the registration directs arrives.
	cfgs := make([]agent.Config, 3)
	for i := range cfgs {
		f := agenttest.File()
		f.Control = config.Control{Addr: config.DefaultControlAddr, Collectors: []string{"http://" + c.adminAddr},
			TokenFile: filepath.Join(c.dataDir, auth.AgentTokenFile), Labels: map[string]string{"zone": "eu-1"},
			HeartbeatInterval: time.Second}
		rate := 0.0
		if i == 0 {
			rate = 1
			f.Telemetry.Disabled = false
			f.Telemetry.Interval = 500 * time.Millisecond
			// Cumulative: the canary analysis reads them from the raw
			// tables at once (delta points only from whole minutes).
			f.Telemetry.Temporality = telemetry.TemporalityCumulative
			// Warm sessions: the canary analysis compares p99 latencies.
			f.Loading.WarmupRuns = 50
		}
		f.Monitoring.Rate = &rate
		cfgs[i] = agent.Config{File: f, ModelDir: t.TempDir(), DataDir: t.TempDir()}
	}
	// wantEvery checks that every agent answers with version v (class as
	// v predicts) to a request that names no version.
	wantEvery := func(t *testing.T, agents []*agenttest.Agent, v int64, what string) {
		t.Helper()
		for i, a := range agents {
			a.WaitServing(t, e2eModel, v)
			got, class, err := classify(a, fmt.Sprintf("%s-%d", what, i), [2]float32{3, 1})
			want := int64(0) // argmax
			if v == 2 {
				want = 1
			}
			if err != nil || got != fmt.Sprint(v) || class != want {
				t.Errorf("%s: agent %d answers version %s class %d (%v), want %d and %d", what, i, got, class, err, v, want)
			}
		}
	}

	t.Run("fleet", func(t *testing.T) {
		agents := make([]*agenttest.Agent, len(cfgs))
		for i, cfg := range cfgs {
			agents[i] = agenttest.Start(t, cfg, nil)
		}
		testenv.Eventually(t, e2eWait, "three agents registered", func() bool {
			as, _, err := cl.Agents(ctx)
			return err == nil && len(as) == 3
		})

		// Rollout v1, then v2: every agent downloads and serves it.
		if _, _, err := cl.Rollout(ctx, e2eModel, adminclient.RolloutRequest{Version: 1, Reason: "e2e"}); err != nil {
			t.Fatalf("rollout v1: %v", err)
		}
		wantEvery(t, agents, 1, "rollout-v1")

		// Labels: agent 0 serves (and samples) four requests, their
		// labels go to agent 1, which never sampled them and forwards
		// them; the collector joins them with agent 0's samples.
		labelsFrom := time.Now().Add(-time.Minute)
		inputs := [][2]float32{{1, 0}, {0, 1}, {1, 0}, {0, 1}} // v1 predicts 0, 1, 0, 1
		truth := []int{0, 1, 1, 1}
		var fb []map[string]any
		for i, x := range inputs {
			id := fmt.Sprintf("f1-%d", i)
			if v, _, err := classify(agents[0], id, x); err != nil || v != "1" {
				t.Fatalf("request %s: version %s, %v", id, v, err)
			}
			fb = append(fb, map[string]any{"id": id, "label": truth[i]})
		}
		body, _ := json.Marshal(fb)
		code, _, ans := agents[1].Do(t, "POST", "/v2/models/"+e2eModel+"/feedback", body, nil)
		if code != http.StatusOK || !bytes.Contains(ans, []byte(`"unknown":4`)) {
			t.Fatalf("labels posted to agent 1: %d %s, want 200 with 4 unknown", code, ans)
		}
		// Offline: class 0 has 1 TP, 1 label, 2 predictions (2/3);
		// class 1 has 2 TP, 3 labels, 2 predictions (4/5).
		wantF1 := (2.0/3 + 4.0/5) / 2
		var f1 *float64
		testenv.EventuallyNil(t, e2eWait, "the fleet's F1 of v1 at the collector", func() error {
			vs, _, err := cl.Versions(ctx, e2eModel, time.Hour)
			if err != nil {
				return err
			}
			for _, v := range vs {
				if v.Version == 1 && v.Metrics.F1 != nil && math.Abs(*v.Metrics.F1-wantF1) < 1e-9 {
					f1 = v.Metrics.F1
					return nil
				}
			}
			return fmt.Errorf("versions %+v", vs)
		})
		js, err := labels.NewStore(db.Conn, db.Name).Join(ctx, e2eModel, "1", labelsFrom, time.Now().Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if m := labels.Evaluate(js)["1"]; m.N != 4 || math.Abs(m.Values["f1"]-*f1) > 1e-9 {
			t.Errorf("offline join: %d labels, f1 %v; the view says %v", m.N, m.Values["f1"], *f1)
		}
		// The automatic canary analysis reads the same labels.
		if n, vals, err := labels.NewStore(db.Conn, db.Name).Metrics(ctx, e2eModel, "1", labelsFrom, time.Now().Add(time.Minute)); err != nil ||
			n != 4 || math.Abs(vals["f1"]-wantF1) > 1e-9 || vals["accuracy"] != 0.75 {
			t.Errorf("canary analysis' label metrics of v1: %d labels, %v (%v); want 4, f1 %v, accuracy 0.75", n, vals, err, wantF1)
		}

		if _, _, err := cl.Rollout(ctx, e2eModel, adminclient.RolloutRequest{Version: 2, Reason: "e2e"}); err != nil {
			t.Fatalf("rollout v2: %v", err)
		}
		wantEvery(t, agents, 2, "rollout-v2")
		testenv.Eventually(t, e2eWait, "the rollout converged on 3 agents", func() bool {
			st, _, err := cl.FleetStatus(ctx, e2eModel)
			return err == nil && st.Progress.Selected == 3 && st.Progress.Converged == 3
		})

		// Rollback under load: no request fails.
		var total, failed, on1, on2 atomic.Int64
		var firstErr atomic.Value
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for i, a := range agents {
			wg.Go(func() {
				for n := 0; ; n++ {
					select {
					case <-stop:
						return
					default:
					}
					total.Add(1)
					v, _, err := classify(a, fmt.Sprintf("load-%d-%d", i, n), [2]float32{3, 1})
					switch {
					case err != nil:
						failed.Add(1)
						firstErr.CompareAndSwap(nil, err.Error())
					case v == "1":
						on1.Add(1)
					case v == "2":
						on2.Add(1)
					}
				}
			})
		}
		testenv.Eventually(t, e2eWait, "load before the rollback", func() bool { return on2.Load() > 30 })
		if _, _, err := cl.Rollback(ctx, e2eModel, adminclient.RollbackRequest{Reason: "e2e"}); err != nil {
			close(stop)
			wg.Wait()
			t.Fatalf("rollback: %v", err)
		}
		for _, a := range agents {
			a.WaitServing(t, e2eModel, 1)
		}
		before := total.Load()
		testenv.Eventually(t, e2eWait, "load after the rollback", func() bool { return total.Load() > before+30 })
		close(stop)
		wg.Wait()
		if failed.Load() != 0 || on1.Load() < 30 || on2.Load() < 30 {
			t.Errorf("rollback under load: %d of %d requests failed (first: %v)", failed.Load(), total.Load(), firstErr.Load())
		}
		t.Logf("rollback under load: %d requests (%d answered by v2, %d by v1), %d failed", total.Load(), on2.Load(), on1.Load(), failed.Load())
		wantEvery(t, agents, 1, "rollback")

		// Canary: 20 % of v2 on every agent.
		if _, _, err := cl.Canary(ctx, e2eModel, adminclient.ShareRequest{Version: 2, Share: 20, Reason: "e2e"}); err != nil {
			t.Fatalf("canary: %v", err)
		}
		for i, a := range agents {
			testenv.Eventually(t, e2eWait, fmt.Sprintf("agent %d: v2 ready as the canary", i), func() bool { return a.Ready(t, e2eModel, 2) })
		}
		testenv.Eventually(t, e2eWait, "the canary reported by 3 agents", func() bool {
			st, _, err := cl.FleetStatus(ctx, e2eModel)
			if err != nil || st.Progress.Converged != 3 {
				return false
			}
			for _, s := range st.Agents {
				if s.Canary == nil || *s.Canary != 2 {
					return false
				}
			}
			return true
		})
		const n = 1000
		for i, a := range agents {
			to2 := 0
			for r := range n {
				v, class, err := classify(a, fmt.Sprintf("canary-%d-%d", i, r), [2]float32{3, 1})
				switch {
				case err != nil:
					t.Fatal(err)
				case v == "2" && class == 1:
					to2++
				case v == "1" && class == 0:
				default:
					t.Fatalf("agent %d request %d: version %s class %d", i, r, v, class)
				}
			}
			share := float64(to2) / n
			if share < 0.15 || share > 0.25 {
				t.Errorf("agent %d: canary share %v, want 0.2 ± 0.05", i, share)
			}
			t.Logf("agent %d: canary share %v", i, share)
		}

		// Delete refused for a version in use: v1 serves, v2 is the
		// canary.
		for v := uint64(1); v <= 2; v++ {
			if _, _, err := cl.DeleteVersion(ctx, e2eModel, v); !adminclient.IsStatus(err, http.StatusConflict) {
				t.Errorf("delete v%d in use: %v, want 409", v, err)
			}
		}

		// Abort: back to v1 alone (v2 stays on disk as the previous
		// version, so a directory scan alone would serve it).
		if _, _, err := cl.Abort(ctx, e2eModel, adminclient.ReasonRequest{Reason: "e2e"}); err != nil {
			t.Fatalf("abort: %v", err)
		}
		testenv.Eventually(t, e2eWait, "the abort reached every agent", func() bool {
			st, _, err := cl.FleetStatus(ctx, e2eModel)
			if err != nil || st.Progress.Converged != 3 {
				return false
			}
			for _, s := range st.Agents {
				if s.Canary != nil && *s.Canary != 0 {
					return false
				}
			}
			return true
		})

		// --auto: the analysis promotes a better canary and aborts a worse
		// one, judged on agent 0's telemetry and the labels forwarded by
		// agent 1. Every label says class 1, what v2 predicts for [3, 1]
		// (F1 1) and v1 does not (F1 0); requests, errors and latency are
		// alike.
		auto := func(what string, canary uint64) *adminclient.DesiredState {
			t.Helper()
			// duration 8s: the analysis decides only once every request
			// and label below is in (it promotes without comparing labels
			// it does not have yet).
			st, _, err := cl.Rollout(ctx, e2eModel, adminclient.RolloutRequest{Version: canary, Reason: "e2e " + what,
				Canary: &adminclient.CanarySpec{Share: 50, Auto: true, Analysis: &adminclient.Analysis{Duration: "8s", MinSamples: 20, MaxRegression: 0.9}}})
			if err != nil {
				t.Fatalf("%s: rollout --canary 50 --auto v%d: %v", what, canary, err)
			}
			testenv.Eventually(t, e2eWait, what+": agent 0 serves the canary", func() bool { return agents[0].Ready(t, e2eModel, int64(canary)) })
			// The labels first (they join the samples as these arrive),
			// then 600 requests, about half to each side: a p99 of about
			// 300 observations, so one slow request (the race detector on
			// a busy machine) does not decide the latency comparison.
			const n = 600
			var fb []map[string]any
			for r := range n {
				fb = append(fb, map[string]any{"id": fmt.Sprintf("%s-%d", what, r), "label": 1})
			}
			body, _ := json.Marshal(fb)
			if code, _, ans := agents[1].Do(t, "POST", "/v2/models/"+e2eModel+"/feedback", body, nil); code != http.StatusOK {
				t.Fatalf("%s: labels: %d %s", what, code, ans)
			}
			for r := range n {
				if _, _, err := classify(agents[0], fmt.Sprintf("%s-%d", what, r), [2]float32{3, 1}); err != nil {
					t.Fatal(err)
				}
			}
			var d *adminclient.DesiredState
			testenv.EventuallyNil(t, e2eWait, what+": the analysis decided", func() error {
				d, _, err = cl.Desired(ctx, e2eModel)
				if err != nil {
					return err
				}
				return unless(d.Revision > st.Revision && d.Canary == nil, fmt.Sprintf("desired %+v", d))
			})
			t.Logf("%s canary: %s", what, d.Reason)
			return d
		}
		if d := auto("better", 2); d.Change != "analysis" || d.Serving != 2 || d.ChangedBy != fleet.AnalysisToken || !strings.Contains(d.Reason, "f1 1 (canary") {
			t.Fatalf("a better canary: desired %+v, want v2 promoted by the analysis, with F1 compared", d)
		}
		if d := auto("worse", 1); d.Change != "analysis" || d.Serving != 2 || d.ChangedBy != fleet.AnalysisToken || !strings.Contains(d.Reason, "regressed") {
			t.Fatalf("a worse canary: desired %+v, want v1 aborted by the analysis (v2 serving)", d)
		}
		// Back to v1 for the restart below (v2 stays as the previous
		// version).
		if _, _, err := cl.Rollback(ctx, e2eModel, adminclient.RollbackRequest{Version: 1, Reason: "e2e"}); err != nil {
			t.Fatalf("rollback: %v", err)
		}
		wantEvery(t, agents, 1, "last-rollback")
	})

	// Restart agent 2 with the collector stopped: desired.json says v1
	// (its directory alone would serve v2, the newest).
	c.stop()
	t.Run("restart without the collector", func(t *testing.T) {
		if _, err := os.Stat(filepath.Join(cfgs[2].ModelDir, e2eModel, "2")); err != nil {
			t.Fatalf("v2 not on disk, so the restart proves nothing: %v", err)
		}
		a := agenttest.Start(t, cfgs[2], nil)
		wantEvery(t, []*agenttest.Agent{a}, 1, "restart")
	})
}
