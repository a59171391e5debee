package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// statusBody is a fleet status of iris at desired revision rev with
// agents given as "host:state:revision[:error]".
func statusBody(rev int, agents ...string) route {
	type agent struct {
		Agent    string  `json:"agent"`
		Host     string  `json:"host"`
		Selected bool    `json:"selected"`
		Serving  int     `json:"serving"`
		State    string  `json:"state"`
		Error    *string `json:"error"`
		Revision int     `json:"revision"`
	}
	var (
		list []agent
		conv int
	)
	for i, a := range agents {
		p := strings.SplitN(a, ":", 4)
		var r int
		fmt.Sscan(p[2], &r)
		ag := agent{Agent: fmt.Sprintf("a%d", i+1), Host: p[0], Selected: true, Serving: 1, State: p[1], Revision: r}
		if len(p) == 4 {
			ag.Error = &p[3]
		}
		if ag.State == "converged" {
			conv++
			ag.Serving = 2
		}
		list = append(list, ag)
	}
	b, _ := json.Marshal(map[string]any{
		"model":    "iris",
		"desired":  map[string]any{"model": "iris", "revision": rev, "serving": 2, "previous": 1, "change": "rollout"},
		"agents":   list,
		"progress": map[string]int{"selected": len(list), "converged": conv},
	})
	return route{status: 200, body: string(b)}
}

func fastPoll(t *testing.T) {
	old := pollInterval
	pollInterval = 5 * time.Millisecond
	t.Cleanup(func() { pollInterval = old })
}

// TestWait: --wait follows GET /v1/models/iris/status until every selected
// agent converged at the change's revision (exit 0), or one failed (exit 1
// naming it and why), or --timeout passed (exit 1 naming those not there).
func TestWait(t *testing.T) {
	fastPoll(t)
	const statusKey = "GET /v1/models/iris/status"
	t.Run("converges", func(t *testing.T) {
		api, url := startAPI(t)
		api.seq[statusKey] = []route{
			statusBody(6, "web-1:converged:6", "web-2:converged:6", "web-3:converged:6"),      // the collector has not seen revision 7 yet
			statusBody(7, "web-1:converged:6", "web-2:pending:6", "web-3:failed:6:disk full"), // converged at 6 is not converged at 7; a failure at 6 is stale
			statusBody(7, "web-1:converged:7", "web-2:pending:6", "web-3:offline:6"),
			statusBody(7, "web-1:converged:7", "web-2:converged:7", "web-3:converged:8"),
		}
		code, out, stderr := run(t, nil, "--collector", url, "rollout", "iris", "3", "--reason", "r", "--wait")
		if code != 0 {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, stderr)
		}
		if !strings.Contains(out, "revision:  7 (rollout)") || !strings.Contains(out, "iris revision 7: all 3 selected agents converged in ") {
			t.Errorf("stdout lacks the change or the end:\n%s", out)
		}
		for _, s := range []string{
			"iris revision 7: waiting for the collector to show it",
			"iris revision 7: 0 of 3 selected agents converged, 3 pending, 0 failed",
			"iris revision 7: 1 of 3 selected agents converged, 1 pending, 0 failed, 1 offline",
			"iris revision 7: 3 of 3 selected agents converged, 0 pending, 0 failed",
		} {
			if !strings.Contains(stderr, s) {
				t.Errorf("stderr lacks progress %q:\n%s", s, stderr)
			}
		}
		if strings.Contains(stderr, "\r") || strings.Contains(stderr, "\x1b[") {
			t.Errorf("terminal redraws on a non-terminal:\n%q", stderr)
		}
		n := 0
		api.mu.Lock()
		for _, r := range api.reqs {
			if r.Method+" "+r.URL.Path == statusKey {
				n++
			}
		}
		api.mu.Unlock()
		if n != 4 {
			t.Errorf("%d status requests, want 4 (it stops at the first converged answer)", n)
		}
	})
	t.Run("an agent fails", func(t *testing.T) {
		api, url := startAPI(t)
		api.seq[statusKey] = []route{
			statusBody(7, "web-1:pending:6", "web-2:pending:6", "web-3:pending:6"),
			statusBody(7, "web-1:converged:7", "web-2:failed:7:gate: accuracy 0.81 < golden 0.90", "web-3:pending:6"),
			statusBody(7, "web-1:converged:7", "web-2:converged:7", "web-3:converged:7"), // never reached
		}
		code, out, stderr := run(t, nil, "--collector", url, "rollback", "iris", "--wait")
		if code != 1 {
			t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", code, out, stderr)
		}
		for _, s := range []string{
			"droverctl: iris revision 7 failed on 1 of 3 selected agents (they keep serving their old version):",
			"  web-2 (a2): gate: accuracy 0.81 < golden 0.90\n",
			"droverctl status iris",
		} {
			if !strings.Contains(stderr, s) {
				t.Errorf("stderr lacks %q:\n%s", s, stderr)
			}
		}
		if strings.Contains(stderr, "web-3 (a3):") || strings.Contains(out, "converged in") {
			t.Errorf("a pending agent is named as failed, or success printed:\nstdout:\n%s\nstderr:\n%s", out, stderr)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		api, url := startAPI(t)
		api.seq[statusKey] = []route{statusBody(7, "web-1:converged:7", "web-2:pending:6", "web-3:offline:5")}
		start := time.Now()
		code, _, stderr := run(t, nil, "--collector", url, "pin", "iris", "2", "--wait", "--timeout", "2s") // room for a status round trip
		if code != 1 {
			t.Fatalf("exit %d, want 1\nstderr:\n%s", code, stderr)
		}
		if d := time.Since(start); d > 30*time.Second { // not the default 10m
			t.Errorf("returned after %s with --timeout 2s", d)
		}
		for _, s := range []string{
			"droverctl: timed out after 2s waiting for iris revision 7: 1 of 3 selected agents converged; not yet:",
			"  web-2 (a2): pending\n",
			"  web-3 (a3): offline\n",
		} {
			if !strings.Contains(stderr, s) {
				t.Errorf("stderr lacks %q:\n%s", s, stderr)
			}
		}
	})
	t.Run("status error is final", func(t *testing.T) {
		api, url := startAPI(t)
		api.seq[statusKey] = []route{{status: 403, body: `{"error":"token \"ci\" (publisher) may not read"}`}}
		code, _, stderr := run(t, nil, "--collector", url, "promote", "iris", "--wait")
		if code != 4 || !strings.Contains(stderr, "denied") {
			t.Errorf("exit %d, want 4 (denied)\n%s", code, stderr)
		}
	})
	t.Run("-o json keeps stdout JSON", func(t *testing.T) {
		api, url := startAPI(t)
		api.seq[statusKey] = []route{statusBody(7, "web-1:converged:7")}
		code, out, stderr := run(t, nil, "--collector", url, "-o", "json", "canary", "iris", "3", "20", "--wait")
		if code != 0 {
			t.Fatalf("exit %d\n%s", code, stderr)
		}
		var v map[string]any
		if err := json.Unmarshal([]byte(out), &v); err != nil || v["revision"] != float64(7) {
			t.Errorf("stdout is not the change's JSON (%v):\n%s", err, out)
		}
		if !strings.Contains(stderr, "iris revision 7: all 1 selected agents converged") {
			t.Errorf("stderr lacks the end:\n%s", stderr)
		}
	})
	t.Run("no agent selected", func(t *testing.T) {
		api, url := startAPI(t)
		api.seq[statusKey] = []route{statusBody(7)}
		code, _, stderr := run(t, nil, "--collector", url, "rollout", "iris", "3", "--wait")
		if code != 0 || !strings.Contains(stderr, "no agent is selected for iris yet") {
			t.Errorf("exit %d\n%s", code, stderr)
		}
	})
	t.Run("collector unreachable, then back", func(t *testing.T) {
		api, url := startAPI(t)
		api.seq[statusKey] = []route{statusBody(7, "web-1:converged:7")}
		// The change goes to the live collector; the status to a dead one
		// first: the client fails over to the live one each time, so the
		// wait ends.
		dead := deadURL(t)
		code, _, stderr := run(t, nil, "--collector", dead+","+url, "unpin", "iris", "--wait")
		if code != 0 {
			t.Errorf("exit %d\n%s", code, stderr)
		}
		code, _, stderr = run(t, nil, "--collector", dead, "status", "iris")
		if code != 1 || !strings.Contains(stderr, "collector unreachable") {
			t.Errorf("status iris on a dead collector: exit %d\n%s", code, stderr)
		}
	})
	t.Run("collector stops answering during the wait", func(t *testing.T) {
		api, url := startAPI(t)
		api.seq[statusKey] = []route{{status: hangUp}, {status: hangUp}, statusBody(7, "web-1:converged:7")}
		code, out, stderr := run(t, nil, "--collector", url, "abort", "iris", "--wait")
		if code != 0 || !strings.Contains(out, "all 1 selected agents converged") {
			t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, stderr)
		}
		if strings.Count(stderr, "no collector answers iris's status") != 1 {
			t.Errorf("want the outage said once:\n%s", stderr)
		}
		api.seq[statusKey] = []route{{status: hangUp}}
		code, _, stderr = run(t, nil, "--collector", url, "abort", "iris", "--wait", "--timeout", "2s")
		if code != 1 || !strings.Contains(stderr, "timed out after 2s waiting for iris revision 7: GET /v1/models/iris/status: no collector reachable") {
			t.Errorf("exit %d, want 1 with the last error\n%s", code, stderr)
		}
	})
}
