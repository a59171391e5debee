package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/drover-ml/drover/collector/adminclient"
	"github.com/drover-ml/drover/collector/optimize"
)

// reportJSON is a report as the collector answers it (optimize.Report).
const reportJSON = `{"model":"iris","baseline":"3","metric":"accuracy","lower_is_better":false,"family":"logistic_regression",
"params":{"C":10},"grid":[{"family":"logistic_regression","params":{"C":1},"mean":0.91,"std":0.02,"onnx_bytes":812,"latency_us":3.5},
{"family":"logistic_regression","params":{"C":10},"mean":0.9533,"std":0.0125,"onnx_bytes":812,"latency_us":3.4}],
"folds":5,"cv_mean":0.9533,"cv_std":0.0125,"holdout":{"old":0.81,"new":0.95},"improved":true,
"ci":{"low":0.06,"high":0.22,"level":0.95},"traded":"","rows":150,"holdout_rows":30,"seconds":1.25,"published":"4"}`

// TestReportMirrorsOptimize: droverctl decodes the report without
// importing the optimizer; its mirror has the same JSON fields.
func TestReportMirrorsOptimize(t *testing.T) {
	fields := func(typ reflect.Type) []string {
		var out []string
		for i := range typ.NumField() {
			out = append(out, strings.Split(typ.Field(i).Tag.Get("json"), ",")[0])
		}
		return out
	}
	if got, want := fields(reflect.TypeFor[adminclient.Report]()), fields(reflect.TypeFor[optimize.Report]()); !reflect.DeepEqual(got, want) {
		t.Errorf("adminclient.Report fields %v, optimize.Report %v", got, want)
	}
	if got, want := fields(reflect.TypeFor[adminclient.ReportGridPoint]()), fields(reflect.TypeFor[optimize.GridPoint]()); !reflect.DeepEqual(got, want) {
		t.Errorf("adminclient.ReportGridPoint fields %v, optimize.GridPoint %v", got, want)
	}
}

func TestOptimizeManual(t *testing.T) {
	api, url := startAPI(t)
	api.routes["POST /v1/models/iris/optimize"] = route{status: 202, body: `{"id":"job-0a1b2c3d4e5f60718293a4b5","model":"iris","version":"3",` +
		`"incident_start":"2026-03-04T03:06:07.891Z","reasons":["manual"],"created":true}`}
	env := map[string]string{"DROVER_COLLECTOR": url, "DROVER_TOKEN": "tok"}
	code, out, errOut := run(t, env, "optimize", "iris", "--since", "2h")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if body := api.lastBody(); body != `{"since":"2h"}` {
		t.Errorf("body %s, want {\"since\":\"2h\"}", body)
	}
	for _, want := range []string{"job-0a1b2c3d4e5f60718293a4b5", "version:", "3", "manual", "2026-03-04 03:06:07Z"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = run(t, env, "optimize", "iris", "-o", "json")
	var got map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &got) != nil || got["id"] != "job-0a1b2c3d4e5f60718293a4b5" {
		t.Errorf("-o json: exit %d, %s", code, out)
	}
	if body := api.lastBody(); body != `{"since":"24h"}` {
		t.Errorf("default body %s, want {\"since\":\"24h\"}", body)
	}

	api.routes["POST /v1/models/nope/optimize"] = route{status: 404, body: `{"error":"model \"nope\": the model has no active version in the registry"}`}
	api.routes["POST /v1/models/wine/optimize"] = route{status: 409, body: `{"error":"too many open jobs for the model"}`}
	for _, tc := range []struct {
		args []string
		code int
		has  string
	}{
		{[]string{"optimize", "nope"}, 3, "no active version"},
		{[]string{"optimize", "wine"}, 5, "too many open jobs"},
		{[]string{"optimize", "iris", "--since", "soon"}, 2, "--since"},
		{[]string{"optimize", "iris", "--since", "-1h"}, 2, "positive duration"},
		{[]string{"optimize", "iris", "--label", "y"}, 2, "only with --data"},
		{[]string{"optimize", "iris", "--dry-run"}, 2, "only with --data"},
		{[]string{"optimize", "iris", "--timeout", "1m"}, 2, "only with --wait"},
		{[]string{"optimize", "iris", "--data", "x.csv"}, 2, "--data needs --label"},
		{[]string{"optimize", "iris", "--data", "x.csv", "--label", "y", "--folds", "1"}, 2, "--folds 1: want at least 2"},
		{[]string{"optimize", "iris", "--data", "x.csv", "--label", "y", "--wait"}, 2, "--since and --wait"},
		{[]string{"optimize", "iris", "--data", "x.csv", "--label", "y", "--since", "1h"}, 2, "--since and --wait"},
		{[]string{"optimize", "iris", "--data", "/nonexistent.csv", "--label", "y"}, 1, "--data"},
		{[]string{"optimize"}, 2, "want 1 argument"},
	} {
		n := api.count()
		code, _, errOut := run(t, env, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.has) {
			t.Errorf("%v: exit %d, stderr %q; want %d with %q", tc.args, code, errOut, tc.code, tc.has)
		}
		if tc.code == 2 && api.count() != n {
			t.Errorf("%v: a usage error sent a request", tc.args)
		}
	}
}

func TestOptimizeCSV(t *testing.T) {
	api, url := startAPI(t)
	api.routes["POST /v1/models/iris/optimize/csv"] = route{status: 200, body: reportJSON}
	csv := filepath.Join(t.TempDir(), "labelled.csv")
	data := "sepal_length,sepal_width,species\n5.1,3.5,setosa\n6.2,2.9,versicolor\n"
	if err := os.WriteFile(csv, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"DROVER_COLLECTOR": url, "DROVER_TOKEN": "tok"}
	code, out, errOut := run(t, env, "optimize", "iris", "--data", csv, "--label", "species", "--family", "ridge", "--folds", "3", "--dry-run")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	r := api.last()
	if q := r.URL.Query(); q.Get("label") != "species" || q.Get("family") != "ridge" || q.Get("folds") != "3" || q.Get("dry_run") != "true" {
		t.Errorf("query %s", r.URL.RawQuery)
	}
	if ct := r.Header.Get("Content-Type"); ct != "text/csv" {
		t.Errorf("Content-Type %q", ct)
	}
	if r.ContentLength != int64(len(data)) || api.lastBody() != data {
		t.Errorf("body %q (length %d), want the file", api.lastBody(), r.ContentLength)
	}
	for _, want := range []string{
		"accuracy (higher is better)", "logistic_regression", "C=10", "0.9533 ± 0.0125 (5 folds)",
		"old 0.8100 → new 0.9500", "improved:", "yes", "[0.0600, 0.2200] of new − old at 95%", "150 (30 held out)",
		"1.25", "v4", "FAMILY", "C=1", "0.9100 ± 0.0200", "812", "3.5",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// Without --family, --folds, --dry-run: only the label is sent.
	if code, _, _ := run(t, env, "optimize", "iris", "--data", csv, "--label", "species"); code != 0 || api.last().URL.RawQuery != "label=species" {
		t.Errorf("exit %d, query %q", code, api.last().URL.RawQuery)
	}
	code, out, _ = run(t, env, "optimize", "iris", "--data", csv, "--label", "species", "-o", "json")
	var got, want map[string]any
	json.Unmarshal([]byte(reportJSON), &want)
	if code != 0 || json.Unmarshal([]byte(out), &got) != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("-o json: exit %d\n%s", code, out)
	}
	api.routes["POST /v1/models/iris/optimize/csv"] = route{status: 400, body: `{"error":"row 2: column petal_width missing"}`}
	if code, _, errOut := run(t, env, "optimize", "iris", "--data", csv, "--label", "species"); code != 1 || !strings.Contains(errOut, "petal_width missing") {
		t.Errorf("400: exit %d, %s", code, errOut)
	}
}

// TestOptimizeWait: --wait prints each state change and, at the end, the
// report; a job that fails exits 1 with its error.
func TestOptimizeWait(t *testing.T) {
	fastPoll(t)
	api, url := startAPI(t)
	const id = "job-0a1b2c3d4e5f60718293a4b5"
	api.routes["POST /v1/models/iris/optimize"] = route{status: 202, body: `{"id":"` + id + `","model":"iris","version":"3",` +
		`"incident_start":"2026-03-04T03:06:07.891Z","reasons":["manual"],"created":true}`}
	job := func(state string, attempt int, extra string) route {
		return route{status: 200, body: `{"id":"` + id + `","model":"iris","model_version":3,"incident_start":"2026-03-04T03:06:07.891Z",` +
			`"state":"` + state + `","attempt":` + string(rune('0'+attempt)) + `,"created":"2026-03-04T05:06:07Z","updated":"2026-03-04T05:06:07Z"` + extra + `}`}
	}
	env := map[string]string{"DROVER_COLLECTOR": url, "DROVER_TOKEN": "tok"}
	api.seq["GET /v1/jobs/"+id] = []route{job("queued", 1, ""), job("queued", 1, ""), job("running", 1, ""), job("queued", 2, ""),
		job("running", 2, ""), job("succeeded", 2, `,"result_version":4,"report":`+reportJSON)}
	code, out, errOut := run(t, env, "optimize", "iris", "--wait")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var states []string
	for _, l := range strings.Split(strings.TrimSpace(errOut), "\n") {
		if _, s, ok := strings.Cut(l, "job "+id+": "); ok {
			states = append(states, s)
		}
	}
	if want := []string{"queued (attempt 1)", "running (attempt 1)", "queued (attempt 2)", "running (attempt 2)", "succeeded (attempt 2)"}; !reflect.DeepEqual(states, want) {
		t.Errorf("state changes %q, want %q\n%s", states, want, errOut)
	}
	if !strings.Contains(out, "0.9533 ± 0.0125") || !strings.Contains(out, "v4") {
		t.Errorf("the report is not printed:\n%s", out)
	}

	api.seq["GET /v1/jobs/"+id] = []route{job("running", 1, ""), job("failed", 1, `,"error":"too few labelled rows: 12 < min_rows 100"`)}
	code, _, errOut = run(t, env, "optimize", "iris", "--wait")
	if code != 1 || !strings.Contains(errOut, "too few labelled rows") {
		t.Errorf("failed job: exit %d, %s", code, errOut)
	}
	api.seq["GET /v1/jobs/"+id] = []route{job("running", 1, "")}
	code, _, errOut = run(t, env, "optimize", "iris", "--wait", "--timeout", "50ms")
	if code != 1 || !strings.Contains(errOut, "timed out") || !strings.Contains(errOut, "jobs show "+id) {
		t.Errorf("timeout: exit %d, %s", code, errOut)
	}
}

// TestJobsShowReport: jobs show prints a stored report as fields and grid.
func TestJobsShowReport(t *testing.T) {
	api, url := startAPI(t)
	api.routes["GET /v1/jobs/job-1"] = route{status: 200, body: `{"id":"job-1","model":"iris","model_version":3,"incident_start":"2026-03-04T03:06:07Z",` +
		`"state":"succeeded","attempt":1,"created":"2026-03-04T05:06:07Z","updated":"2026-03-04T05:06:07Z","result_version":4,"report":` + reportJSON + `}`}
	code, out, errOut := run(t, map[string]string{"DROVER_COLLECTOR": url, "DROVER_TOKEN": "tok"}, "jobs", "show", "job-1")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"report:", "accuracy (higher is better)", "0.9533 ± 0.0125 (5 folds)", "old 0.8100 → new 0.9500", "LATENCY µs"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, `"cv_mean"`) {
		t.Errorf("the report is printed as JSON too:\n%s", out)
	}
}
