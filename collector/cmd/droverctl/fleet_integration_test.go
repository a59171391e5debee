package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover-ml/drover/collector/auth"
	"github.com/drover-ml/drover/collector/fleet"
	"github.com/drover-ml/drover/collector/registry"
	"github.com/drover-ml/drover/collector/store"
	"github.com/drover-ml/drover/shared/testenv"
)

// activeVersions is a registry holding versions 1..n of every model.
type activeVersions uint64

func (n activeVersions) Version(_ context.Context, model string, v uint64) (registry.Version, error) {
	if v == 0 || v > uint64(n) {
		return registry.Version{}, fmt.Errorf("%s v%d: %w", model, v, registry.ErrNotFound)
	}
	return registry.Version{Model: model, Version: v, State: registry.StateActive}, nil
}

// simAgent is an agent that follows iris's desired state through
// collector/fleet's control API: it reports serving what is desired,
// unless failOn names the version, which it reports failed (keeping the
// old one).
type simAgent struct {
	id, host string
	failOn   uint64
}

// TestFleetCommandsAgainstCollectorFleet runs droverctl's fleet commands
// against the real fleet routes (collector/fleet on ClickHouse), with
// agents reporting through the real control API: the bodies droverctl
// sends are the ones the collector reads, --wait ends when the agents
// converge and fails naming the agent whose gate refused the version.
func TestFleetCommandsAgainstCollectorFleet(t *testing.T) {
	fastPoll(t)
	db := testenv.ClickHouse(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := store.Migrate(ctx, db.Conn, store.MigrateOptions{Database: db.Name}); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	f, err := fleet.New(fleet.Options{Conn: db.Conn, Database: db.Name, Versions: activeVersions(3), Node: "collector-a",
		Refresh: 100 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() {
		if err := f.Run(ctx); err != nil {
			t.Errorf("fleet Run: %v", err)
		}
	})
	<-f.Loaded()

	mux := http.NewServeMux()
	for p, h := range f.Routes() {
		mux.Handle(p, h)
	}
	// The admin server authenticates; here every caller is ops-admin.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mux.ServeHTTP(w, r.WithContext(auth.WithPrincipal(r.Context(), auth.Principal{Name: "ops-admin", Role: auth.Admin})))
	}))
	defer srv.Close()
	url := srv.URL

	agents := []simAgent{{id: "agent-1", host: "web-1"}, {id: "agent-2", host: "web-2", failOn: 3}}
	for _, a := range agents {
		if _, err := f.Register(ctx, fleet.Registration{Agent: a.id, Host: a.host, Labels: map[string]string{"zone": "eu-1"}}); err != nil {
			t.Fatal(err)
		}
	}
	wg.Go(func() {
		serving := map[string]uint64{}
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			s := f.State("iris")
			for _, a := range agents {
				mi := fleet.ModelInventory{Model: "iris", Serving: serving[a.id], Versions: []fleet.VersionInventory{}}
				switch {
				case s.Serving == 0:
				case s.Serving == a.failOn:
					msg := fmt.Sprintf("gate: v%d accuracy 0.81 < golden 0.90", a.failOn)
					mi.Versions = append(mi.Versions, fleet.VersionInventory{Version: a.failOn, State: "failed", Error: &msg})
				default:
					serving[a.id] = s.Serving
					mi.Serving = s.Serving
				}
				if mi.Serving != 0 {
					mi.Versions = append(mi.Versions, fleet.VersionInventory{Version: mi.Serving, State: "serving"})
				}
				inv := fleet.Inventory{Host: a.host, Labels: map[string]string{"zone": "eu-1"}, Revision: map[string]uint64{"iris": s.Revision},
					Models: []fleet.ModelInventory{mi}}
				if err := f.Report(ctx, a.id, inv); err != nil && ctx.Err() == nil {
					t.Errorf("report %s: %v", a.id, err)
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	})

	ctl := func(args ...string) (int, string, string) {
		t.Helper()
		return run(t, nil, append([]string{"--collector", url}, args...)...)
	}
	code, out, stderr := ctl("rollout", "iris", "2", "--selector", "zone=eu-1", "--reason", "first", "--wait", "--timeout", "30s")
	if code != 0 || !strings.Contains(out, "revision:  1 (rollout)") || !strings.Contains(out, "iris revision 1: all 2 selected agents converged") {
		t.Fatalf("rollout --wait: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, stderr)
	}

	code, out, stderr = ctl("-o", "json", "status", "iris")
	var st struct {
		Desired struct {
			Revision, Serving uint64
			Selector          map[string]string
			Reason            string
			ChangedBy         string `json:"changed_by"`
		}
		Agents []struct {
			Host, State string
			Serving     uint64
		}
	}
	if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil {
		t.Fatalf("status iris: exit %d, %v\n%s\n%s", code, err, out, stderr)
	}
	if st.Desired.Revision != 1 || st.Desired.Serving != 2 || st.Desired.Selector["zone"] != "eu-1" || st.Desired.Reason != "first" ||
		st.Desired.ChangedBy != "ops-admin" || len(st.Agents) != 2 ||
		st.Agents[0].State != "converged" || st.Agents[1].Serving != 2 {
		t.Errorf("status iris after the rollout: %+v", st)
	}
	if code, out, stderr = ctl("status", "iris"); code != 0 || !strings.Contains(out, "progress: 2 of 2 selected agents converged") {
		t.Errorf("status iris table: exit %d\n%s\n%s", code, out, stderr)
	}
	if code, out, stderr = ctl("agents"); code != 0 || !strings.Contains(out, "web-1") || !strings.Contains(out, "iris:2") {
		t.Errorf("agents: exit %d\n%s\n%s", code, out, stderr)
	}

	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"canary", "iris", "2", "20"}, 5}, // the serving version
		{[]string{"promote", "iris"}, 5},           // no canary
		{[]string{"rollout", "iris", "9"}, 3},      // no such version
		{[]string{"canary", "iris", "3", "10", "--reason", "try"}, 0},
		{[]string{"abort", "iris", "--reason", "changed my mind"}, 0},
		{[]string{"rollout", "iris", "3", "--canary", "10", "--auto", "--analysis-duration", "30m", "--min-samples", "50", "--max-regression", "0.05"}, 0},
		{[]string{"abort", "iris"}, 0},
		{[]string{"shadow", "iris", "3", "10"}, 0},
		{[]string{"shadow", "iris", "3", "0"}, 0},
		{[]string{"pin", "iris", "2", "--reason", "audit"}, 0},
		{[]string{"unpin", "iris"}, 0},
	} {
		if code, out, stderr := ctl(tc.args...); code != tc.code {
			t.Errorf("%s: exit %d, want %d\n%s\n%s", strings.Join(tc.args, " "), code, tc.code, out, stderr)
		}
	}

	code, out, stderr = ctl("rollout", "iris", "3", "--reason", "retrain", "--wait", "--timeout", "30s")
	if code != 1 || !strings.Contains(stderr, "failed on 1 of 2 selected agents") || !strings.Contains(stderr, "web-2 (agent-2): gate: v3 accuracy 0.81 < golden 0.90") {
		t.Errorf("rollout of a version web-2's gate refuses: exit %d, want 1 naming web-2\nstdout:\n%s\nstderr:\n%s", code, out, stderr)
	}
	code, out, stderr = ctl("rollback", "iris", "--reason", "gate", "--wait", "--timeout", "30s")
	if code != 0 || !strings.Contains(out, "serving:   2 (previous 3)") || !strings.Contains(out, "all 2 selected agents converged") {
		t.Errorf("rollback --wait: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, stderr)
	}
	var hist []struct {
		Revision uint64
		Change   string
	}
	r, err := http.Get(url + "/v1/models/iris/desired/history")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	if err := json.NewDecoder(r.Body).Decode(&hist); err != nil || len(hist) == 0 || hist[0].Change != "rollback" {
		t.Errorf("history: %v %+v", err, hist)
	}
}
