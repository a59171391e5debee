package evaluate

import (
	"cmp"
	"math"
	"slices"

	"github.com/drover-ml/drover/shared/manifest"
)

// Result is the evaluation of one model version on some rows.
type Result struct {
	// Count is the number of labeled rows evaluated.
	Count int `json:"count"`
	// Metrics maps a metric name (see manifest.Metrics) to its value. A
	// metric that is undefined on these rows is absent. Never nil.
	Metrics map[string]float64 `json:"metrics"`
	// PerClass maps a class to its precision, recall and f1 (and its
	// one-vs-rest auc for multiclass models with probabilities), for the
	// classes that occur in the labels or the predictions. Nil for
	// regression.
	PerClass map[string]map[string]float64 `json:"per_class,omitempty"`
}

// Clipping of probabilities for log loss.
const probEps = 1e-15

// counts are the mergeable sums of one time bucket.
type counts struct {
	n int64
	// classification: confusion counts by label<<32 | predicted class
	// (indexes into series.classes), and log loss sums.
	conf  map[uint64]int64
	llSum float64
	llN   int64
	// regression: squared and absolute errors, and the labels' mean and
	// sum of squared deviations (Welford, merged with Chan's formula).
	sse, sae float64
	mean, m2 float64
}

func (c *counts) reset() { *c = counts{conf: c.conf}; clear(c.conf) }

func (c *counts) merge(o *counts) {
	if o.n == 0 {
		return
	}
	if c.conf == nil && o.conf != nil {
		c.conf = make(map[uint64]int64, len(o.conf))
	}
	for k, v := range o.conf {
		c.conf[k] += v
	}
	c.llSum += o.llSum
	c.llN += o.llN
	c.sse += o.sse
	c.sae += o.sae
	n := c.n + o.n
	d := o.mean - c.mean
	c.m2 += o.m2 + d*d*float64(c.n)*float64(o.n)/float64(n)
	c.mean += d * float64(o.n) / float64(n)
	c.n = n
}

// series accumulates one (model, version)'s labeled predictions in a ring
// of time buckets, plus a ring of the most recent probability rows for AUC.
// Not safe for concurrent use.
type series struct {
	task       string
	maxClasses int
	classes    []string // interned labels and predicted classes
	classIdx   map[string]uint32
	probCls    []string // the classes of the probability columns
	probIdx    map[string]int
	buckets    []bucket
	res        reservoir
}

type bucket struct {
	epoch int64
	valid bool
	counts
}

func newSeries(task string, buckets, maxScores, maxClasses int) *series {
	return &series{
		task:       task,
		maxClasses: maxClasses,
		classIdx:   make(map[string]uint32),
		buckets:    make([]bucket, buckets),
		res:        reservoir{max: maxScores},
	}
}

func (s *series) bucket(epoch int64) *counts {
	b := &s.buckets[int(floorMod(epoch, int64(len(s.buckets))))]
	if !b.valid || b.epoch != epoch {
		b.reset()
		b.epoch, b.valid = epoch, true
	}
	return &b.counts
}

func (s *series) intern(class string) (uint32, bool) {
	if i, ok := s.classIdx[class]; ok {
		return i, true
	}
	if len(s.classes) >= s.maxClasses {
		return 0, false
	}
	i := uint32(len(s.classes))
	s.classes = append(s.classes, class)
	s.classIdx[class] = i
	return i, true
}

// add records one labeled prediction at epoch; it reports whether the row
// was usable.
func (s *series) add(epoch int64, task string, pred *Prediction, classes []string, label string, value float64) bool {
	if task != s.task {
		return false
	}
	if task == manifest.TaskRegression {
		if !finite(pred.Value) || !finite(value) {
			return false
		}
		c := s.bucket(epoch)
		e := value - pred.Value
		c.n++
		c.sse += e * e
		c.sae += math.Abs(e)
		d := value - c.mean
		c.mean += d / float64(c.n)
		c.m2 += d * (value - c.mean)
		return true
	}
	if task != manifest.TaskClassification {
		return false
	}
	withProbs := len(pred.Probs) >= 2 && len(pred.Probs) == len(classes)
	predicted := pred.Class
	if !pred.HasClass {
		if !withProbs {
			return false
		}
		predicted = classes[argmax(pred.Probs)]
	}
	if label == "" {
		return false
	}
	li, ok1 := s.intern(label)
	pi, ok2 := s.intern(predicted)
	if !ok1 || !ok2 {
		return false
	}
	c := s.bucket(epoch)
	if c.conf == nil {
		c.conf = make(map[uint64]int64)
	}
	c.n++
	c.conf[uint64(li)<<32|uint64(pi)]++
	if !withProbs {
		return true
	}
	if s.probCls == nil {
		s.probCls = slices.Clone(classes)
		s.probIdx = make(map[string]int, len(classes))
		for j, name := range classes {
			s.probIdx[name] = j
		}
	} else if !slices.Equal(s.probCls, classes) {
		return true
	}
	col, ok := s.probIdx[label]
	if !ok {
		return true
	}
	c.llSum -= math.Log(min(max(pred.Probs[col], probEps), 1-probEps))
	c.llN++
	s.res.push(epoch, col, pred.Probs)
	return true
}

// snapshot copies what the metrics over the buckets with epoch in
// [lo, hi] need, so that they can be computed without the series' lock.
func (s *series) snapshot(lo, hi int64) *snapshot {
	sn := &snapshot{task: s.task, classes: s.classes[:len(s.classes):len(s.classes)], probCls: s.probCls}
	for i := range s.buckets {
		if b := &s.buckets[i]; b.valid && b.epoch >= lo && b.epoch <= hi {
			sn.sum.merge(&b.counts)
		}
	}
	if s.task == manifest.TaskClassification {
		sn.labels, sn.probs = s.res.since(lo, hi)
	}
	return sn
}

// snapshot is a copy of a series' sums over a time range. classes and
// probCls are shared with the series, which only appends to them.
type snapshot struct {
	task    string
	classes []string
	probCls []string
	sum     counts
	labels  []int
	probs   []float64
}

func (sn *snapshot) result() Result {
	sum := &sn.sum
	r := Result{Count: int(sum.n), Metrics: map[string]float64{}}
	if sum.n == 0 {
		return r
	}
	n := float64(sum.n)
	if sn.task == manifest.TaskRegression {
		r.Metrics["mse"] = sum.sse / n
		r.Metrics["mae"] = sum.sae / n
		if sum.m2 > 0 {
			r.Metrics["r2"] = 1 - sum.sse/sum.m2
		}
		return r
	}
	classify(&r, sn.classes, sum)
	if sum.llN > 0 {
		r.Metrics["log_loss"] = sum.llSum / float64(sum.llN)
	}
	aucs(&r, sn.probCls, sn.labels, sn.probs)
	return r
}

// classify adds accuracy, precision, recall and f1 from confusion counts
// over classes.
func classify(r *Result, classes []string, c *counts) {
	k := len(classes)
	tp := make([]int64, k)
	nLabel := make([]int64, k)
	nPred := make([]int64, k)
	var correct int64
	for key, v := range c.conf {
		l, p := key>>32, key&(1<<32-1)
		nLabel[l] += v
		nPred[p] += v
		if l == p {
			tp[l] += v
			correct += v
		}
	}
	r.Metrics["accuracy"] = float64(correct) / float64(c.n)
	r.PerClass = map[string]map[string]float64{}
	var sp, sr, sf float64
	present := 0
	for i, name := range classes {
		if nLabel[i] == 0 && nPred[i] == 0 {
			continue
		}
		present++
		p := ratio(tp[i], nPred[i])
		rc := ratio(tp[i], nLabel[i])
		f := ratio(2*tp[i], nLabel[i]+nPred[i])
		r.PerClass[name] = map[string]float64{"precision": p, "recall": rc, "f1": f}
		sp += p
		sr += rc
		sf += f
	}
	r.Metrics["precision"] = sp / float64(present)
	r.Metrics["recall"] = sr / float64(present)
	r.Metrics["f1"] = sf / float64(present)
}

// ratio is a/b, or 0 when b is 0 (scikit-learn's zero_division=0).
func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// aucs adds ROC AUC: for two classes the AUC of the second, for more the
// mean of the one-vs-rest AUCs of the classes that have both positive and
// negative rows (each also reported per class). labels[i] is the column of
// row i's true class in probs[i*len(classes):].
func aucs(r *Result, classes []string, labels []int, probs []float64) {
	c := len(classes)
	if c < 2 || len(labels) == 0 {
		return
	}
	rows := make([]scored, len(labels))
	one := func(k int) (float64, bool) {
		for i, l := range labels {
			rows[i] = scored{probs[i*c+k], l == k}
		}
		return auc(rows)
	}
	if c == 2 {
		if a, ok := one(1); ok {
			r.Metrics["auc"] = a
		}
		return
	}
	sum, m := 0.0, 0
	for k, name := range classes {
		a, ok := one(k)
		if !ok {
			continue
		}
		sum += a
		m++
		if pc := r.PerClass[name]; pc != nil {
			pc["auc"] = a
		}
	}
	if m > 0 {
		r.Metrics["auc"] = sum / float64(m)
	}
}

// scored is a row's score for one class, and whether that is its class.
type scored struct {
	score float64
	pos   bool
}

// auc is the area under the ROC curve of the rows' scores, by the
// Mann–Whitney U statistic with tied scores given their average rank. It is
// undefined (false) without both positive and negative rows. It sorts rows.
func auc(rows []scored) (float64, bool) {
	slices.SortFunc(rows, func(a, b scored) int { return cmp.Compare(a.score, b.score) })
	var nPos, nNeg int64
	rankSum := 0.0 // ranks of positives, 1-based
	for i := 0; i < len(rows); {
		j := i
		for j < len(rows) && rows[j].score == rows[i].score {
			j++
		}
		avg := float64(i+1+j) / 2 // mean of ranks i+1..j
		for _, x := range rows[i:j] {
			if x.pos {
				nPos++
				rankSum += avg
			} else {
				nNeg++
			}
		}
		i = j
	}
	if nPos == 0 || nNeg == 0 {
		return 0, false
	}
	u := rankSum - float64(nPos)*float64(nPos+1)/2
	return u / (float64(nPos) * float64(nNeg)), true
}

// reservoir is a ring of the most recent probability rows with the column
// of their true class. Storage grows up to max rows, then is reused.
type reservoir struct {
	max    int
	width  int // probabilities per row, set by the first push
	epochs []int64
	labels []int
	probs  []float64
	next   int // the slot the next push overwrites, once full
}

func (r *reservoir) push(epoch int64, label int, probs []float64) {
	if r.max <= 0 {
		return
	}
	if r.width == 0 {
		r.width = len(probs)
	}
	if len(r.labels) < r.max {
		r.epochs = append(r.epochs, epoch)
		r.labels = append(r.labels, label)
		r.probs = append(r.probs, probs...)
		return
	}
	i := r.next
	r.epochs[i], r.labels[i] = epoch, label
	copy(r.probs[i*r.width:(i+1)*r.width], probs)
	r.next = (i + 1) % r.max
}

// since copies out the rows with epoch in [lo, hi].
func (r *reservoir) since(lo, hi int64) ([]int, []float64) {
	var labels []int
	var probs []float64
	for i, e := range r.epochs {
		if e >= lo && e <= hi {
			labels = append(labels, r.labels[i])
			probs = append(probs, r.probs[i*r.width:(i+1)*r.width]...)
		}
	}
	return labels, probs
}

func floorMod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}
