package linear

import (
	"context"
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/floats"
	"gonum.org/v1/gonum/optimize"

	"github.com/drover-ml/drover/collector/optimize/export"
	"github.com/drover-ml/drover/collector/optimize/learn"
	"github.com/drover-ml/drover/shared/onnx"
)

func init() {
	learn.Register(Logistic{})
	learn.Register(Least{})
	learn.Register(Ridge{})
}

// DefaultGridPoints is the number of log-spaced values, from 1e-3 to 1e3,
// of C (logistic regression) or alpha (ridge) in the default grids.
const DefaultGridPoints = 7

// Logistic is the logistic_regression family: L2-regularised multinomial
// logistic regression (binary: the logistic function) on standardised
// features, scikit-learn's LogisticRegression(penalty="l2", solver="lbfgs")
// objective: Σ log-loss + ‖W‖²/(2C), the intercepts not penalised.
// Parameters: C (> 0, default 1), max_iter (≥ 1, default 100).
type Logistic struct{}

// Name implements learn.Family.
func (Logistic) Name() string { return "logistic_regression" }

// Supports implements learn.Family: classification only.
func (Logistic) Supports(t learn.Task) bool { return t == learn.Classification }

// Params implements learn.Family.
func (Logistic) Params(learn.Task) learn.Params { return learn.Params{"C": 1, "max_iter": 100} }

// DefaultGrid implements learn.Family: C over 1e-3..1e3.
func (Logistic) DefaultGrid(learn.Task) learn.Grid {
	return learn.Grid{"C": learn.LogSpace(-3, 3, DefaultGridPoints)}
}

// LogisticModel is a trained logistic regression. For two classes W has
// one row (the score of class 1); for K > 2, K rows. Read-only after Fit,
// so safe for concurrent use.
type LogisticModel struct {
	scaler
	Classes int
	// W is rows × features, row-major, in standardised feature space; B
	// the intercepts.
	W []float64
	B []float64
	// Iterations is the number of L-BFGS iterations the fit took.
	Iterations int
}

// Fit implements learn.Family.
func (f Logistic) Fit(ctx context.Context, d *learn.Dataset, p learn.Params, seed int64) (learn.Model, error) {
	p = learn.WithDefaults(f, d.Task, p)
	c, iters := p["C"], p["max_iter"]
	if !(c > 0) || math.IsInf(c, 0) {
		return nil, fmt.Errorf("logistic_regression: C = %v; it must be a positive number", c)
	}
	if iters < 1 || iters != math.Trunc(iters) {
		return nil, fmt.Errorf("logistic_regression: max_iter = %v; it must be a whole number ≥ 1", iters)
	}
	if d.Task != learn.Classification || d.Classes < 2 {
		return nil, errors.New("logistic_regression: needs a classification dataset with at least 2 classes")
	}
	if d.Rows() == 0 {
		return nil, errors.New("logistic_regression: no rows")
	}
	n, nf := d.X.Dims()
	m := &LogisticModel{scaler: fitScaler(d), Classes: d.Classes}
	z := m.transform(d)
	rows := d.Classes
	if rows == 2 {
		rows = 1
	}
	dim := rows * (nf + 1) // W then B
	y := make([]int, n)
	for i, v := range d.Y {
		y[i] = int(v)
	}
	// The objective is divided by n (the mean log-loss + ‖W‖²/(2Cn)): the
	// same minimiser, gradients on a scale the convergence test suits.
	lambda := 1 / (c * float64(n))
	scores := make([]float64, rows)
	// obj returns the objective at x and writes its gradient into grad, in
	// one pass over the rows (dot products and updates through gonum's
	// assembly kernels).
	obj := func(grad, x []float64) float64 {
		w, b := x[:rows*nf], x[rows*nf:]
		clear(grad)
		var loss float64
		for i := range n {
			zi := z[i*nf : (i+1)*nf]
			if rows == 1 {
				s := b[0] + floats.Dot(w, zi)
				// log(1+e^s) − y·s and the logistic of s, from one
				// exponential, without overflow.
				e := math.Exp(-math.Abs(s))
				loss += max(s, 0) + math.Log1p(e)
				p := 1 / (1 + e)
				if s < 0 {
					p = e / (1 + e)
				}
				g := p
				if y[i] == 1 {
					loss -= s
					g--
				}
				floats.AddScaled(grad[:nf], g, zi)
				grad[nf] += g
				continue
			}
			mx := math.Inf(-1)
			for r := range rows {
				s := b[r] + floats.Dot(w[r*nf:(r+1)*nf], zi)
				scores[r] = s
				mx = max(mx, s)
			}
			sy := scores[y[i]]
			var sum float64
			for r := range rows {
				e := math.Exp(scores[r] - mx)
				scores[r] = e
				sum += e
			}
			loss += mx + math.Log(sum) - sy
			inv := 1 / sum
			for r := range rows {
				g := scores[r] * inv
				if r == y[i] {
					g--
				}
				floats.AddScaled(grad[r*nf:(r+1)*nf], g, zi)
				grad[rows*nf+r] += g
			}
		}
		loss /= float64(n)
		pen := floats.Dot(w, w)
		loss += lambda / 2 * pen
		floats.Scale(1/float64(n), grad)
		floats.AddScaled(grad[:rows*nf], lambda, w)
		return loss
	}
	// L-BFGS asks for the value and then the gradient at the same point:
	// one pass computes both and the second call reuses it.
	var (
		lastX    = make([]float64, dim)
		lastGrad = make([]float64, dim)
		lastF    float64
		have     bool
	)
	eval := func(x []float64) {
		if have && floats.Equal(x, lastX) {
			return
		}
		lastF = obj(lastGrad, x)
		copy(lastX, x)
		have = true
	}
	prob := optimize.Problem{
		Func: func(x []float64) float64 { eval(x); return lastF },
		Grad: func(grad, x []float64) { eval(x); copy(grad, lastGrad) },
	}
	settings := &optimize.Settings{
		MajorIterations:   int(iters),
		GradientThreshold: 1e-8,
		Converger:         &optimize.FunctionConverge{Absolute: 1e-12, Relative: 1e-10, Iterations: 5},
		Recorder:          ctxRecorder{ctx},
	}
	res, err := optimize.Minimize(prob, make([]float64, dim), settings, &optimize.LBFGS{})
	if cerr := ctx.Err(); cerr != nil {
		return nil, cerr
	}
	if res == nil {
		return nil, fmt.Errorf("logistic_regression: %w", err)
	}
	// Running out of iterations is not an error, as in scikit-learn (which
	// warns): the last point is the model. Nor is a line search that cannot
	// decrease the objective any further (at a strong penalty the objective
	// is flat to float64 precision near the minimum before the gradient
	// test passes): scipy's L-BFGS-B, under scikit-learn, stops there too
	// (ABNORMAL_TERMINATION_IN_LNSRCH, a warning) and keeps the best point,
	// which res.X is.
	if err != nil && res.Status != optimize.IterationLimit && !errors.Is(err, optimize.ErrLinesearcherFailure) {
		return nil, fmt.Errorf("logistic_regression: L-BFGS: %w", err)
	}
	x := res.X
	for _, v := range x {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, errors.New("logistic_regression: the fit diverged")
		}
	}
	m.W, m.B = x[:rows*nf], x[rows*nf:]
	m.Iterations = res.Stats.MajorIterations
	return m, nil
}

// ctxRecorder stops L-BFGS when the context is cancelled.
type ctxRecorder struct{ ctx context.Context }

func (r ctxRecorder) Init() error { return r.ctx.Err() }
func (r ctxRecorder) Record(*optimize.Location, optimize.Operation, *optimize.Stats) error {
	return r.ctx.Err()
}

func sigmoid(s float64) float64 {
	if s >= 0 {
		return 1 / (1 + math.Exp(-s))
	}
	e := math.Exp(s)
	return e / (1 + e)
}

// Predict implements learn.Model: the probability of each class.
func (m *LogisticModel) Predict(x []float64, out []float64) {
	nf := len(m.Offset)
	rows := len(m.B)
	var buf [16]float64
	var scores []float64
	if rows <= len(buf) {
		scores = buf[:rows]
	} else {
		scores = make([]float64, rows)
	}
	for r := range rows {
		s := m.B[r]
		for j := range nf {
			s += m.W[r*nf+j] * (x[j] - m.Offset[j]) * m.Scale[j]
		}
		scores[r] = s
	}
	if rows == 1 {
		p := sigmoid(scores[0])
		out[0], out[1] = 1-p, p
		return
	}
	mx := scores[0]
	for _, s := range scores[1:] {
		mx = math.Max(mx, s)
	}
	var sum float64
	for r, s := range scores {
		out[r] = math.Exp(s - mx)
		sum += out[r]
	}
	for r := range out {
		out[r] /= sum
	}
}

// ExportCore implements export.Exportable: Scaler → LinearClassifier, as
// skl2onnx converts Pipeline(StandardScaler, LogisticRegression): for two
// classes the coefficients [−w, w] and intercepts [−b, b] with
// post_transform LOGISTIC, for more SOFTMAX.
func (m *LogisticModel) ExportCore(in, prefix string, sig *export.Signature) (export.Core, error) {
	if sig == nil || sig.Task != learn.Classification {
		return export.Core{}, errors.New("logistic_regression: the signature is not a classifier's")
	}
	labels, k := export.ClassLabelsAttr(sig)
	if k != m.Classes {
		return export.Core{}, fmt.Errorf("logistic_regression: the signature has %d class labels, the model %d classes", k, m.Classes)
	}
	nf := len(m.Offset)
	if sig.Features > 0 && sig.Features != nf {
		return export.Core{}, fmt.Errorf("logistic_regression: the signature has %d features, the model %d", sig.Features, nf)
	}
	coef, icpt, post := m.W, m.B, "SOFTMAX"
	if m.Classes == 2 {
		coef = make([]float64, 2*nf)
		for j, v := range m.W {
			coef[j], coef[nf+j] = -v, v
		}
		icpt = []float64{-m.B[0], m.B[0]}
		post = "LOGISTIC"
	}
	scaled, label, probs := prefix+"scaled", prefix+"label", prefix+"probabilities"
	return export.Core{
		Nodes: []*onnx.NodeProto{
			m.scaler.node(prefix+"scaler", in, scaled),
			export.MLNode(prefix+"linear_classifier", "LinearClassifier", []string{scaled}, []string{label, probs},
				labels,
				export.FloatsAttr("coefficients", coef),
				export.FloatsAttr("intercepts", icpt),
				onnx.IntAttr("multi_class", 0),
				export.StringAttr("post_transform", post)),
		},
		Label: label,
		Probs: probs,
	}, nil
}
