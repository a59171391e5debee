package drift

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/drover-ml/drover/collector/labels"
	"github.com/drover-ml/drover/collector/store"
)

// offlineMacro computes accuracy and macro F1 (scikit-learn's
// f1_score(average="macro") over the classes present as a label or a
// prediction) from {label, prediction} pairs.
func offlineMacro(pairs [][2]int) (acc, f1 float64) {
	classes := map[int]bool{}
	correct := 0
	for _, p := range pairs {
		classes[p[0]], classes[p[1]] = true, true
		if p[0] == p[1] {
			correct++
		}
	}
	for c := range classes {
		var tp, fp, fn float64
		for _, p := range pairs {
			switch {
			case p[0] == c && p[1] == c:
				tp++
			case p[1] == c:
				fp++
			case p[0] == c:
				fn++
			}
		}
		if tp > 0 {
			prec, rec := tp/(tp+fp), tp/(tp+fn)
			f1 += 2 * prec * rec / (prec + rec)
		}
	}
	return float64(correct) / float64(len(pairs)), f1 / float64(len(classes))
}

// TestCheckMetricFromFleetLabels: the labels table joined with the
// version's samples is authoritative for the metric signal of source
// labels: its accuracy and F1 (equal to an offline computation on the
// inserted rows) and its count replace what the agents reported.
func TestCheckMetricFromFleetLabels(t *testing.T) {
	db := migrated(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Minute)
	b, _ := driftScenario(now).generate()
	insert(t, db, b, "gen")
	c := NewChecker(db.Conn, db.Name, "node-a", nil)
	p := DefaultPolicy()
	p.MetricDegradation = map[string]float64{"accuracy": 0.05, "f1": 0.05}
	r, err := c.Check(ctx, "iris", "3", p, now)
	if err != nil {
		t.Fatal(err)
	}
	if s := signalNamed(r, "f1/labels"); s == nil || math.Abs(s.Current-0.8) > 1e-9 || math.Abs(s.Reference-0.9) > 1e-9 {
		t.Fatalf("before any fleet label: f1/labels %+v, want the agents' 0.8 against 0.9", s)
	}

	// Samples from three hosts in each window; labels posted to the
	// collector (any host's request): right 90% of the time in the
	// reference window, 60% in the current one.
	rng := rand.New(rand.NewPCG(3, 14))
	var samples []store.SampleRow
	var ls []labels.Label
	pairs := map[string][][2]int{}
	for w, win := range map[string]Window{"ref": r.ReferenceWindow, "cur": r.Window} {
		right := map[string]int{"ref": 90, "cur": 60}[w]
		for i := range 150 {
			pred := rng.IntN(3)
			label := pred
			if rng.IntN(100) >= right {
				label = (pred + 1 + rng.IntN(2)) % 3
			}
			id := fmt.Sprintf("%s-%d", w, i)
			out, _ := json.Marshal(map[string]any{"outputs": []map[string]any{
				{"name": "label", "datatype": "INT64", "shape": []int{1}, "data": []int{pred}}}})
			samples = append(samples, store.SampleRow{Time: win.Start.Add(time.Duration(i) * 10 * time.Second), Model: "iris",
				ModelVersion: "3", Host: fmt.Sprintf("host-%d", i%3), RequestID: id, Outputs: string(out)})
			ls = append(ls, labels.Label{Time: now, Model: "iris", RequestID: id, Label: fmt.Sprint(label), Source: labels.SourceCollector})
			pairs[w] = append(pairs[w], [2]int{label, pred})
		}
	}
	insert(t, db, &store.Batch{Samples: samples}, "samples")
	if err := labels.NewStore(db.Conn, db.Name).Insert(ctx, ls); err != nil {
		t.Fatal(err)
	}

	r, err = c.Check(ctx, "iris", "3", p, now)
	if err != nil {
		t.Fatal(err)
	}
	refAcc, refF1 := offlineMacro(pairs["ref"])
	curAcc, curF1 := offlineMacro(pairs["cur"])
	for name, want := range map[string][2]float64{"f1/labels": {refF1, curF1}, "accuracy/labels": {refAcc, curAcc}} {
		s := signalNamed(r, name)
		if s == nil {
			t.Errorf("%s: no signal", name)
			continue
		}
		if math.Abs(s.Reference-want[0]) > 1e-12 || math.Abs(s.Current-want[1]) > 1e-12 || s.Samples != 150 {
			t.Errorf("%s: reference %v current %v over %d labels, want %v %v over 150 (offline)", name, s.Reference, s.Current, s.Samples, want[0], want[1])
		}
		if !s.Drifted || math.Abs(s.Value-(want[0]-want[1])) > 1e-12 {
			t.Errorf("%s: value %v drifted %v, want the drop %v, drifted", name, s.Value, s.Drifted, want[0]-want[1])
		}
	}
}

func signalNamed(r Result, name string) *Signal {
	for i := range r.Signals {
		if r.Signals[i].Name == name {
			return &r.Signals[i]
		}
	}
	return nil
}
