package server

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
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
	agentfleet "github.com/drover-ml/drover/agent/fleet"
	"github.com/drover-ml/drover/collector/adminclient"
	"github.com/drover-ml/drover/collector/auth"
	"github.com/drover-ml/drover/collector/cli"
	"github.com/drover-ml/drover/collector/ring"
	"github.com/drover-ml/drover/shared/manifest"
	"github.com/drover-ml/drover/shared/testenv"
	"github.com/drover-ml/drover/shared/testmodels"
)

// The fault drills of issue 14 ("Bad input and faults"), with a real
// collector (two for the failover), real agents (agent.Run, ONNX Runtime)
// and droverctl's code (collector/cli, whose exit codes droverctl
// returns).

// publishClassifier publishes e2eModel's next version through cl: v1's
// weights (argmax) when argmax, else v2's (argmin); with golden, a
// drover.yaml whose golden set the version gets half right.
func publishClassifier(t *testing.T, cl *adminclient.Client, want uint64, argmax, golden bool) {
	t.Helper()
	w := [][]float32{{0, 1}, {1, 0}}
	if argmax {
		w = [][]float32{{1, 0}, {0, 1}}
	}
	m, err := testmodels.Classifier(w, []float32{0, 0})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, manifest.ModelFile), m, 0o644); err != nil {
		t.Fatal(err)
	}
	if golden {
		// Rows 1 and 2 are right for argmax, 3 and 4 wrong: accuracy 0.5
		// either way.
		files := map[string]string{
			"drover.yaml":     "golden_set:\n  path: eval/golden.csv\n  task: classification\n  output: " + testmodels.ClassifierLabel + "\n  features: [a, b]\n  label: y\n",
			"eval/golden.csv": "a,b,y\n3,1,0\n1,3,1\n3,1,1\n1,3,0\n",
		}
		for name, body := range files {
			if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if res, _, err := cl.Publish(context.Background(), e2eModel, dir, adminclient.PublishOptions{}); err != nil || res.Version != want {
		t.Fatalf("publish v%d: %+v, %v", want, res, err)
	}
}

// followerConfig is an agent following collectors (the first first).
func followerConfig(t *testing.T, tokenFile string, collectors ...string) agent.Config {
	f := agenttest.File()
	f.Control = config.Control{Addr: config.DefaultControlAddr, Collectors: collectors, TokenFile: tokenFile,
		Labels: map[string]string{"zone": "eu-1"}, HeartbeatInterval: time.Second}
	return agent.Config{File: f, ModelDir: t.TempDir(), DataDir: t.TempDir()}
}

// droverctl runs a droverctl command's code against url; it returns the exit
// code droverctl would return and what it printed.
func droverctl(url, token string, call func(context.Context, *cli.App) error) (int, string) {
	var out bytes.Buffer
	app := &cli.App{Opts: cli.Options{Collector: url, Token: token, Output: "table"}, Out: &out, Err: &out,
		Getenv: func(string) string { return "" }, PollInterval: 100 * time.Millisecond}
	err := call(context.Background(), app)
	if err != nil {
		fmt.Fprintln(&out, err)
	}
	return cli.ExitCode(err), out.String()
}

// TestFleetDrillGateOfflineDelete: (a) a version one host's gate refuses:
// `rollout --wait` exits non-zero naming that host and the gate's reason,
// `status` reports it failed, and it keeps serving the old version while
// the other converges; (c) an agent offline during a change converges
// when it comes back; (d) `versions delete` of a serving or desired
// version is refused with exit 5.
func TestFleetDrillGateOfflineDelete(t *testing.T) {
	db := testenv.ClickHouse(t)
	cfg := testConfig(t, db.DSN, db.Name)
	c := startCollector(t, cfg)
	url, token := "http://"+c.adminAddr, adminToken(t, c.dataDir)
	cl := adminclient.New(url, token)
	defer cl.Close()
	publishClassifier(t, cl, 1, true, false)
	publishClassifier(t, cl, 2, false, true)

	tokenFile := filepath.Join(c.dataDir, auth.AgentTokenFile)
	plain, strict := followerConfig(t, tokenFile, url), followerConfig(t, tokenFile, url)
	// The strict host's gate wants accuracy 0.99 on a version's golden
	// set; v2 has 0.5. The plain host sets no floor.
	strict.File.Monitoring.Gate = &manifest.Gate{Min: map[string]float64{"accuracy": 0.99}}
	strictID, err := agentfleet.AgentID(strict.DataDir)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("gate", func(t *testing.T) {
		p, s := agenttest.Start(t, plain, nil), agenttest.Start(t, strict, nil)
		if code, out := droverctl(url, token, func(ctx context.Context, a *cli.App) error {
			return a.Rollout(ctx, e2eModel, "1", cli.RolloutFlags{}, cli.ChangeFlags{Reason: "drill", Wait: true, Timeout: e2eWait})
		}); code != 0 {
			t.Fatalf("rollout v1 --wait: exit %d\n%s", code, out)
		}
		code, out := droverctl(url, token, func(ctx context.Context, a *cli.App) error {
			return a.Rollout(ctx, e2eModel, "2", cli.RolloutFlags{}, cli.ChangeFlags{Reason: "drill", Wait: true, Timeout: e2eWait})
		})
		if code == 0 || !strings.Contains(out, "failed on 1 of 2 selected agents") || !strings.Contains(out, strictID) || !strings.Contains(out, "golden set") {
			t.Fatalf("rollout v2 --wait, refused by one host's gate: exit %d, want non-zero naming %s and the gate\n%s", code, strictID, out)
		}
		p.WaitServing(t, e2eModel, 2)
		if v := s.Serving(t, e2eModel); v != 1 {
			t.Errorf("the strict host serves v%d, want v1 kept", v)
		}
		if v, class, err := classify(s, "drill-old", [2]float32{3, 1}); err != nil || v != "1" || class != 0 {
			t.Errorf("the strict host answers v%s class %d (%v), want v1's 0", v, class, err)
		}
		// The plain host's inventory follows its swap.
		testenv.EventuallyNil(t, e2eWait, "status: the strict host failed by its gate, the plain one converged", func() error {
			st, _, err := cl.FleetStatus(context.Background(), e2eModel)
			if err != nil {
				return err
			}
			for _, ag := range st.Agents {
				failed := ag.State == "failed" && ag.Error != nil && strings.Contains(*ag.Error, "golden set")
				if (ag.Agent == strictID) != failed {
					return fmt.Errorf("status of %s: %s (%v); want failed with the gate's reason only on %s", ag.Agent, ag.State, ag.Error, strictID)
				}
			}
			return unless(st.Progress.Failed == 1 && st.Progress.Converged == 1, fmt.Sprintf("progress %+v, want 1 converged and 1 failed", st.Progress))
		})
		if code, out := droverctl(url, token, func(ctx context.Context, a *cli.App) error { return a.FleetStatus(ctx, e2eModel) }); code != 0 ||
			!strings.Contains(out, "failed") || !strings.Contains(out, "golden set") {
			t.Errorf("status %s: exit %d\n%s", e2eModel, code, out)
		}

		// (d) v1 serves on the strict host, v2 is desired.
		for _, v := range []string{"1", "2"} {
			if code, out := droverctl(url, token, func(ctx context.Context, a *cli.App) error { return a.VersionDelete(ctx, e2eModel, v) }); code != cli.ExitRefused {
				t.Errorf("versions delete %s v%s (in use): exit %d, want %d\n%s", e2eModel, v, code, cli.ExitRefused, out)
			}
		}
	})

	// (c) The plain agent is offline (the subtest above stopped both)
	// while the fleet rolls back to v1; started again, it converges.
	if code, out := droverctl(url, token, func(ctx context.Context, a *cli.App) error {
		return a.Rollback(ctx, e2eModel, "1", cli.ChangeFlags{Reason: "drill"})
	}); code != 0 {
		t.Fatalf("rollback to v1 with every agent offline: exit %d\n%s", code, out)
	}
	t.Run("offline agent converges", func(t *testing.T) {
		if _, err := os.Stat(filepath.Join(plain.ModelDir, e2eModel, "2")); err != nil {
			t.Fatalf("v2 not on the plain host's disk: %v", err)
		}
		p := agenttest.Start(t, plain, nil)
		p.WaitServing(t, e2eModel, 1)
		plainID, _ := agentfleet.AgentID(plain.DataDir)
		testenv.EventuallyNil(t, e2eWait, "the plain agent reported converged", func() error {
			st, _, err := cl.FleetStatus(context.Background(), e2eModel)
			if err != nil {
				return err
			}
			for _, ag := range st.Agents {
				if ag.Agent == plainID {
					return unless(ag.State == "converged" && ag.Serving != nil && *ag.Serving == 1, fmt.Sprintf("%+v", ag))
				}
			}
			return fmt.Errorf("not listed: %+v", st.Agents)
		})
	})
}

// TestFleetDrillCollectorDies: (b) two collectors; the agents follow the
// first, which stops right after a rollout; they fail over to the second,
// converge on the rollout's version and send their OTLP there, and no
// request fails or meets anything but the old or the new version
// meanwhile.
func TestFleetDrillCollectorDies(t *testing.T) {
	db := testenv.ClickHouse(t)
	logs := &testenv.Buffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("collector logs:\n%s", logs.String())
		}
	})
	dir := t.TempDir()
	key := gossipKeyFile(t)
	nodeConfig := func(name string, join ...string) Config {
		cfg := testConfig(t, db.DSN, db.Name)
		cfg.Cluster = Cluster{NodeName: name, GossipAddr: "127.0.0.1:0", AdvertiseAddr: "127.0.0.1", Join: join, KeyFile: key}
		cfg.Registry.BlobURL, cfg.Registry.SharedPath = "file://"+filepath.ToSlash(filepath.Join(dir, "blobs")), true
		return cfg
	}
	n0cfg := nodeConfig("n0")
	n0 := startNode(t, n0cfg, fastRing, logs)
	seed := gossipAddr(t, n0)
	n1 := startNode(t, nodeConfig("n1", seed), fastRing, logs)
	n1.token = n0.token
	agree(t, []*clusterNode{n0, n1}, []string{"n0", "n1"})
	cl := adminclient.New("http://"+n0.admin, n0.token)
	defer cl.Close()
	publishClassifier(t, cl, 1, true, false)
	publishClassifier(t, cl, 2, false, false)

	tokenFile := filepath.Join(n0cfg.DataDir, auth.AgentTokenFile)
	cfgs := []agent.Config{
		followerConfig(t, tokenFile, "http://"+n0.admin, "http://"+n1.admin),
		followerConfig(t, tokenFile, "http://"+n0.admin, "http://"+n1.admin),
	}
	// Agent 0 samples every request and sends its OTLP where the
	// registration answer says.
	rate := 1.0
	cfgs[0].File.Monitoring.Rate = &rate
	cfgs[0].File.Telemetry.Disabled = false
	cfgs[0].File.Telemetry.Interval = 200 * time.Millisecond
	alog := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})).With("agent", 0)
	agents := []*agenttest.Agent{agenttest.Start(t, cfgs[0], alog), agenttest.Start(t, cfgs[1], nil)}
	if _, _, err := cl.Rollout(context.Background(), e2eModel, adminclient.RolloutRequest{Version: 1, Reason: "drill"}); err != nil {
		t.Fatal(err)
	}
	for _, a := range agents {
		a.WaitServing(t, e2eModel, 1)
	}

	// Load on both agents through the rollout and the failover: every
	// answer is v1 or v2, none fails.
	var failed, other atomic.Int64
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
				v, class, err := classify(a, fmt.Sprintf("load-%d-%d", i, n), [2]float32{3, 1})
				switch {
				case err != nil:
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				case !(v == "1" && class == 0) && !(v == "2" && class == 1):
					other.Add(1)
				}
			}
		})
	}
	if _, _, err := cl.Rollout(context.Background(), e2eModel, adminclient.RolloutRequest{Version: 2, Reason: "drill"}); err != nil {
		close(stop)
		wg.Wait()
		t.Fatal(err)
	}
	n0.stop()
	for _, a := range agents {
		a.WaitServing(t, e2eModel, 2)
	}
	close(stop)
	wg.Wait()
	if failed.Load() != 0 || other.Load() != 0 {
		t.Errorf("during the failover: %d requests failed (first: %v), %d answered by neither v1 nor v2", failed.Load(), firstErr.Load(), other.Load())
	}
	cl1 := adminclient.New("http://"+n1.admin, n1.token)
	defer cl1.Close()
	testenv.Eventually(t, e2eWait, "both agents converged, as n1 sees them", func() bool {
		st, _, err := cl1.FleetStatus(context.Background(), e2eModel)
		return err == nil && st.Desired.Serving == 2 && st.Progress.Selected == 2 && st.Progress.Converged == 2
	})
	// OTLP follows the failover: samples of requests served after n0
	// stopped reach ClickHouse through n1's receiver. The load sampled
	// every request, so the agent's event queue may still be full when
	// they are sent (it drains to n1 a few milliseconds after the switch,
	// which cancels the export in flight to n0 and sends its records to
	// n1) and drop the first ones (drover.events.dropped): a request is
	// sent at each poll until five of them are stored.
	r := 0
	testenv.Eventually(t, e2eWait, "samples sent after the failover in ClickHouse", func() bool {
		if v, _, err := classify(agents[0], fmt.Sprintf("after-failover-%d", r), [2]float32{3, 1}); err != nil || v != "2" {
			t.Fatalf("request after the failover: v%s, %v", v, err)
		}
		r++
		return count(t, db.Conn, db.Name, "samples", "request_id LIKE 'after-failover-%'") >= 5
	})
}

// fastRing: memberlist's loopback timings, so a stopped node is gone in
// about a second.
var fastRing = hooks{ring: func(rc *ring.Config) {
	l := ring.LoopbackConfig(rc.NodeName)
	rc.RejoinInterval, rc.LeaveTimeout, rc.ProbeInterval, rc.ProbeTimeout = l.RejoinInterval, l.LeaveTimeout, l.ProbeInterval, l.ProbeTimeout
	rc.SuspicionMult, rc.GossipInterval, rc.PushPullInterval, rc.DeadNodeReclaimTime = l.SuspicionMult, l.GossipInterval, l.PushPullInterval, l.DeadNodeReclaimTime
}}

// gossipAddr is n's gossip address as its view says.
func gossipAddr(t *testing.T, n *clusterNode) string {
	t.Helper()
	var addr string
	testenv.EventuallyNil(t, time.Minute, n.name+"'s gossip address", func() error {
		v, err := n.view()
		if err != nil {
			return err
		}
		for _, m := range v.Members {
			if m.Name == n.name && m.Addr != "" {
				addr = m.Addr
				return nil
			}
		}
		return fmt.Errorf("%+v", v)
	})
	return addr
}
