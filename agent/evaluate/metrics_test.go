package evaluate

import (
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/drover-ml/drover/shared/manifest"
)

const (
	cls = manifest.TaskClassification
	reg = manifest.TaskRegression
)

// refRow is one labeled classification prediction for the reference.
type refRow struct {
	label, pred string
	probs       []float64 // aligned with the classes, or nil
}

// refClassification computes the metrics the straightforward way: counts by
// loops, F1 as 2PR/(P+R), AUC by comparing every positive with every
// negative (ties count one half).
func refClassification(rows []refRow, classes []string) Result {
	r := Result{Count: len(rows), Metrics: map[string]float64{}, PerClass: map[string]map[string]float64{}}
	present := map[string]bool{}
	correct := 0
	for _, row := range rows {
		present[row.label], present[row.pred] = true, true
		if row.label == row.pred {
			correct++
		}
	}
	r.Metrics["accuracy"] = float64(correct) / float64(len(rows))
	var sp, sr, sf float64
	for c := range present {
		tp, fp, fn := 0, 0, 0
		for _, row := range rows {
			switch {
			case row.pred == c && row.label == c:
				tp++
			case row.pred == c:
				fp++
			case row.label == c:
				fn++
			}
		}
		p, rc, f := 0.0, 0.0, 0.0
		if tp+fp > 0 {
			p = float64(tp) / float64(tp+fp)
		}
		if tp+fn > 0 {
			rc = float64(tp) / float64(tp+fn)
		}
		if p+rc > 0 {
			f = 2 * p * rc / (p + rc)
		}
		r.PerClass[c] = map[string]float64{"precision": p, "recall": rc, "f1": f}
		sp, sr, sf = sp+p, sr+rc, sf+f
	}
	n := float64(len(present))
	r.Metrics["precision"], r.Metrics["recall"], r.Metrics["f1"] = sp/n, sr/n, sf/n

	col := func(c string) int { return slices.Index(classes, c) }
	var scored []refRow
	ll := 0.0
	for _, row := range rows {
		if row.probs == nil || col(row.label) < 0 {
			continue
		}
		scored = append(scored, row)
		p := math.Min(math.Max(row.probs[col(row.label)], 1e-15), 1-1e-15)
		ll += -math.Log(p)
	}
	if len(scored) == 0 {
		return r
	}
	r.Metrics["log_loss"] = ll / float64(len(scored))
	pairAUC := func(k int) (float64, bool) {
		var pos, neg []float64
		for _, row := range scored {
			if col(row.label) == k {
				pos = append(pos, row.probs[k])
			} else {
				neg = append(neg, row.probs[k])
			}
		}
		if len(pos) == 0 || len(neg) == 0 {
			return 0, false
		}
		u := 0.0
		for _, p := range pos {
			for _, q := range neg {
				switch {
				case p > q:
					u++
				case p == q:
					u += 0.5
				}
			}
		}
		return u / float64(len(pos)*len(neg)), true
	}
	if len(classes) == 2 {
		if a, ok := pairAUC(1); ok {
			r.Metrics["auc"] = a
		}
		return r
	}
	sum, m := 0.0, 0
	for k, c := range classes {
		if a, ok := pairAUC(k); ok {
			sum += a
			m++
			if r.PerClass[c] != nil {
				r.PerClass[c]["auc"] = a
			}
		}
	}
	if m > 0 {
		r.Metrics["auc"] = sum / float64(m)
	}
	return r
}

func refRegression(pred, y []float64) Result {
	n := float64(len(y))
	var sse, sae, mean, sst float64
	for i := range y {
		sse += (y[i] - pred[i]) * (y[i] - pred[i])
		sae += math.Abs(y[i] - pred[i])
		mean += y[i]
	}
	mean /= n
	for _, v := range y {
		sst += (v - mean) * (v - mean)
	}
	r := Result{Count: len(y), Metrics: map[string]float64{"mse": sse / n, "mae": sae / n}}
	if sst > 0 {
		r.Metrics["r2"] = 1 - sse/sst
	}
	return r
}

// compareResults fails unless got and want have the same count, the same
// metrics (and per-class metrics) and values within tol.
func compareResults(t *testing.T, got, want Result, tol float64) {
	t.Helper()
	if got.Count != want.Count {
		t.Errorf("Count = %d, want %d", got.Count, want.Count)
	}
	cmpMap := func(where string, g, w map[string]float64) {
		for k, wv := range w {
			gv, ok := g[k]
			if !ok {
				t.Errorf("%s%s missing, want %v", where, k, wv)
			} else if math.Abs(gv-wv) > tol {
				t.Errorf("%s%s = %.17g, want %.17g", where, k, gv, wv)
			}
		}
		for k, gv := range g {
			if _, ok := w[k]; !ok {
				t.Errorf("%s%s = %v, want none", where, k, gv)
			}
		}
	}
	cmpMap("", got.Metrics, want.Metrics)
	for c, w := range want.PerClass {
		cmpMap(fmt.Sprintf("class %q: ", c), got.PerClass[c], w)
	}
	for c := range got.PerClass {
		if want.PerClass[c] == nil {
			t.Errorf("unexpected class %q in PerClass", c)
		}
	}
}

func refArgmax(probs []float64, classes []string) string {
	best := 0
	for j, p := range probs {
		if p > probs[best] {
			best = j
		}
	}
	return classes[best]
}

// Thirty rows over classes a, b, c, with tied scores (within and across
// rows), a class (c) that is never predicted, a label (d) that is not among
// the probability columns, and some rows whose class Add takes from the
// argmax.
func TestClassificationMetrics(t *testing.T) {
	classes := []string{"a", "b", "c"}
	table := [][]float64{
		{0.6, 0.3, 0.1},
		{0.3, 0.6, 0.1},
		{0.45, 0.45, 0.1}, // tie: a
		{0.4, 0.35, 0.25},
		{0.3, 0.4, 0.3},
		{0.2, 0.5, 0.3},
		{0.5, 0.2, 0.3},
		{0.35, 0.35, 0.3}, // tie: a
		{0.1, 0.6, 0.3},
		{0.4, 0.3, 0.3},
	}
	labels := "abcabcaabbccabcacbbacbcaabcabd"
	clock := newClock()
	ev := NewEvaluator(EvaluatorOptions{Now: clock.Now})
	var rows []refRow
	for i := range 30 {
		probs := table[(i*7)%len(table)]
		pred := Prediction{Class: refArgmax(probs, classes), HasClass: i%4 != 0, Probs: slices.Clone(probs)}
		if !pred.HasClass {
			pred.Class = ""
		}
		label := labels[i : i+1]
		ev.Add("m", "1", cls, pred, classes, label, 0)
		rows = append(rows, refRow{label: label, pred: refArgmax(probs, classes), probs: probs})
		clock.Advance(time.Second)
	}
	want := refClassification(rows, classes)
	if _, ok := want.PerClass["c"]; !ok || want.Metrics["auc"] == 0 || want.Metrics["log_loss"] == 0 {
		t.Fatalf("test data does not exercise what it should: %+v", want)
	}
	if want.PerClass["c"]["precision"] != 0 {
		t.Fatalf("class c is predicted")
	}
	got := ev.Metrics("m", "1")
	compareResults(t, got, want, 1e-9)
	if got.Count != 30 {
		t.Errorf("Count = %d", got.Count)
	}
}

// A small binary case computed by hand.
func TestBinaryMetricsByHand(t *testing.T) {
	classes := []string{"neg", "pos"}
	ev := NewEvaluator(EvaluatorOptions{})
	for _, r := range []struct {
		label string
		probs []float64
	}{
		{"pos", []float64{0.2, 0.8}},
		{"pos", []float64{0.6, 0.4}},
		{"neg", []float64{0.6, 0.4}}, // tied with the row above
		{"neg", []float64{0.9, 0.1}},
	} {
		ev.Add("m", "1", cls, Prediction{Probs: r.probs}, classes, r.label, 0)
	}
	want := Result{
		Count: 4,
		Metrics: map[string]float64{
			"accuracy":  0.75,
			"precision": (1 + 2.0/3) / 2,
			"recall":    (0.5 + 1) / 2,
			"f1":        (2.0/3 + 0.8) / 2,
			"log_loss":  -(math.Log(0.8) + math.Log(0.4) + math.Log(0.6) + math.Log(0.9)) / 4,
			// positives 0.8, 0.4 against negatives 0.4, 0.1: 1 + 1 + ½ + 1 of 4
			"auc": 0.875,
		},
		PerClass: map[string]map[string]float64{
			"pos": {"precision": 1, "recall": 0.5, "f1": 2.0 / 3},
			"neg": {"precision": 2.0 / 3, "recall": 1, "f1": 0.8},
		},
	}
	compareResults(t, ev.Metrics("m", "1"), want, 1e-12)
}

func TestClassificationWithoutProbabilities(t *testing.T) {
	ev := NewEvaluator(EvaluatorOptions{})
	var rows []refRow
	for _, pair := range []string{"aa", "ab", "ba", "bb", "bb", "cb"} { // label, prediction
		ev.Add("m", "1", cls, Prediction{Class: pair[1:], HasClass: true}, nil, pair[:1], 0)
		rows = append(rows, refRow{label: pair[:1], pred: pair[1:]})
	}
	got := ev.Metrics("m", "1")
	compareResults(t, got, refClassification(rows, nil), 1e-12)
	if _, ok := got.Metrics["auc"]; ok {
		t.Error("auc without probabilities")
	}
}

func TestRegressionMetrics(t *testing.T) {
	y := []float64{3, -0.5, 2, 7, 4.25, 1, 0, 10, -3, 2.5}
	pred := []float64{2.5, 0, 2, 8, 4, 1.5, -1, 9, -2.5, 3}
	ev := NewEvaluator(EvaluatorOptions{})
	for i := range y {
		ev.Add("m", "1", reg, Prediction{Value: pred[i]}, nil, "", y[i])
	}
	compareResults(t, ev.Metrics("m", "1"), refRegression(pred, y), 1e-9)

	t.Run("constant labels have no r2", func(t *testing.T) {
		ev := NewEvaluator(EvaluatorOptions{})
		for _, p := range []float64{1, 2, 3} {
			ev.Add("m", "1", reg, Prediction{Value: p}, nil, "", 2)
		}
		want := Result{Count: 3, Metrics: map[string]float64{"mse": 2.0 / 3, "mae": 2.0 / 3}}
		compareResults(t, ev.Metrics("m", "1"), want, 1e-12)
	})
}

func TestWindow(t *testing.T) {
	clock := newClock() // on a 10s boundary
	ev := NewEvaluator(EvaluatorOptions{Window: time.Minute, Buckets: 6, Now: clock.Now})
	classes := []string{"0", "1"}
	ev.Add("m", "1", cls, Prediction{Class: "1", HasClass: true, Probs: []float64{0.2, 0.8}}, classes, "1", 0)
	ev.Add("m", "1", cls, Prediction{Class: "0", HasClass: true, Probs: []float64{0.7, 0.3}}, classes, "0", 0)
	clock.Advance(30 * time.Second)
	ev.Add("m", "1", cls, Prediction{Class: "1", HasClass: true, Probs: []float64{0.4, 0.6}}, classes, "0", 0)

	check := func(when string, count int, accuracy float64, hasAUC bool) {
		t.Helper()
		r := ev.Metrics("m", "1")
		if r.Count != count {
			t.Fatalf("%s: Count = %d, want %d", when, r.Count, count)
		}
		if count > 0 && math.Abs(r.Metrics["accuracy"]-accuracy) > 1e-12 {
			t.Errorf("%s: accuracy = %v, want %v", when, r.Metrics["accuracy"], accuracy)
		}
		if _, ok := r.Metrics["auc"]; ok != hasAUC {
			t.Errorf("%s: auc present = %v, want %v", when, ok, hasAUC)
		}
	}
	check("at 30s", 3, 2.0/3, true)
	clock.Advance(29 * time.Second)
	check("at 59s", 3, 2.0/3, true)
	clock.Advance(time.Second) // the first bucket leaves the window
	check("at 60s", 1, 0, false)
	clock.Advance(29 * time.Second)
	check("at 89s", 1, 0, false)
	clock.Advance(time.Second)
	check("at 90s", 0, 0, false)
	n := 0
	ev.Each(func(model, version, metric, class string, value float64) { n++ })
	if n != 0 {
		t.Errorf("Each reported %d values for an empty window", n)
	}
	// A reused bucket starts empty.
	ev.Add("m", "1", cls, Prediction{Class: "1", HasClass: true}, nil, "1", 0)
	check("after reuse", 1, 1, false)
}

// AUC uses the most recent MaxScores rows; counts cover the whole window.
func TestReservoirBound(t *testing.T) {
	ev := NewEvaluator(EvaluatorOptions{MaxScores: 4})
	classes := []string{"n", "p"}
	var all []refRow
	for i := range 10 {
		s := float64((i*37)%10) / 10
		label := []string{"n", "p"}[(i*3)%5%2]
		probs := []float64{1 - s, s}
		ev.Add("m", "1", cls, Prediction{Probs: probs}, classes, label, 0)
		all = append(all, refRow{label: label, pred: refArgmax(probs, classes), probs: probs})
	}
	got := ev.Metrics("m", "1")
	want := refClassification(all, classes)
	recent := refClassification(all[6:], classes)
	if math.Abs(got.Metrics["accuracy"]-want.Metrics["accuracy"]) > 1e-12 || math.Abs(got.Metrics["log_loss"]-want.Metrics["log_loss"]) > 1e-12 {
		t.Errorf("accuracy, log_loss = %v, %v; want %v, %v over all rows", got.Metrics["accuracy"], got.Metrics["log_loss"], want.Metrics["accuracy"], want.Metrics["log_loss"])
	}
	if math.Abs(got.Metrics["auc"]-recent.Metrics["auc"]) > 1e-12 {
		t.Errorf("auc = %v, want %v over the last 4 rows", got.Metrics["auc"], recent.Metrics["auc"])
	}
}

func TestEvaluatorDrops(t *testing.T) {
	ev := NewEvaluator(EvaluatorOptions{MaxClasses: 2})
	ev.Add("m", "1", cls, Prediction{Class: "a", HasClass: true}, nil, "a", 0)
	ev.Add("m", "1", cls, Prediction{Class: "a", HasClass: true}, nil, "b", 0)
	ev.Add("m", "1", cls, Prediction{Class: "a", HasClass: true}, nil, "c", 0) // a third class
	ev.Add("m", "1", cls, Prediction{Class: "a", HasClass: true}, nil, "", 0)  // no label
	ev.Add("m", "1", cls, Prediction{}, nil, "a", 0)                           // no class, no probs
	ev.Add("m", "1", reg, Prediction{Value: 1}, nil, "", 1)                    // another task
	if r := ev.Metrics("m", "1"); r.Count != 2 {
		t.Errorf("Count = %d, want 2", r.Count)
	}
	ev.Add("r", "1", reg, Prediction{Value: math.NaN()}, nil, "", 1)
	ev.Add("r", "1", reg, Prediction{Value: 1}, nil, "", math.Inf(1))
	ev.Add("x", "1", "ranking", Prediction{Class: "a", HasClass: true}, nil, "a", 0)
	for _, m := range []string{"r", "x"} {
		if r := ev.Metrics(m, "1"); r.Count != 0 || len(r.Metrics) != 0 {
			t.Errorf("%s: %+v, want nothing", m, r)
		}
	}
	// Probabilities whose classes change are not used; the counts are.
	ev.Add("p", "1", cls, Prediction{Probs: []float64{0.1, 0.9}}, []string{"x", "y"}, "y", 0)
	ev.Add("p", "1", cls, Prediction{Probs: []float64{0.1, 0.9}}, []string{"y", "x"}, "y", 0)
	r := ev.Metrics("p", "1")
	if r.Count != 2 || math.Abs(r.Metrics["log_loss"]+math.Log(0.9)) > 1e-12 {
		t.Errorf("Count %d log_loss %v, want 2 and -ln 0.9 from the first row", r.Count, r.Metrics["log_loss"])
	}
}

func TestEachAndForget(t *testing.T) {
	ev := NewEvaluator(EvaluatorOptions{})
	ev.Add("b", "2", reg, Prediction{Value: 1}, nil, "", 2)
	ev.Add("a", "1", cls, Prediction{Class: "x", HasClass: true}, nil, "x", 0)
	var got []string
	ev.Each(func(model, version, metric, class string, value float64) {
		got = append(got, fmt.Sprintf("%s/%s %s[%s]=%g", model, version, metric, class, value))
	})
	want := []string{
		"a/1 accuracy[]=1", "a/1 f1[]=1", "a/1 precision[]=1", "a/1 recall[]=1",
		"a/1 f1[x]=1", "a/1 precision[x]=1", "a/1 recall[x]=1",
		"b/2 mae[]=1", "b/2 mse[]=1",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Each:\n got %q\nwant %q", got, want)
	}
	ev.Forget("a", "1")
	ev.Forget("never", "1")
	if r := ev.Metrics("a", "1"); r.Count != 0 || r.Metrics == nil {
		t.Errorf("after Forget: %+v", r)
	}
}

func TestEvaluatorConcurrent(t *testing.T) {
	ev := NewEvaluator(EvaluatorOptions{MaxScores: 50})
	classes := []string{"0", "1"}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 500 {
				p := float64(i%10) / 10
				ev.Add("m", fmt.Sprint(g%2), cls, Prediction{Probs: []float64{1 - p, p}}, classes, fmt.Sprint(i%2), 0)
				ev.Add("r", "1", reg, Prediction{Value: p}, nil, "", 0.5)
			}
		})
	}
	wg.Go(func() {
		for range 50 {
			ev.Each(func(model, version, metric, class string, value float64) {})
			ev.Metrics("m", "0")
		}
	})
	wg.Wait()
	if c := ev.Metrics("m", "0").Count + ev.Metrics("m", "1").Count; c != 2000 {
		t.Errorf("Count = %d, want 2000", c)
	}
	if c := ev.Metrics("r", "1").Count; c != 2000 {
		t.Errorf("regression Count = %d, want 2000", c)
	}
}

func BenchmarkEvaluatorAdd(b *testing.B) {
	b.Run("classification with probabilities", func(b *testing.B) {
		ev := NewEvaluator(EvaluatorOptions{})
		classes := []string{"a", "b", "c"}
		pred := Prediction{Class: "b", HasClass: true, Probs: []float64{0.2, 0.5, 0.3}}
		for b.Loop() {
			ev.Add("m", "1", cls, pred, classes, "c", 0)
		}
	})
	b.Run("regression", func(b *testing.B) {
		ev := NewEvaluator(EvaluatorOptions{})
		for b.Loop() {
			ev.Add("m", "1", reg, Prediction{Value: 1.5}, nil, "", 2)
		}
	})
}

func BenchmarkEvaluatorMetrics(b *testing.B) {
	ev := NewEvaluator(EvaluatorOptions{})
	classes := []string{"a", "b", "c"}
	for i := range DefaultMaxScores {
		p := float64(i%100) / 200
		ev.Add("m", "1", cls, Prediction{Probs: []float64{p, 0.5, 0.5 - p}}, classes, classes[i%3], 0)
	}
	for b.Loop() {
		ev.Metrics("m", "1")
	}
}
