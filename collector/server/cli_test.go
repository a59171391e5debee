package server

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/drover-ml/drover/agent/telemetry"
	"github.com/drover-ml/drover/collector/auth"
	"github.com/drover-ml/drover/collector/cli"
	"github.com/drover-ml/drover/shared/semconv"
	"github.com/drover-ml/drover/shared/testenv"
)

// TestCLIReadViewsOverOTLP fills a real collector through its OTLP
// receiver with what a drover-agent sends (through the agent's own
// telemetry package: requests, latency, live and golden evaluations, the
// loaded-versions gauge, version events), then runs droverctl's read
// commands in JSON form against its admin API and checks the values.
func TestCLIReadViewsOverOTLP(t *testing.T) {
	db := testenv.ClickHouse(t)
	c, _, tok, _ := fullCollector(t, db, "cli-node")
	ctx := context.Background()

	tel, err := telemetry.New(ctx, telemetry.Config{Endpoint: c.grpcAddr, Interval: time.Hour, Timeout: 5 * time.Second, TokenFile: filepath.Join(c.dataDir, auth.AgentTokenFile)},
		telemetry.ResourceInfo{AgentID: "agent-cli", HostName: "host-cli", Version: "test"}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(ctx)
	tel.SetLoadedVersions(func() map[string]int { return map[string]int{"iris": 2} })
	tel.SetEvalSource(func(yield func(model, version, source, metric, class string, value float64)) {
		yield("iris", "2", "labels", "accuracy", "", 0.9)
		yield("iris", "2", "labels", "f1", "", 0.8)
		yield("iris", "2", "golden", "accuracy", "", 0.95)
	})
	tel.Event(semconv.EventLoaded, "iris", "1")
	tel.Event(semconv.EventSwapped, "iris", "1")
	for range 40 {
		tel.RecordRequest("iris", "1", "grpc", "ok", 2*time.Millisecond)
	}
	tel.Event(semconv.EventLoaded, "iris", "2")
	tel.Event(semconv.EventSwapped, "iris", "2")
	for range 18 {
		tel.RecordRequest("iris", "2", "grpc", "ok", 4*time.Millisecond)
	}
	for range 2 {
		tel.RecordRequest("iris", "2", "grpc", "error", 4*time.Millisecond)
	}
	if err := tel.ForceFlush(ctx); err != nil {
		t.Fatal(err)
	}

	run := func(what string, cmd func(*cli.App) error) (map[string]any, []any) {
		t.Helper()
		obj, arr, err := ctl(c.adminAddr, tok, cmd)
		if err != nil {
			t.Fatalf("droverctl %s: %v", what, err)
		}
		return obj, arr
	}
	num := func(v any) float64 {
		f, ok := v.(float64)
		if !ok {
			return math.NaN()
		}
		return f
	}

	// models: iris, served by one host; 60 requests, 2 of them errors.
	testenv.EventuallyNil(t, time.Minute, "droverctl models lists iris with its traffic", func() error {
		_, models := run("models", func(a *cli.App) error { return a.Models(ctx) })
		if len(models) != 1 {
			return unless(false, "models: "+jsonString(models))
		}
		m := models[0].(map[string]any)
		ok := m["name"] == "iris" && num(m["hosts"]) == 1 && math.Abs(num(m["error_rate"])-2.0/60) < 1e-9 &&
			m["owner"] == "cli-node" && num(m["latest_version"]) == 2
		return unless(ok, "models: "+jsonString(models))
	})

	// versions: each version side by side, with its own numbers.
	testenv.EventuallyNil(t, time.Minute, "droverctl versions iris", func() error {
		_, vs := run("versions", func(a *cli.App) error { return a.Versions(ctx, "iris", 24*time.Hour) })
		if len(vs) != 2 {
			return unless(false, "versions: "+jsonString(vs))
		}
		v1, v2 := vs[0].(map[string]any), vs[1].(map[string]any)
		m1, m2 := v1["metrics"].(map[string]any), v2["metrics"].(map[string]any)
		ok := num(v1["version"]) == 1 && num(v2["version"]) == 2 &&
			num(m1["requests"]) == 40 && num(m1["error_rate"]) == 0 && m1["accuracy"] == nil &&
			num(m2["requests"]) == 20 && math.Abs(num(m2["error_rate"])-0.1) < 1e-9 &&
			num(m2["accuracy"]) == 0.9 && num(m2["f1"]) == 0.8 && num(m2["golden_score"]) == 0.95 &&
			num(m2["hosts"]) == 1 && num(m1["latency_p50_ms"]) < num(m2["latency_p50_ms"])
		return unless(ok, "versions: "+jsonString(vs))
	})
	// The record fields no registry has written are null, not absent.
	_, vs := run("versions", func(a *cli.App) error { return a.Versions(ctx, "iris", 24*time.Hour) })
	for _, k := range []string{"content_id", "author", "message"} {
		if v, present := vs[0].(map[string]any)[k]; !present || v != nil {
			t.Errorf("version 1 %s = %v (present %v), want null", k, v, present)
		}
	}

	// diff: v1 → v2 with the request and error-rate deltas.
	diff, _ := run("versions diff", func(a *cli.App) error { return a.VersionDiff(ctx, "iris", "1", "2") })
	deltas := map[string]float64{}
	for _, m := range diff["metrics"].([]any) {
		md := m.(map[string]any)
		deltas[md["name"].(string)] = num(md["delta"])
	}
	if deltas["requests"] != -20 || math.Abs(deltas["error_rate"]-0.1) > 1e-9 {
		t.Errorf("diff deltas %v, want requests -20 and error_rate +0.1", deltas)
	}

	// history: the agent's loads and swaps, in time order.
	_, hist := run("history", func(a *cli.App) error { return a.History(ctx, "iris") })
	var kinds []string
	for _, e := range hist {
		ev := e.(map[string]any)
		kinds = append(kinds, ev["kind"].(string)+"@"+jsonString(ev["version"]))
	}
	if want := []string{"loaded@1", "swapped@1", "loaded@2", "swapped@2"}; jsonString(kinds) != jsonString(want) {
		t.Errorf("history %v, want %v", kinds, want)
	}

	// cluster: this node, alive, owning iris.
	cl, _ := run("cluster", func(a *cli.App) error { return a.Cluster(ctx) })
	members := cl["members"].([]any)
	if len(members) != 1 || members[0].(map[string]any)["name"] != "cli-node" || members[0].(map[string]any)["state"] != "alive" ||
		jsonString(members[0].(map[string]any)["models"]) != `["iris"]` {
		t.Errorf("cluster %s", jsonString(cl))
	}

	// drift and incidents: nothing checked or opened yet, as empty lists.
	dr, _ := run("drift", func(a *cli.App) error { return a.Drift(ctx, "iris") })
	if jsonString(dr["incidents"]) != "[]" || dr["model"] != "iris" {
		t.Errorf("drift %s", jsonString(dr))
	}
	_, inc := run("incidents", func(a *cli.App) error { return a.Incidents(ctx, "") })
	if inc == nil || len(inc) != 0 {
		t.Errorf("incidents %s, want []", jsonString(inc))
	}
}

// jsonString is v as JSON, for messages and comparisons.
func jsonString(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%v (%v)", v, err)
	}
	return string(b)
}
