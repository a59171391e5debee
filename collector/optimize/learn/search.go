package learn

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"sort"
	"strings"
	"sync"
	"time"
)

// ErrTimeBudget is returned (wrapped) by Search when the grid cannot be
// scored within SearchOptions.TimeBudget. Permanent: the same grid on the
// same data will not fit either.
var ErrTimeBudget = errors.New("grid beyond the time budget")

// Candidate is one point of a search: a family and its hyper-parameters.
type Candidate struct {
	Family Family
	Params Params
}

// SearchOptions configure Search.
type SearchOptions struct {
	// Folds is k of the k-fold cross-validation (stratified for
	// classification); 0 means DefaultFolds.
	Folds int
	// Metric scores every fold; "" means DefaultMetric(d.Task).
	Metric string
	// Procs is the most fits that run at once; ≤ 0 means 1.
	Procs int
	// Seed makes the folds and every fit deterministic: the result is the
	// same for a seed whatever Procs is.
	Seed int64
	// TimeBudget, when > 0, is the most wall time the search may take. The
	// search fails with ErrTimeBudget as soon as its estimate (from the
	// fits done so far) exceeds it, or when it runs out.
	TimeBudget time.Duration
}

// DefaultFolds is the k of a search whose options name none.
const DefaultFolds = 5

// CandidateResult is the cross-validated score of one candidate.
type CandidateResult struct {
	Candidate
	// Scores holds the metric on each fold; Mean and Std (population
	// standard deviation, as GridSearchCV's std_test_score) summarise them.
	Scores    []float64
	Mean, Std float64
	// Err is why the candidate could not be scored (a fit or its
	// predictions failed); Mean and Std are NaN then.
	Err error
}

// SearchResult is the outcome of Search.
type SearchResult struct {
	Metric        string
	LowerIsBetter bool
	Folds         int
	// Results are in the order of the candidates given.
	Results []CandidateResult
	// Best indexes Results: the best mean score in the metric's
	// direction, the earliest candidate on ties.
	Best int
}

// Search cross-validates every candidate on d with k folds and returns the
// score of each and the best. Fits of (candidate, fold) pairs run on up to
// opts.Procs goroutines; each gets a seed derived from opts.Seed, the
// candidate's family and params and the fold, so the result does not
// depend on Procs or scheduling. A candidate whose fit fails is reported
// with its error and the search goes on; if every candidate fails, Search
// fails. When ctx is cancelled Search returns ctx's error promptly (after
// the running fits notice); when the time budget is exceeded it returns an
// error wrapping ErrTimeBudget. No goroutine outlives the call.
func Search(ctx context.Context, d *Dataset, cands []Candidate, opts SearchOptions) (*SearchResult, error) {
	if len(cands) == 0 {
		return nil, errors.New("search: no candidates")
	}
	k := opts.Folds
	if k == 0 {
		k = DefaultFolds
	}
	metric := opts.Metric
	if metric == "" {
		metric = DefaultMetric(d.Task)
	}
	if err := CheckMetric(metric, d.Task); err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	for i, c := range cands {
		if c.Family == nil {
			return nil, fmt.Errorf("search: candidate %d has no family", i)
		}
		if !c.Family.Supports(d.Task) {
			return nil, fmt.Errorf("search: family %s cannot learn %s", c.Family.Name(), d.Task)
		}
	}
	folds, err := Folds(d, k, opts.Seed)
	if err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	procs := max(opts.Procs, 1)

	type task struct{ cand, fold int }
	tasks := make([]task, 0, len(cands)*k)
	for c := range cands {
		for f := range k {
			tasks = append(tasks, task{c, f})
		}
	}
	scores := make([][]float64, len(cands))
	errs := make([]error, len(cands))
	for c := range scores {
		scores[c] = make([]float64, k)
	}

	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	start := time.Now()
	if opts.TimeBudget > 0 {
		var stop context.CancelFunc
		runCtx, stop = context.WithDeadlineCause(runCtx, start.Add(opts.TimeBudget),
			fmt.Errorf("%w: %d fits (%d candidates × %d folds) not done within %s", ErrTimeBudget, len(tasks), len(cands), k, opts.TimeBudget))
		defer stop()
	}

	next := make(chan int)
	var (
		mu   sync.Mutex
		done int
		wg   sync.WaitGroup
	)
	for range min(procs, len(tasks)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ti := range next {
				if runCtx.Err() != nil {
					// The feed's select may still hand out a task after the
					// cancel: no fit starts then.
					continue
				}
				t := tasks[ti]
				score, err := fitAndScore(runCtx, d, cands[t.cand], folds[t.fold], metric, fitSeed(opts.Seed, cands[t.cand], t.fold))
				if runCtx.Err() != nil {
					continue // cancelled: the error comes from the context
				}
				mu.Lock()
				if err != nil {
					if errs[t.cand] == nil {
						errs[t.cand] = fmt.Errorf("fold %d: %w", t.fold, err)
					}
				} else {
					scores[t.cand][t.fold] = score
				}
				done++
				if opts.TimeBudget > 0 && done >= min(procs, len(tasks)) && done < len(tasks) {
					elapsed := time.Since(start)
					estimate := time.Duration(float64(elapsed) * float64(len(tasks)) / float64(done))
					if estimate > opts.TimeBudget {
						cancel(fmt.Errorf("%w: %d of %d fits took %s, so the grid would take about %s, more than %s",
							ErrTimeBudget, done, len(tasks), elapsed.Round(time.Millisecond), estimate.Round(time.Millisecond), opts.TimeBudget))
					}
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for ti := range tasks {
		if runCtx.Err() != nil {
			break
		}
		select {
		case next <- ti:
		case <-runCtx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	if runCtx.Err() != nil {
		return nil, fmt.Errorf("search: %w", context.Cause(runCtx))
	}

	res := &SearchResult{Metric: metric, LowerIsBetter: LowerIsBetter(metric), Folds: k, Results: make([]CandidateResult, len(cands)), Best: -1}
	for c, cand := range cands {
		r := CandidateResult{Candidate: cand, Err: errs[c], Mean: math.NaN(), Std: math.NaN()}
		if r.Err == nil {
			r.Scores = scores[c]
			r.Mean, r.Std = meanStd(r.Scores)
			if res.Best < 0 || Better(metric, r.Mean, res.Results[res.Best].Mean) {
				res.Best = c
			}
		}
		res.Results[c] = r
	}
	if res.Best < 0 {
		return nil, fmt.Errorf("search: every candidate failed; the first: %s %s: %w", cands[0].Family.Name(), cands[0].Params, errs[0])
	}
	return res, nil
}

// fitAndScore trains cand on the fold's training rows and scores it on its
// test rows.
func fitAndScore(ctx context.Context, d *Dataset, cand Candidate, f Fold, metric string, seed int64) (float64, error) {
	train, test := d.Subset(f.Train), d.Subset(f.Test)
	m, err := cand.Family.Fit(ctx, train, cand.Params, seed)
	if err != nil {
		return 0, err
	}
	preds := PredictAll(m, test)
	s, err := Score(metric, test, preds)
	if err != nil {
		return 0, err
	}
	if math.IsNaN(s) {
		return 0, errors.New("the score is NaN")
	}
	return s, nil
}

// PredictAll returns m's prediction for every row of d (see Model.Predict).
func PredictAll(m Model, d *Dataset) [][]float64 {
	width := 1
	if d.Task == Classification {
		width = d.Classes
	}
	n := d.Rows()
	flat := make([]float64, n*width)
	out := make([][]float64, n)
	for i := range n {
		out[i] = flat[i*width : (i+1)*width : (i+1)*width]
		m.Predict(d.X.RawRowView(i), out[i])
	}
	return out
}

// fitSeed derives the seed of one fit from the search's seed, the
// candidate (family and params, so reordering candidates changes nothing)
// and the fold.
func fitSeed(seed int64, c Candidate, fold int) int64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d|%s|%s|%d", seed, c.Family.Name(), c.Params, fold)
	return int64(h.Sum64() >> 1)
}

func meanStd(s []float64) (mean, std float64) {
	for _, v := range s {
		mean += v
	}
	mean /= float64(len(s))
	for _, v := range s {
		std += (v - mean) * (v - mean)
	}
	return mean, math.Sqrt(std / float64(len(s)))
}

// Points returns the points of g: the cartesian product of its values,
// parameters in name order, the last name varying fastest and each
// parameter's values in the order given. An empty grid has one point, the
// empty Params (every parameter at its default).
func Points(g Grid) []Params {
	names := make([]string, 0, len(g))
	for n := range g {
		names = append(names, n)
	}
	sort.Strings(names)
	points := []Params{{}}
	for _, n := range names {
		var grown []Params
		for _, p := range points {
			for _, v := range g[n] {
				q := make(Params, len(p)+1)
				for k, x := range p {
					q[k] = x
				}
				q[n] = v
				grown = append(grown, q)
			}
		}
		points = grown
	}
	return points
}

// CheckGrid refuses a grid f cannot search for task t: a parameter f does
// not accept, a parameter without values, a non-finite value.
func CheckGrid(f Family, t Task, g Grid) error {
	known := f.Params(t)
	for name, vals := range g {
		if _, ok := known[name]; !ok {
			accepted := make([]string, 0, len(known))
			for k := range known {
				accepted = append(accepted, k)
			}
			sort.Strings(accepted)
			if len(accepted) == 0 {
				return fmt.Errorf("family %s: unknown parameter %q (it takes none)", f.Name(), name)
			}
			return fmt.Errorf("family %s: unknown parameter %q (it takes %s)", f.Name(), name, strings.Join(accepted, ", "))
		}
		if len(vals) == 0 {
			return fmt.Errorf("family %s: parameter %s has no values", f.Name(), name)
		}
		for _, v := range vals {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("family %s: parameter %s has the non-finite value %v", f.Name(), name, v)
			}
		}
	}
	return nil
}

// Candidates returns the candidates of the family named name on grid g
// (its DefaultGrid when g is nil) for task t: an unknown family, one that
// cannot learn t, or a grid CheckGrid refuses is a clear error.
func Candidates(name string, t Task, g Grid) ([]Candidate, error) {
	f, ok := Lookup(name)
	if !ok {
		return nil, fmt.Errorf("unknown model family %q (known: %s)", name, strings.Join(FamilyNames(), ", "))
	}
	if !f.Supports(t) {
		return nil, fmt.Errorf("family %s cannot learn %s", name, t)
	}
	if g == nil {
		g = f.DefaultGrid(t)
	}
	if err := CheckGrid(f, t, g); err != nil {
		return nil, err
	}
	pts := Points(g)
	cands := make([]Candidate, len(pts))
	for i, p := range pts {
		cands[i] = Candidate{Family: f, Params: p}
	}
	return cands, nil
}

// WithDefaults returns p completed with f's defaults for task t (p's own
// values win). Families call it at the start of Fit.
func WithDefaults(f Family, t Task, p Params) Params {
	out := Params{}
	for k, v := range f.Params(t) {
		out[k] = v
	}
	for k, v := range p {
		out[k] = v
	}
	return out
}

// LogSpace returns n values from 10^lo to 10^hi, evenly spaced in log10
// (numpy's logspace): LogSpace(-3, 3, 7) is 0.001, 0.01, ..., 1000.
func LogSpace(lo, hi float64, n int) []float64 {
	out := make([]float64, n)
	for i := range n {
		e := lo
		if n > 1 {
			e = lo + (hi-lo)*float64(i)/float64(n-1)
		}
		if e == math.Trunc(e) {
			out[i] = math.Pow10(int(e))
		} else {
			out[i] = math.Pow(10, e)
		}
	}
	return out
}
