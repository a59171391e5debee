package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/drover-ml/drover/shared/testenv"
)

func TestRedactDSN(t *testing.T) {
	for in, want := range map[string]string{
		"clickhouse://drover:hunter2@127.0.0.1:9000/drover":          "clickhouse://drover:REDACTED@127.0.0.1:9000/drover",
		"clickhouse://127.0.0.1:9000/drover":                         "clickhouse://127.0.0.1:9000/drover",
		"clickhouse://drover@127.0.0.1:9000/drover":                  "clickhouse://drover@127.0.0.1:9000/drover",
		"clickhouse://127.0.0.1:9000/drover?password=x&username=ana": "clickhouse://127.0.0.1:9000/drover?password=REDACTED&username=ana",
		"drover:secret@tcp(host)":                                    "REDACTED",
	} {
		if got := RedactDSN(in); got != want {
			t.Errorf("RedactDSN(%q) = %q, want %q", in, got, want)
		}
	}
	spec := string(redactSpec(`{"id":"j","clickhouse_dsn":"clickhouse://u:p%40ss@h:9000/db","callback_url":"http://x/v1/jobs/j/status","attempt":2}`))
	if spec != `{"attempt":2,"clickhouse_dsn":"clickhouse://u:REDACTED@h:9000/db","id":"j"}` {
		t.Errorf("redactSpec = %s", spec)
	}
}

func TestSplitError(t *testing.T) {
	for _, tc := range []struct{ in, reason, output string }{
		{"", "", ""},
		{"exit status 1", "exit status 1", ""},
		{"exit status 1\n--- stdout ---\nhi\n--- stderr ---\nboom\n", "exit status 1", "--- stdout ---\nhi\n--- stderr ---\nboom\n"},
		{"--- stderr ---\nwarn\n", "", "--- stderr ---\nwarn\n"},
	} {
		if r, o := splitError(tc.in); r != tc.reason || o != tc.output {
			t.Errorf("splitError(%q) = %q, %q; want %q, %q", tc.in, r, o, tc.reason, tc.output)
		}
	}
}

// TestCancelKillsTheLocalAttempt: cancelling a job whose attempt runs on
// this node kills its process at once (long before the lease would
// lapse), writes no outcome over the cancel, and records the attempt.
func TestCancelKillsTheLocalAttempt(t *testing.T) {
	db := migrated(t)
	started := filepath.Join(t.TempDir(), "started")
	cfg := testConfig(t, "/bin/sh", "-c", "touch "+started+"; exec sleep 60")
	cfg.Lease = 3 * time.Minute // a kill at the next renewal would take 60 s
	cfg.Settle = 2 * time.Second
	n := newNode(t, db, "node-a", cfg, true)
	api, err := NewAPI(APIOptions{Conn: db.Conn, Database: db.Name, Node: "node-a", Manager: n.Manager})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	id, _, err := n.Schedule(ctx, incident("iris", time.Now().Add(-time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 20*time.Second, "the command to start", func() bool { _, err := os.Stat(started); return err == nil })
	if _, err := api.Retry(ctx, id); !errors.Is(err, ErrRefused) {
		t.Errorf("retry of a running job: %v, want ErrRefused", err)
	}
	t0 := time.Now()
	j, err := api.Cancel(ctx, id, "ops")
	if err != nil || j.State != StateCancelled || j.Error == nil || *j.Error != "cancelled by ops" {
		t.Fatalf("Cancel = %+v, %v", j, err)
	}
	testenv.Eventually(t, 30*time.Second, "the attempt to stop", n.idle)
	if took := time.Since(t0); took > 20*time.Second {
		t.Errorf("the attempt stopped %s after the cancel", took)
	}
	got, err := api.Job(ctx, id)
	if err != nil || got.State != StateCancelled || len(got.Attempts) != 1 || got.Attempts[0].Node != "node-a" ||
		got.Attempts[0].ExitCode == nil || *got.Attempts[0].ExitCode != -1 || got.Attempts[0].Error == nil {
		t.Errorf("after the cancel: %+v %v", got, err)
	}
	if _, err := api.Cancel(ctx, id, "ops"); !errors.Is(err, ErrRefused) {
		t.Errorf("second cancel: %v, want ErrRefused", err)
	}
}

// TestJobJSONMatchesTheContract: the examples of docs/admin-api.md (the
// droverctl fixtures) decode into JobJSON without an unknown field and
// encode back to the same JSON: same names, same nulls, no field missing.
func TestJobJSONMatchesTheContract(t *testing.T) {
	for _, name := range []string{"job", "job-retry", "job-cancel", "jobs"} {
		raw, err := os.ReadFile(filepath.Join("..", "cmd", "droverctl", "testdata", "api", name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		var v any = &JobJSON{}
		if name == "jobs" {
			v = &[]JobJSON{}
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		back, _ := json.Marshal(v)
		var want, got any
		json.Unmarshal(raw, &want)
		json.Unmarshal(back, &got)
		if !reflect.DeepEqual(want, got) {
			t.Errorf("%s: encoded\n%s\nwant\n%s", name, back, raw)
		}
	}
}
