package adminclient_test

import (
	"context"
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/drover-ml/drover/collector/adminclient"
)

// TestFleetRequests: each fleet method sends the route and body of
// docs/fleet.md and decodes the answer.
func TestFleetRequests(t *testing.T) {
	var (
		mu                 sync.Mutex
		method, path, body string
	)
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		method, path, body = r.Method, r.URL.Path, string(b)
		mu.Unlock()
		switch r.URL.Path {
		case "/v1/agents":
			w.Write([]byte(`[{"agent":"a1","host":"web-1","labels":{"zone":"eu-1"},"online":true,"last_seen":"2026-12-06T03:00:05Z","inventory":{"host":"web-1","revision":{"iris":7},"models":[{"model":"iris","serving":2,"versions":[{"version":2,"state":"serving","error":null}],"error":null}],"last_error":null}}]`))
		case "/v1/models/iris/desired/history":
			w.Write([]byte(`[{"model":"iris","revision":7,"serving":2}]`))
		case "/v1/models/iris/status":
			w.Write([]byte(`{"model":"iris","desired":{"model":"iris","revision":7,"serving":2},"agents":[{"agent":"a1","host":"web-1","selected":true,"serving":2,"canary":null,"state":"converged","error":null,"revision":7}],"progress":{"selected":1,"converged":1,"pending":0,"failed":0}}`))
		default:
			w.Write([]byte(`{"model":"iris","revision":7,"serving":2,"previous":1,"canary":{"version":3,"share":20,"auto":true},"shadow":null,"pinned":false,"selector":{"zone":"eu-1"},"change":"rollout"}`))
		}
	})
	c := newClient(t, adminclient.Config{URLs: []string{srv.URL}})
	ctx := context.Background()
	check := func(name string, err error, wantMethod, wantPath, wantBody string) {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if method != wantMethod || path != wantPath || body != wantBody {
			t.Errorf("%s sent %s %s %q, want %s %s %q", name, method, path, body, wantMethod, wantPath, wantBody)
		}
	}
	ds := func(d *adminclient.DesiredState, _ *adminclient.Meta, err error) error {
		if err == nil && (d.Revision != 7 || d.Serving != 2 || d.Canary == nil || d.Canary.Share != 20 || !d.Canary.Auto || d.Selector["zone"] != "eu-1") {
			t.Errorf("decoded %+v", d)
		}
		return err
	}

	agents, _, err := c.Agents(ctx)
	check("Agents", err, "GET", "/v1/agents", "")
	if len(agents) != 1 || agents[0].Host != "web-1" || !agents[0].Online || agents[0].Inventory == nil || len(agents[0].Inventory.Models) != 1 ||
		agents[0].Inventory.Models[0].Serving != 2 || agents[0].Inventory.Revision["iris"] != 7 || agents[0].Labels["zone"] != "eu-1" {
		t.Errorf("agents %+v", agents)
	}
	check("Desired", ds(c.Desired(ctx, "iris")), "GET", "/v1/models/iris/desired", "")
	hist, _, err := c.DesiredHistory(ctx, "iris")
	check("DesiredHistory", err, "GET", "/v1/models/iris/desired/history", "")
	if len(hist) != 1 || hist[0].Revision != 7 {
		t.Errorf("history %+v", hist)
	}
	st, _, err := c.FleetStatus(ctx, "iris")
	check("FleetStatus", err, "GET", "/v1/models/iris/status", "")
	if st.Desired.Revision != 7 || len(st.Agents) != 1 || *st.Agents[0].Serving != 2 || st.Agents[0].Canary != nil || st.Progress.Converged != 1 {
		t.Errorf("status %+v", st)
	}

	check("Rollout", ds(c.Rollout(ctx, "iris", adminclient.RolloutRequest{Version: 3, Canary: &adminclient.CanarySpec{Share: 20, Auto: true},
		Selector: map[string]string{"zone": "eu-1"}, Reason: "retrain"})),
		"POST", "/v1/models/iris/rollout", `{"version":3,"canary":{"share":20,"auto":true},"selector":{"zone":"eu-1"},"reason":"retrain"}`)
	check("Rollout plain", ds(c.Rollout(ctx, "iris", adminclient.RolloutRequest{Version: 3})),
		"POST", "/v1/models/iris/rollout", `{"version":3,"reason":""}`)
	check("Rollback", ds(c.Rollback(ctx, "iris", adminclient.RollbackRequest{Reason: "bad"})),
		"POST", "/v1/models/iris/rollback", `{"reason":"bad"}`)
	check("Rollback N", ds(c.Rollback(ctx, "iris", adminclient.RollbackRequest{Version: 1, Reason: "bad"})),
		"POST", "/v1/models/iris/rollback", `{"version":1,"reason":"bad"}`)
	check("Pin", ds(c.Pin(ctx, "iris", adminclient.PinRequest{Version: 2, Reason: "freeze"})),
		"POST", "/v1/models/iris/pin", `{"version":2,"reason":"freeze"}`)
	check("Unpin", ds(c.Unpin(ctx, "iris", adminclient.ReasonRequest{Reason: "thaw"})),
		"POST", "/v1/models/iris/unpin", `{"reason":"thaw"}`)
	check("Canary", ds(c.Canary(ctx, "iris", adminclient.ShareRequest{Version: 3, Share: 12})),
		"POST", "/v1/models/iris/canary", `{"version":3,"share":12,"reason":""}`)
	check("Promote", ds(c.Promote(ctx, "iris", adminclient.ReasonRequest{})),
		"POST", "/v1/models/iris/promote", `{"reason":""}`)
	check("Abort", ds(c.Abort(ctx, "iris", adminclient.ReasonRequest{Reason: "worse"})),
		"POST", "/v1/models/iris/abort", `{"reason":"worse"}`)
	check("Shadow off", ds(c.Shadow(ctx, "iris", adminclient.ShareRequest{Version: 4, Share: 0})),
		"POST", "/v1/models/iris/shadow", `{"version":4,"share":0,"reason":""}`)
}
