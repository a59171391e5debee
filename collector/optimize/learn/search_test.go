package learn

import (
	"context"
	"errors"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"gonum.org/v1/gonum/mat"
)

// noisyPrior is a test family: it predicts the training rows' class
// shares plus noise drawn from its seed and its "noise" parameter, so a
// search's scores depend on every fit's seed. Its fit takes "seconds"
// of (fake) time and honours ctx; block makes it wait for ctx.
type noisyPrior struct {
	fits  atomic.Int32
	block bool
	start chan struct{}
}

func (*noisyPrior) Name() string          { return "noisy_prior" }
func (*noisyPrior) Supports(t Task) bool  { return t == Classification }
func (*noisyPrior) Params(Task) Params    { return Params{"noise": 0.1, "seconds": 0} }
func (*noisyPrior) DefaultGrid(Task) Grid { return Grid{"noise": {0.1, 0.2}} }
func (f *noisyPrior) Fit(ctx context.Context, d *Dataset, p Params, seed int64) (Model, error) {
	f.fits.Add(1)
	if f.start != nil {
		select {
		case f.start <- struct{}{}:
		default:
		}
	}
	p = WithDefaults(f, d.Task, p)
	if f.block {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if s := p["seconds"]; s > 0 {
		select {
		case <-time.After(time.Duration(s * float64(time.Second))):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 1))
	m := &priorModel{p: make([]float64, d.Classes)}
	for _, y := range d.Y {
		m.p[int(y)] += 1 / float64(d.Rows())
	}
	m.w = make([]float64, d.Classes)
	for c := range m.w {
		m.w[c] = rng.NormFloat64() * p["noise"]
	}
	return m, nil
}

type priorModel struct{ p, w []float64 }

func (m *priorModel) Predict(x, out []float64) {
	for c := range out {
		out[c] = m.p[c] + m.w[c]*x[0]
	}
}

func blobs(n int) *Dataset {
	rng := rand.New(rand.NewPCG(3, 4))
	x := mat.NewDense(n, 1, nil)
	y := make([]float64, n)
	for i := range n {
		y[i] = float64(i % 3)
		x.Set(i, 0, y[i]+rng.NormFloat64())
	}
	return &Dataset{X: x, Y: y, Task: Classification, Classes: 3}
}

func TestSearchDeterministicAcrossProcs(t *testing.T) {
	d := blobs(90)
	f := &noisyPrior{}
	cands := []Candidate{{f, Params{"noise": 0.5}}, {f, Params{"noise": 2}}, {f, Params{"noise": 5}}}
	run := func(procs int) *SearchResult {
		r, err := Search(context.Background(), d, cands, SearchOptions{Folds: 3, Metric: MetricAccuracy, Procs: procs, Seed: 11})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	one, four := run(1), run(4)
	for i := range one.Results {
		if !reflect.DeepEqual(one.Results[i].Scores, four.Results[i].Scores) {
			t.Fatalf("candidate %d: scores %v with 1 proc, %v with 4", i, one.Results[i].Scores, four.Results[i].Scores)
		}
	}
	if one.Best != four.Best || one.Folds != 3 || one.Metric != "accuracy" {
		t.Fatalf("best %d vs %d, folds %d, metric %s", one.Best, four.Best, one.Folds, one.Metric)
	}
	// The scores vary between candidates and folds (the seeds matter),
	// and the best is the highest mean.
	if one.Results[0].Scores[0] == one.Results[1].Scores[0] && one.Results[1].Scores[0] == one.Results[2].Scores[0] {
		t.Fatalf("scores do not depend on the seed: %+v", one.Results)
	}
	for i, r := range one.Results {
		if r.Mean > one.Results[one.Best].Mean {
			t.Fatalf("candidate %d has mean %v above the best's %v", i, r.Mean, one.Results[one.Best].Mean)
		}
	}
	other, err := Search(context.Background(), d, cands, SearchOptions{Folds: 3, Procs: 2, Seed: 12})
	if err != nil {
		t.Fatal(err)
	}
	if reflect.DeepEqual(other.Results[0].Scores, one.Results[0].Scores) {
		t.Fatal("another seed gave the same scores")
	}
	if got := f.fits.Load(); got != 3*9 {
		t.Fatalf("%d fits, want 27", got)
	}
}

func TestSearchCancel(t *testing.T) {
	f := &noisyPrior{block: true, start: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := Search(ctx, blobs(30), []Candidate{{f, nil}, {f, Params{"noise": 1}}}, SearchOptions{Folds: 3, Procs: 2})
		done <- err
	}()
	<-f.start
	cancel()
	err := <-done
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if n := f.fits.Load(); n > 2 {
		t.Fatalf("%d fits started after the cancel", n)
	}
}

func TestSearchTimeBudget(t *testing.T) {
	t.Run("estimate beyond budget fails early", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := &noisyPrior{}
			var cands []Candidate
			for i := range 10 {
				cands = append(cands, Candidate{f, Params{"noise": float64(i), "seconds": 1}})
			}
			start := time.Now()
			_, err := Search(context.Background(), blobs(30), cands, SearchOptions{Folds: 3, Procs: 2, TimeBudget: 10 * time.Second})
			if !errors.Is(err, ErrTimeBudget) || !strings.Contains(err.Error(), "grid beyond the time budget") {
				t.Fatalf("err = %v, want ErrTimeBudget", err)
			}
			if el := time.Since(start); el > 2*time.Second {
				t.Fatalf("failed after %s; the estimate after the first fits should stop it", el)
			}
		})
	})
	t.Run("budget runs out", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := &noisyPrior{block: true}
			_, err := Search(context.Background(), blobs(30), []Candidate{{f, nil}}, SearchOptions{Folds: 3, TimeBudget: time.Minute})
			if !errors.Is(err, ErrTimeBudget) || !strings.Contains(err.Error(), "not done within 1m0s") {
				t.Fatalf("err = %v, want ErrTimeBudget", err)
			}
		})
	})
	t.Run("within budget", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := &noisyPrior{}
			cands := []Candidate{{f, Params{"seconds": 1}}, {f, Params{"seconds": 1, "noise": 1}}}
			r, err := Search(context.Background(), blobs(30), cands, SearchOptions{Folds: 3, Procs: 2, TimeBudget: 10 * time.Second})
			if err != nil || len(r.Results) != 2 {
				t.Fatalf("err = %v", err)
			}
		})
	})
}

func TestSearchRefuses(t *testing.T) {
	f := &noisyPrior{}
	d := blobs(30)
	cases := map[string]struct {
		cands []Candidate
		opts  SearchOptions
		want  string
	}{
		"no candidates":  {nil, SearchOptions{}, "no candidates"},
		"wrong metric":   {[]Candidate{{f, nil}}, SearchOptions{Metric: "mse"}, `metric "mse" scores regression`},
		"too many folds": {[]Candidate{{f, nil}}, SearchOptions{Folds: 11}, "11 stratified folds need at least 11 rows of every class; class 0 has 10"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Search(context.Background(), d, tc.cands, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestPointsAndGrid(t *testing.T) {
	pts := Points(Grid{"b": {1, 2}, "a": {10, 20}})
	want := []Params{{"a": 10, "b": 1}, {"a": 10, "b": 2}, {"a": 20, "b": 1}, {"a": 20, "b": 2}}
	if !reflect.DeepEqual(pts, want) {
		t.Fatalf("points %v, want %v", pts, want)
	}
	if got := Points(Grid{}); len(got) != 1 || len(got[0]) != 0 {
		t.Fatalf("empty grid: %v", got)
	}
	f := &noisyPrior{}
	for grid, want := range map[string]Grid{
		`unknown parameter "depth" (it takes noise, seconds)`: {"depth": {1}},
		"non-finite value NaN":                                {"noise": {0.1, nan()}},
		"has no values":                                       {"noise": {}},
	} {
		if err := CheckGrid(f, Classification, want); err == nil || !strings.Contains(err.Error(), grid) {
			t.Errorf("CheckGrid(%v) = %v, want %q", want, err, grid)
		}
	}
	if got := LogSpace(-3, 3, 7); !reflect.DeepEqual(got, []float64{0.001, 0.01, 0.1, 1, 10, 100, 1000}) {
		t.Fatalf("LogSpace = %v", got)
	}
	if got := (Params{"max_iter": 100, "C": 0.1}).String(); got != "C=0.1 max_iter=100" {
		t.Fatalf("Params.String = %q", got)
	}
}

func nan() float64 { var z float64; return z / z }
