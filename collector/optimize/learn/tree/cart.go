package tree

import (
	"math"
	"math/rand/v2"
)

// tree is one grown tree in flat arrays, nodes numbered in depth-first
// preorder from the root 0 (a split's left child is the node after it).
type tree struct {
	// feature[i] is the feature node i splits on, -1 at a leaf.
	feature   []int32
	threshold []float32
	// left[i] is the node a row reaches when float32(x) <= threshold[i]
	// (ONNX's BRANCH_LEQ true branch), right[i] the one it reaches
	// otherwise.
	left, right []int32
	// value[i*width : (i+1)*width] is leaf i's prediction: the class
	// distribution of its training rows, or one value.
	value []float64
	width int
}

func (t *tree) nodes() int { return len(t.feature) }

// leaf returns the leaf x reaches.
func (t *tree) leaf(x []float64) int {
	n := int32(0)
	for t.feature[n] >= 0 {
		if float32(x[t.feature[n]]) <= t.threshold[n] {
			n = t.left[n]
		} else {
			n = t.right[n]
		}
	}
	return int(n)
}

// leafOfRow returns the leaf row r of fr reaches.
func (t *tree) leafOfRow(fr *frame, r int) int {
	n := int32(0)
	for t.feature[n] >= 0 {
		if fr.cols[t.feature[n]][r] <= t.threshold[n] {
			n = t.left[n]
		} else {
			n = t.right[n]
		}
	}
	return int(n)
}

// leafValue returns the prediction stored at leaf i.
func (t *tree) leafValue(i int) []float64 { return t.value[i*t.width : (i+1)*t.width] }

// criterion is how a split is scored.
type criterion int

const (
	// gini: classification by Gini impurity.
	gini criterion = iota
	// squaredError: regression by the decrease of the squared error.
	squaredError
	// friedmanMSE: regression by Friedman's improvement score, the
	// criterion of scikit-learn's gradient boosting.
	friedmanMSE
)

// growConfig is how one tree is grown.
type growConfig struct {
	crit     criterion
	classes  int // K for gini; the targets are then class indices
	maxDepth int // 0: unlimited
	minSplit int // a node with fewer rows is a leaf
	minLeaf  int // each child of a split keeps at least this many rows
	// maxFeatures is how many features (that vary in the node) a split
	// looks at, drawn at random; d looks at all of them.
	maxFeatures int
}

// grower grows trees on one frame; its buffers are reused from tree to
// tree. It is not safe for concurrent use.
type grower struct {
	fr  *frame
	cfg growConfig
	rng *rand.Rand

	// Per tree: targets and sample weights (0: the row is not in the
	// tree's sample), and for each feature the sample's rows in increasing
	// order of it. A node owns the same segment [start, end) of every
	// idx[f].
	y   []float64
	w   []float64
	idx [][]int32
	// rowLeaf[r] is the leaf that in-sample row r ended in.
	rowLeaf []int32

	goLeft  []bool
	scratch []int32
	perm    []int
	cl, cr  []float64 // class weights left and right of a candidate split
	t       *tree
}

func newGrower(fr *frame, cfg growConfig, rng *rand.Rand) *grower {
	g := &grower{
		fr: fr, cfg: cfg, rng: rng,
		idx:     make([][]int32, fr.d),
		rowLeaf: make([]int32, fr.n),
		goLeft:  make([]bool, fr.n),
		scratch: make([]int32, fr.n),
		perm:    make([]int, fr.d),
	}
	for f := range g.idx {
		g.idx[f] = make([]int32, 0, fr.n)
	}
	if cfg.crit == gini {
		g.cl = make([]float64, cfg.classes)
		g.cr = make([]float64, cfg.classes)
	}
	return g
}

// grow grows a tree on targets y with sample weights w (len fr.n each).
func (g *grower) grow(y, w []float64) *tree {
	g.y, g.w = y, w
	m := 0
	for f := range g.idx {
		ix := g.idx[f][:0]
		for _, r := range g.fr.order[f] {
			if w[r] > 0 {
				ix = append(ix, r)
			}
		}
		g.idx[f] = ix
		m = len(ix)
	}
	width := 1
	if g.cfg.crit == gini {
		width = g.cfg.classes
	}
	g.t = &tree{width: width}
	if g.fr.d == 0 || m == 0 {
		// No features (or no rows): one leaf over whatever rows there are.
		g.leafOver(nil)
		return g.t
	}
	g.node(0, m, 0)
	return g.t
}

// split is a candidate split of a node.
type split struct {
	ok        bool
	feature   int
	threshold float32
	nLeft     int // rows going left
	proxy     float64
}

// node grows the subtree over segment [start, end) at depth depth and
// returns its id.
func (g *grower) node(start, end, depth int) int32 {
	rows := g.idx[0][start:end]
	id, impurity := g.leafOver(rows)
	m := end - start
	if (g.cfg.maxDepth > 0 && depth >= g.cfg.maxDepth) || m < g.cfg.minSplit || m < 2*g.cfg.minLeaf || impurity <= epsilon {
		return id
	}
	s := g.bestSplit(start, end)
	if !s.ok {
		return id
	}
	// Partition every feature's segment stably: rows going left first.
	col := g.fr.cols[s.feature]
	for _, r := range rows {
		g.goLeft[r] = col[r] <= s.threshold
	}
	for f := range g.idx {
		seg := g.idx[f][start:end]
		l, k := 0, 0
		for _, r := range seg {
			if g.goLeft[r] {
				seg[l] = r
				l++
			} else {
				g.scratch[k] = r
				k++
			}
		}
		copy(seg[l:], g.scratch[:k])
	}
	t := g.t
	t.feature[id] = int32(s.feature)
	t.threshold[id] = s.threshold
	mid := start + s.nLeft
	l := g.node(start, mid, depth+1)
	r := g.node(mid, end, depth+1)
	t.left[id], t.right[id] = l, r
	return id
}

// leafOver appends a leaf over rows (its prediction from their weighted
// targets), records it as their leaf, and returns its id and the rows'
// impurity (Gini, or the weighted variance of the targets).
func (g *grower) leafOver(rows []int32) (int32, float64) {
	t := g.t
	id := int32(len(t.feature))
	t.feature = append(t.feature, -1)
	t.threshold = append(t.threshold, 0)
	t.left = append(t.left, -1)
	t.right = append(t.right, -1)
	for _, r := range rows {
		g.rowLeaf[r] = id
	}
	var impurity float64
	if g.cfg.crit == gini {
		dist := make([]float64, g.cfg.classes)
		var wsum float64
		for _, r := range rows {
			dist[int(g.y[r])] += g.w[r]
			wsum += g.w[r]
		}
		impurity = 1
		if wsum > 0 {
			for k := range dist {
				dist[k] /= wsum
				impurity -= dist[k] * dist[k]
			}
		} else {
			impurity = 0
		}
		t.value = append(t.value, dist...)
		return id, impurity
	}
	var wsum, sum float64
	for _, r := range rows {
		wsum += g.w[r]
		sum += g.w[r] * g.y[r]
	}
	mean := 0.0
	if wsum > 0 {
		mean = sum / wsum
		for _, r := range rows {
			d := g.y[r] - mean
			impurity += g.w[r] * d * d
		}
		impurity /= wsum
	}
	t.value = append(t.value, mean)
	return id, impurity
}

// bestSplit looks at up to maxFeatures features that vary in the node, in
// random order, and returns the split with the best proxy improvement.
func (g *grower) bestSplit(start, end int) split {
	best := split{proxy: math.Inf(-1)}
	d := g.fr.d
	for i := range g.perm {
		g.perm[i] = i
	}
	visited := 0
	for j := 0; j < d && visited < g.cfg.maxFeatures; j++ {
		k := j + g.rng.IntN(d-j)
		g.perm[j], g.perm[k] = g.perm[k], g.perm[j]
		f := g.perm[j]
		seg := g.idx[f][start:end]
		col := g.fr.cols[f]
		if col[seg[0]] == col[seg[len(seg)-1]] {
			continue // constant in this node
		}
		visited++
		g.scanFeature(f, seg, &best)
	}
	return best
}

// scanFeature tries every threshold between consecutive distinct values of
// feature f over the node's rows seg (sorted by f) and updates best.
func (g *grower) scanFeature(f int, seg []int32, best *split) {
	col := g.fr.cols[f]
	m := len(seg)
	minLeaf := g.cfg.minLeaf
	y, w := g.y, g.w
	if g.cfg.crit == gini {
		cl, cr := g.cl, g.cr
		clear(cl)
		clear(cr)
		var wr float64
		for _, r := range seg {
			cr[int(y[r])] += w[r]
			wr += w[r]
		}
		var sqL, sqR float64
		for _, c := range cr {
			sqR += c * c
		}
		var wl float64
		for i := 0; i < m-1; i++ {
			r := seg[i]
			c, wi := int(y[r]), w[r]
			sqL += wi * (2*cl[c] + wi)
			sqR -= wi * (2*cr[c] - wi)
			cl[c] += wi
			cr[c] -= wi
			wl += wi
			wr -= wi
			if col[r] == col[seg[i+1]] || i+1 < minLeaf || m-i-1 < minLeaf || wl <= 0 || wr <= 0 {
				continue
			}
			if p := sqL/wl + sqR/wr; p > best.proxy {
				*best = split{ok: true, feature: f, threshold: threshold(col[r], col[seg[i+1]]), nLeft: i + 1, proxy: p}
			}
		}
		return
	}
	var sr, wr float64
	for _, r := range seg {
		sr += w[r] * y[r]
		wr += w[r]
	}
	var sl, wl float64
	for i := 0; i < m-1; i++ {
		r := seg[i]
		wi := w[r]
		sl += wi * y[r]
		sr -= wi * y[r]
		wl += wi
		wr -= wi
		if col[r] == col[seg[i+1]] || i+1 < minLeaf || m-i-1 < minLeaf || wl <= 0 || wr <= 0 {
			continue
		}
		var p float64
		if g.cfg.crit == friedmanMSE {
			diff := wr*sl - wl*sr
			p = diff * diff / (wl * wr)
		} else {
			p = sl*sl/wl + sr*sr/wr
		}
		if p > best.proxy {
			*best = split{ok: true, feature: f, threshold: threshold(col[r], col[seg[i+1]]), nLeft: i + 1, proxy: p}
		}
	}
}

// threshold returns a float32 t with a <= t < b: the midpoint of a and b
// rounded to float32, or a where the midpoint rounds up to b (adjacent
// floats). Every value <= a goes left, every value >= b right, in float32.
func threshold(a, b float32) float32 {
	t := float32((float64(a) + float64(b)) / 2)
	if t >= b || t < a {
		return a
	}
	return t
}

// epsilon is the impurity at or below which a node is pure (scikit-learn's
// EPSILON, the float64 machine epsilon).
const epsilon = 2.220446049250313e-16
