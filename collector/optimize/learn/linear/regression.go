package linear

import (
	"context"
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"

	"github.com/drover-ml/drover/collector/optimize/export"
	"github.com/drover-ml/drover/collector/optimize/learn"
	"github.com/drover-ml/drover/shared/onnx"
)

// Least is the linear_regression family: ordinary least squares on
// standardised features (the minimum-norm solution when features are
// collinear). It has no parameters.
type Least struct{}

// Name implements learn.Family.
func (Least) Name() string { return "linear_regression" }

// Supports implements learn.Family: regression only.
func (Least) Supports(t learn.Task) bool { return t == learn.Regression }

// Params implements learn.Family: none.
func (Least) Params(learn.Task) learn.Params { return learn.Params{} }

// DefaultGrid implements learn.Family: the single point.
func (Least) DefaultGrid(learn.Task) learn.Grid { return learn.Grid{} }

// Fit implements learn.Family.
func (f Least) Fit(ctx context.Context, d *learn.Dataset, p learn.Params, _ int64) (learn.Model, error) {
	if len(p) > 0 {
		return nil, fmt.Errorf("linear_regression takes no parameters, got %s", p)
	}
	return fitLinear(ctx, f.Name(), d, 0)
}

// Ridge is the ridge family: scikit-learn's Ridge objective
// ‖y − Zw − b‖² + alpha‖w‖² on standardised features Z, the intercept not
// penalised. Parameter: alpha (≥ 0, default 1).
type Ridge struct{}

// Name implements learn.Family.
func (Ridge) Name() string { return "ridge" }

// Supports implements learn.Family: regression only.
func (Ridge) Supports(t learn.Task) bool { return t == learn.Regression }

// Params implements learn.Family.
func (Ridge) Params(learn.Task) learn.Params { return learn.Params{"alpha": 1} }

// DefaultGrid implements learn.Family: alpha over 1e-3..1e3.
func (Ridge) DefaultGrid(learn.Task) learn.Grid {
	return learn.Grid{"alpha": learn.LogSpace(-3, 3, DefaultGridPoints)}
}

// Fit implements learn.Family.
func (f Ridge) Fit(ctx context.Context, d *learn.Dataset, p learn.Params, _ int64) (learn.Model, error) {
	p = learn.WithDefaults(f, d.Task, p)
	alpha := p["alpha"]
	if !(alpha >= 0) || math.IsInf(alpha, 0) {
		return nil, fmt.Errorf("ridge: alpha = %v; it must be a finite number ≥ 0", alpha)
	}
	return fitLinear(ctx, f.Name(), d, alpha)
}

// RegressionModel is a trained linear or ridge regression: value =
// B + Σ W_j · z_j on standardised features z. Read-only after Fit, so safe
// for concurrent use.
type RegressionModel struct {
	scaler
	W []float64
	B float64
}

// fitLinear solves the (ridge) least squares through the SVD of the
// centred, standardised features Z = U S Vᵀ: w = V diag(s/(s²+alpha)) Uᵀ
// (y − ȳ), dropping singular values below the rank tolerance when alpha is
// 0; b = ȳ since Z's columns have mean 0.
func fitLinear(ctx context.Context, name string, d *learn.Dataset, alpha float64) (*RegressionModel, error) {
	if d.Task != learn.Regression {
		return nil, fmt.Errorf("%s: needs a regression dataset", name)
	}
	if d.Rows() == 0 {
		return nil, fmt.Errorf("%s: no rows", name)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	n, nf := d.X.Dims()
	m := &RegressionModel{scaler: fitScaler(d)}
	z := mat.NewDense(n, nf, m.transform(d))
	var ybar float64
	for _, y := range d.Y {
		ybar += y
	}
	ybar /= float64(n)
	yc := mat.NewVecDense(n, nil)
	for i, y := range d.Y {
		yc.SetVec(i, y-ybar)
	}
	var svd mat.SVD
	if !svd.Factorize(z, mat.SVDThin) {
		return nil, fmt.Errorf("%s: the SVD of the features did not converge", name)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var u, v mat.Dense
	svd.UTo(&u)
	svd.VTo(&v)
	s := svd.Values(nil)
	tol := 0.0
	if len(s) > 0 {
		tol = s[0] * float64(max(n, nf)) * 2.220446049250313e-16
	}
	m.W = make([]float64, nf)
	for k, sk := range s {
		var coef float64
		switch {
		case alpha > 0:
			coef = sk / (sk*sk + alpha)
		case sk > tol:
			coef = 1 / sk
		default:
			continue
		}
		uy := mat.Dot(u.ColView(k), yc) * coef
		for j := range nf {
			m.W[j] += v.At(j, k) * uy
		}
	}
	m.B = ybar
	for _, w := range m.W {
		if math.IsNaN(w) || math.IsInf(w, 0) {
			return nil, errors.New(name + ": the fit is not finite")
		}
	}
	return m, nil
}

// Predict implements learn.Model: out[0] is the value.
func (m *RegressionModel) Predict(x []float64, out []float64) {
	v := m.B
	for j, w := range m.W {
		v += w * (x[j] - m.Offset[j]) * m.Scale[j]
	}
	out[0] = v
}

// ExportCore implements export.Exportable: Scaler → LinearRegressor, as
// skl2onnx converts Pipeline(StandardScaler, LinearRegression or Ridge).
func (m *RegressionModel) ExportCore(in, prefix string, sig *export.Signature) (export.Core, error) {
	if sig == nil || sig.Task != learn.Regression {
		return export.Core{}, errors.New("linear regression: the signature is not a regression's")
	}
	if nf := len(m.W); sig.Features > 0 && sig.Features != nf {
		return export.Core{}, fmt.Errorf("linear regression: the signature has %d features, the model %d", sig.Features, nf)
	}
	scaled, value := prefix+"scaled", prefix+"value"
	return export.Core{
		Nodes: []*onnx.NodeProto{
			m.scaler.node(prefix+"scaler", in, scaled),
			export.MLNode(prefix+"linear_regressor", "LinearRegressor", []string{scaled}, []string{value},
				export.FloatsAttr("coefficients", m.W),
				export.FloatsAttr("intercepts", []float64{m.B}),
				onnx.IntAttr("targets", 1),
				export.StringAttr("post_transform", "NONE")),
		},
		Value: value,
	}, nil
}
