package evaluate

import (
	"cmp"
	"slices"
	"sync"
	"time"
)

// Defaults for EvaluatorOptions.
const (
	DefaultWindow     = time.Hour
	DefaultBuckets    = 60
	DefaultMaxScores  = 10_000
	DefaultMaxClasses = 1_000
)

// EvaluatorOptions configure an Evaluator. Zero or negative values take the
// defaults.
type EvaluatorOptions struct {
	// Window is how far back metrics look (default 1h).
	Window time.Duration
	// Buckets is the number of time buckets the window is made of (default
	// 60); see Evaluator.
	Buckets int
	// MaxScores bounds, per (model, version), the probability rows kept for
	// ROC AUC (default 10k): the most recent ones within the window. They
	// take MaxScores × (8 × classes + 16) bytes.
	MaxScores int
	// MaxClasses bounds the distinct classes (labels and predictions) per
	// (model, version) (default 1000); rows that would add more are dropped.
	MaxClasses int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Evaluator keeps windowed metrics per (model, version) from labeled
// predictions. It is safe for concurrent use: Add holds a lock per
// (model, version) for O(1) work; Metrics and Each copy the sums under that
// lock and compute outside it.
//
// Rows are counted at the time they are added (when the label arrives), in
// buckets of Window/Buckets; a bucket leaves the window whole, so a row
// counts for between Window - Window/Buckets and Window. Confusion counts,
// log loss and regression sums are exact over the window; ROC AUC is exact
// over the most recent MaxScores rows with probabilities in it.
//
// Each (model, version) holds, until Forget: per bucket one confusion count
// per distinct (label, prediction) pair; its classes (at most MaxClasses);
// and the AUC rows (see MaxScores).
type Evaluator struct {
	width      time.Duration
	buckets    int
	maxScores  int
	maxClasses int
	now        func() time.Time

	mu     sync.RWMutex
	series map[key]*lockedSeries
}

type key struct{ model, version string }

type lockedSeries struct {
	mu sync.Mutex
	s  *series
}

// NewEvaluator returns an Evaluator with no data.
func NewEvaluator(opts EvaluatorOptions) *Evaluator {
	if opts.Window <= 0 {
		opts.Window = DefaultWindow
	}
	if opts.Buckets <= 0 {
		opts.Buckets = DefaultBuckets
	}
	if opts.MaxScores <= 0 {
		opts.MaxScores = DefaultMaxScores
	}
	if opts.MaxClasses <= 0 {
		opts.MaxClasses = DefaultMaxClasses
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Evaluator{
		width:      max(opts.Window/time.Duration(opts.Buckets), 1),
		buckets:    opts.Buckets,
		maxScores:  opts.MaxScores,
		maxClasses: opts.MaxClasses,
		now:        opts.Now,
		series:     make(map[key]*lockedSeries),
	}
}

func (e *Evaluator) epoch() int64 {
	return floorDiv(e.now().UnixNano(), int64(e.width))
}

// Add records one labeled prediction of model's version: for classification
// the true class label (and pred's class, or the argmax of pred.Probs over
// classes when it has none; probabilities count for log loss and AUC when
// they align with classes and the label is among them), for regression the
// true value. The first Add of a (model, version) fixes its task; rows of
// another task, empty labels, non-finite values and rows that would exceed
// MaxClasses are dropped. pred.Probs is copied, not kept.
func (e *Evaluator) Add(model, version, task string, pred Prediction, classes []string, label string, value float64) {
	k := key{model, version}
	e.mu.RLock()
	ls := e.series[k]
	e.mu.RUnlock()
	if ls == nil {
		e.mu.Lock()
		if ls = e.series[k]; ls == nil {
			ls = &lockedSeries{s: newSeries(task, e.buckets, e.maxScores, e.maxClasses)}
			e.series[k] = ls
		}
		e.mu.Unlock()
	}
	ep := e.epoch()
	ls.mu.Lock()
	ls.s.add(ep, task, &pred, classes, label, value)
	ls.mu.Unlock()
}

// Metrics returns the metrics of model's version over the window; Count is 0
// (and Metrics empty) when it has no rows in it.
func (e *Evaluator) Metrics(model, version string) Result {
	e.mu.RLock()
	ls := e.series[key{model, version}]
	e.mu.RUnlock()
	if ls == nil {
		return Result{Metrics: map[string]float64{}}
	}
	return e.snapshot(ls).result()
}

func (e *Evaluator) snapshot(ls *lockedSeries) *snapshot {
	hi := e.epoch()
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.s.snapshot(hi-int64(e.buckets)+1, hi)
}

// Each calls fn for every metric of every (model, version) with rows in the
// window: class is "" for the overall metrics and names the class for
// per-class ones. Calls are ordered by model, version, class and metric, and
// made without any lock held (fn may call the Evaluator).
func (e *Evaluator) Each(fn func(model, version, metric, class string, value float64)) {
	e.mu.RLock()
	keys := make([]key, 0, len(e.series))
	all := make(map[key]*lockedSeries, len(e.series))
	for k, ls := range e.series {
		keys = append(keys, k)
		all[k] = ls
	}
	e.mu.RUnlock()
	slices.SortFunc(keys, func(a, b key) int {
		return cmp.Or(cmp.Compare(a.model, b.model), cmp.Compare(a.version, b.version))
	})
	for _, k := range keys {
		r := e.snapshot(all[k]).result()
		if r.Count == 0 {
			continue
		}
		for _, m := range sortedKeys(r.Metrics) {
			fn(k.model, k.version, m, "", r.Metrics[m])
		}
		for _, c := range sortedKeys(r.PerClass) {
			pc := r.PerClass[c]
			for _, m := range sortedKeys(pc) {
				fn(k.model, k.version, m, c, pc[m])
			}
		}
	}
}

// Forget drops everything recorded for model's version (call it when the
// version is unloaded). Safe to call for a version never seen.
func (e *Evaluator) Forget(model, version string) {
	e.mu.Lock()
	delete(e.series, key{model, version})
	e.mu.Unlock()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
