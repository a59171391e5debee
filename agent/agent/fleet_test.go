package agent_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/drover-ml/drover/agent/agent"
	"github.com/drover-ml/drover/agent/agent/agenttest"
	"github.com/drover-ml/drover/agent/config"
	"github.com/drover-ml/drover/agent/fleet"
	"github.com/drover-ml/drover/agent/fleet/fleettest"
	"github.com/drover-ml/drover/shared/manifest"
	"github.com/drover-ml/drover/shared/testenv"
	"github.com/drover-ml/drover/shared/testmodels"
)

// linear returns the ONNX bytes of y = k*x0 + k*x1.
func linear(t *testing.T, k float32) []byte {
	t.Helper()
	b, err := testmodels.Linear("x", "y", [][]float32{{k}, {k}}, []float32{0})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// inferLin sends x = [1, 1] to lin with request id id and returns the
// version that answered and y (2k).
func inferLin(t *testing.T, a *agenttest.Agent, id string) (string, float64) {
	t.Helper()
	code, _, body := a.Do(t, "POST", "/v2/models/lin/infer", []byte(`{"id": "`+id+`", "inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 1]}]}`), nil)
	if code != http.StatusOK {
		t.Fatalf("infer: %d %s", code, body)
	}
	var out struct {
		ModelVersion string `json:"model_version"`
		Outputs      []struct {
			Data []float64 `json:"data"`
		} `json:"outputs"`
	}
	if err := json.Unmarshal(body, &out); err != nil || len(out.Outputs) != 1 || len(out.Outputs[0].Data) != 1 {
		t.Fatalf("infer answer %s: %v", body, err)
	}
	return out.ModelVersion, out.Outputs[0].Data[0]
}

func fleetConfig(t *testing.T, col *fleettest.Collector, modelDir, dataDir string) agent.Config {
	t.Helper()
	tokFile := filepath.Join(t.TempDir(), "agent.token")
	if err := os.WriteFile(tokFile, []byte(col.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := agenttest.File()
	f.Control = config.Control{Addr: config.DefaultControlAddr, Collectors: []string{col.URL}, TokenFile: tokFile,
		Labels: map[string]string{"zone": "eu-1"}, HeartbeatInterval: config.DefaultHeartbeatInterval}
	return agent.Config{File: f, ModelDir: modelDir, DataDir: dataDir}
}

// agentID waits for the agent to have written its id.
func agentID(t *testing.T, dataDir string) string {
	t.Helper()
	var id string
	testenv.EventuallyNil(t, agenttest.Wait, "agent.id written", func() error {
		b, err := os.ReadFile(filepath.Join(dataDir, fleet.AgentIDFile))
		id = strings.TrimSpace(string(b))
		return err
	})
	return id
}

// TestFleet follows a fake collector through a rollout, the control
// calls it refuses, a canary, a rollback, a download that fails and a
// restart with no collector, with real ONNX models and real inference.
func TestFleet(t *testing.T) {
	col := fleettest.New(t)
	for k := int64(1); k <= 4; k++ {
		col.Publish("lin", k, map[string][]byte{manifest.ModelFile: linear(t, float32(k))})
	}
	modelDir, dataDir := t.TempDir(), t.TempDir()
	// v1 is the operator's: published into the directory, never
	// downloaded, so never removed.
	if _, err := testmodels.WriteVersion(modelDir, "lin", 1, linear(t, 1)); err != nil {
		t.Fatal(err)
	}
	cfg := fleetConfig(t, col, modelDir, dataDir)

	t.Run("follow", func(t *testing.T) {
		a := agenttest.Start(t, cfg, nil)
		a.WaitServing(t, "lin", 1)
		id := agentID(t, dataDir)
		testenv.Eventually(t, agenttest.Wait, "registered and an inventory reported", func() bool {
			inv, ok := col.Inventory(id)
			return ok && inv.Labels["zone"] == "eu-1" && len(inv.Models) == 1 && inv.Models[0].Serving == 1
		})

		// Rollout: v2 is downloaded, served, and reported at its revision.
		rev := col.SetDesired("lin", fleet.State{Serving: 2, Previous: 1})
		a.WaitServing(t, "lin", 2)
		if v, y := inferLin(t, a, "r1"); v != "2" || y != 4 {
			t.Errorf("infer after the rollout: version %s y %v, want 2 and 4", v, y)
		}
		testenv.Eventually(t, agenttest.Wait, "inventory: v2 serving at the revision", func() bool {
			inv, _ := col.Inventory(id)
			return inv.Revision["lin"] == rev && len(inv.Models) == 1 && inv.Models[0].Serving == 2 && inv.Models[0].Error == nil
		})
		// A label for a request this agent never sampled is counted
		// unknown here and forwarded to the collector.
		if code, _, body := a.Do(t, "POST", "/v2/models/lin/feedback", []byte(`[{"id": "elsewhere-1", "label": 4}]`), nil); code != http.StatusOK || !strings.Contains(string(body), `"unknown":1`) {
			t.Errorf("feedback for an unknown id: %d %s, want 200 with unknown 1", code, body)
		}
		testenv.Eventually(t, agenttest.Wait, "the unknown label forwarded to the collector", func() bool {
			fbs := col.Feedbacks("lin")
			return len(fbs) == 1 && strings.Contains(fbs[0], `"elsewhere-1"`)
		})
		for _, d := range col.Digests("lin", 2) {
			if _, err := os.Stat(filepath.Join(dataDir, "blobs", "sha256", d)); err != nil {
				t.Errorf("blob %s of v2 not in the cache: %v", d, err)
			}
		}

		// The control listener refuses local changes for the model,
		// naming the collector.
		for _, c := range []struct{ method, path, body string }{
			{"POST", "/v2/models/lin/versions/1/pin", ""},
			{"DELETE", "/v2/models/lin/pin", ""},
			{"PUT", "/v2/models/lin/canary", `{"version": 1, "percent": 10}`},
			{"PUT", "/v2/models/lin/shadow", `{"version": 1, "percent": 10}`},
			{"POST", "/v2/models/lin/canary/promote", ""},
		} {
			code, _, body := a.ControlDo(t, c.method, c.path, []byte(c.body))
			if code != http.StatusConflict || !strings.Contains(string(body), col.URL) {
				t.Errorf("%s %s: %d %s, want 409 naming %s", c.method, c.path, code, body, col.URL)
			}
		}

		// Canary: 20 % of the requests that name no version go to v3.
		col.SetDesired("lin", fleet.State{Serving: 2, Previous: 1, Canary: &fleet.Split{Version: 3, Share: 20}})
		testenv.Eventually(t, agenttest.Wait, "v3 serving as the canary", func() bool { return a.Ready(t, "lin", 3) })
		testenv.Eventually(t, agenttest.Wait, "inventory: v3 reported as the canary", func() bool {
			inv, _ := col.Inventory(id)
			return len(inv.Models) == 1 && inv.Models[0].Serving == 2 &&
				slices.ContainsFunc(inv.Models[0].Versions, func(v fleet.VersionInventory) bool { return v.Version == 3 && v.State == "canary" })
		})
		const n = 1000
		to3 := 0
		for i := range n {
			v, y := inferLin(t, a, fmt.Sprintf("canary-%d", i))
			switch {
			case v == "3" && y == 6:
				to3++
			case v == "2" && y == 4:
			default:
				t.Fatalf("request %d: version %s y %v", i, v, y)
			}
		}
		if share := float64(to3) / n; share < 0.15 || share > 0.25 {
			t.Errorf("canary share %v, want 0.2 ± 0.05", share)
		}

		// Rollback to v1: the downloaded v3 goes (neither desired nor
		// previous); v2 stays as the previous version; v1 was never
		// downloaded and stays.
		rev = col.SetDesired("lin", fleet.State{Serving: 1, Previous: 2})
		a.WaitServing(t, "lin", 1)
		if v, y := inferLin(t, a, "r2"); v != "1" || y != 2 {
			t.Errorf("infer after the rollback: version %s y %v, want 1 and 2", v, y)
		}
		testenv.Eventually(t, agenttest.Wait, "v3 removed", func() bool {
			_, err := os.Stat(filepath.Join(modelDir, "lin", "3"))
			return os.IsNotExist(err)
		})
		for _, v := range []string{"1", "2"} {
			if _, err := os.Stat(filepath.Join(modelDir, "lin", v)); err != nil {
				t.Errorf("lin/%s: %v, want kept", v, err)
			}
		}

		// A download that fails leaves v1 serving and is reported.
		col.FailBlob(col.Digests("lin", 4)[0], http.StatusInternalServerError)
		col.SetDesired("lin", fleet.State{Serving: 4, Previous: 1})
		testenv.Eventually(t, agenttest.Wait, "the download error in the inventory", func() bool {
			inv, _ := col.Inventory(id)
			return len(inv.Models) == 1 && inv.Models[0].Error != nil && strings.Contains(*inv.Models[0].Error, "v4") && inv.Models[0].Serving == 1
		})
		if v, _ := inferLin(t, a, "r3"); v != "1" {
			t.Errorf("after the failed download version %s answers, want 1", v)
		}
		if _, err := os.Stat(filepath.Join(modelDir, "lin", "4")); !os.IsNotExist(err) {
			t.Errorf("lin/4 after a failed download: %v, want none", err)
		}
		// Back to v1 for the restart below.
		col.FailBlob(col.Digests("lin", 4)[0], 0)
		rev = col.SetDesired("lin", fleet.State{Serving: 1, Previous: 2})
		testenv.Eventually(t, agenttest.Wait, "the rollback to v1 reported", func() bool {
			inv, _ := col.Inventory(id)
			return inv.Revision["lin"] == rev && inv.Models[0].Error == nil
		})
	})

	// Restart with the collector unreachable: desired.json says v1 (the
	// directory alone would serve v2, the latest).
	col.Close()
	t.Run("restart without a collector", func(t *testing.T) {
		a := agenttest.Start(t, cfg, nil)
		a.WaitServing(t, "lin", 1)
		if v, y := inferLin(t, a, "r4"); v != "1" || y != 2 {
			t.Errorf("infer after the restart: version %s y %v, want 1 and 2", v, y)
		}
		if code, _, _ := a.ControlDo(t, "POST", "/v2/models/lin/versions/9/pin", nil); code != http.StatusConflict {
			t.Errorf("pin after the restart: %d, want 409", code)
		}
	})
}

// TestFleetTLS: an https collector verified with control.collector_tls's
// ca_file; the rollout reaches the agent.
func TestFleetTLS(t *testing.T) {
	col := fleettest.NewTLS(t)
	col.Publish("lin", 2, map[string][]byte{manifest.ModelFile: linear(t, 2)})
	modelDir := t.TempDir()
	if _, err := testmodels.WriteVersion(modelDir, "lin", 1, linear(t, 1)); err != nil {
		t.Fatal(err)
	}
	cfg := fleetConfig(t, col, modelDir, t.TempDir())
	cfg.File.Control.CollectorTLS.CAFile = col.CAFile(t)
	a := agenttest.Start(t, cfg, nil)
	col.SetDesired("lin", fleet.State{Serving: 2, Previous: 1})
	a.WaitServing(t, "lin", 2)
	if v, y := inferLin(t, a, "tls"); v != "2" || y != 4 {
		t.Errorf("infer: version %s y %v, want 2 and 4", v, y)
	}
}
