package demo

import (
	"fmt"
	"slices"
)

// Drift is what the demo does to the rows it sends once it injects drift:
//
//   - a covariate shift: the size features (radius, perimeter and area:
//     mean, standard error and worst) are multiplied by SizeFactor, as if
//     the imaging were recalibrated; their distribution moves away from the
//     training data's, and the serving model, for which larger nuclei mean
//     malignant, calls many benign masses malignant;
//   - a concept change: the concave-points features (mean, standard
//     error, worst) are reflected within their training range (x' = min +
//     max − x), so the relationship between them and the diagnosis is
//     inverted: what meant malignant now comes with benign masses and the
//     other way round. P(label | inputs) changes, not only P(inputs).
//
// The label of every row stays the true diagnosis. Both changes are
// affine in the inputs, so a model of the same family retrained on the
// drifted rows can be as good as the serving model was before: the metric
// can come back. Drift is read-only after NewDrift (safe for concurrent
// use).
type Drift struct {
	SizeFactor float64
	// scale and reflect are the feature indexes of each change; lo and hi
	// the training range of each reflected feature.
	scale, reflect []int
	lo, hi         []float64
}

// DefaultSizeFactor is the covariate shift of the size features.
const DefaultSizeFactor = 1.3

// Shifted and Reflected name the features the drift changes.
var (
	Shifted   = []string{"mean_radius", "mean_perimeter", "mean_area", "radius_se", "perimeter_se", "area_se", "worst_radius", "worst_perimeter", "worst_area"}
	Reflected = []string{"mean_concave_points", "concave_points_se", "worst_concave_points"}
)

// NewDrift returns the demo's drift for rows of d's features, scaling the
// Shifted features by sizeFactor and reflecting the Reflected ones within
// d's range.
func NewDrift(d *Dataset, sizeFactor float64) (*Drift, error) {
	if !(sizeFactor > 0) {
		return nil, fmt.Errorf("drift: size factor %v must be > 0", sizeFactor)
	}
	dr := &Drift{SizeFactor: sizeFactor}
	for _, name := range Shifted {
		i := slices.Index(d.Features, name)
		if i < 0 {
			return nil, fmt.Errorf("drift: the data set has no feature %q", name)
		}
		dr.scale = append(dr.scale, i)
	}
	for _, name := range Reflected {
		i := slices.Index(d.Features, name)
		if i < 0 {
			return nil, fmt.Errorf("drift: the data set has no feature %q", name)
		}
		lo, hi := d.X[0][i], d.X[0][i]
		for _, x := range d.X {
			lo, hi = min(lo, x[i]), max(hi, x[i])
		}
		dr.reflect, dr.lo, dr.hi = append(dr.reflect, i), append(dr.lo, lo), append(dr.hi, hi)
	}
	return dr, nil
}

// Apply returns the drifted copy of row x.
func (dr *Drift) Apply(x []float64) []float64 {
	y := slices.Clone(x)
	for _, i := range dr.scale {
		y[i] *= dr.SizeFactor
	}
	for k, i := range dr.reflect {
		y[i] = dr.lo[k] + dr.hi[k] - y[i]
	}
	return y
}

// ApplyAll returns d with every row drifted (labels unchanged).
func (dr *Drift) ApplyAll(d *Dataset) *Dataset {
	out := &Dataset{Features: d.Features, Y: d.Y, X: make([][]float64, len(d.X))}
	for r, x := range d.X {
		out.X[r] = dr.Apply(x)
	}
	return out
}
