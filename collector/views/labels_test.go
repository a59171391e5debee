package views

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/drover-ml/drover/collector/labels"
	"github.com/drover-ml/drover/collector/store"
	"github.com/drover-ml/drover/shared/semconv"
	"github.com/drover-ml/drover/shared/testenv"
)

// TestVersionsMetricsFromFleetLabels: `droverctl versions` (GET
// /v1/models/{model}/versions) shows the accuracy and F1 of the labels
// table joined with the version's samples, equal to an offline
// computation, in place of the agents' own values.
func TestVersionsMetricsFromFleetLabels(t *testing.T) {
	db := testenv.ClickHouse(t)
	ctx := context.Background()
	if err := store.Migrate(ctx, db.Conn, store.MigrateOptions{Database: db.Name}); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	s := store.New(db.Conn, db.Name, db.Options)
	t.Cleanup(s.Close)
	now := time.Now().UTC().Truncate(time.Millisecond)
	at := now.Add(-10 * time.Minute)
	point := func(metric string, attrs map[string]string) store.Point {
		return store.Point{Time: at, StartTime: at.Add(-time.Minute), Service: semconv.ServiceNameAgent, Host: "web-1",
			Model: "fleet", ModelVersion: "1", Metric: metric, Attributes: attrs}
	}
	b := &store.Batch{Sums: []store.SumRow{{Point: point(semconv.MetricRequests, map[string]string{semconv.AttrStatus: "ok"}),
		Temporality: store.TemporalityDelta, IsMonotonic: true, Value: 100}}}
	// The agent's own value (labels it joined itself): replaced.
	for _, m := range []string{"accuracy", "f1"} {
		b.Gauges = append(b.Gauges, store.GaugeRow{Point: point(semconv.MetricEval,
			map[string]string{semconv.AttrMetric: m, semconv.AttrSource: "labels"}), Value: 0.5})
	}
	// 12 samples with classes 0..2 predicted; labels: 9 right.
	pairs := [][2]string{}
	var ls []labels.Label
	for i := range 12 {
		pred := fmt.Sprint(i % 3)
		label := pred
		if i%4 == 3 {
			label = fmt.Sprint((i + 1) % 3)
		}
		id := fmt.Sprintf("r%d", i)
		b.Samples = append(b.Samples, store.SampleRow{Time: at, Model: "fleet", ModelVersion: "1", Host: "web-1", RequestID: id,
			Outputs: `{"outputs":[{"name":"label","datatype":"BYTES","shape":[1],"data":["` + pred + `"]}]}`})
		ls = append(ls, labels.Label{Time: now.Add(-time.Minute), Model: "fleet", RequestID: id, Label: `"` + label + `"`, Source: labels.SourceAgent})
		pairs = append(pairs, [2]string{label, pred})
	}
	if err := s.Insert(ctx, b, "t"); err != nil {
		t.Fatal(err)
	}
	if err := labels.NewStore(db.Conn, db.Name).Insert(ctx, ls); err != nil {
		t.Fatal(err)
	}

	// Offline: accuracy and macro F1 over the classes present.
	conf := map[[2]string]int{}
	correct := 0
	for _, p := range pairs {
		conf[p]++
		if p[0] == p[1] {
			correct++
		}
	}
	var f1 float64
	for _, c := range []string{"0", "1", "2"} {
		var tp, fp, fn float64
		for k, n := range conf {
			switch {
			case k[0] == c && k[1] == c:
				tp += float64(n)
			case k[1] == c:
				fp += float64(n)
			case k[0] == c:
				fn += float64(n)
			}
		}
		f1 += 2 * tp / (2*tp + fp + fn)
	}
	wantAcc, wantF1 := float64(correct)/float64(len(pairs)), f1/3

	v := New(db.Conn, db.Name, WithClock(func() time.Time { return now }))
	mux := http.NewServeMux()
	for p, h := range v.Routes() {
		mux.Handle(p, h)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	var got []Version
	body := okJSON(t, srv, "/v1/models/fleet/versions", &got)
	if len(got) != 1 {
		t.Fatalf("versions:\n%s", body)
	}
	m := got[0].Metrics
	if m.Accuracy == nil || m.F1 == nil || math.Abs(*m.Accuracy-wantAcc) > 1e-12 || math.Abs(*m.F1-wantF1) > 1e-12 {
		t.Errorf("accuracy %v f1 %v, want %v %v (offline, from the label join):\n%s", deref(m.Accuracy), deref(m.F1), wantAcc, wantF1, body)
	}
}
