package tree

import (
	"fmt"
	"math"
	"sort"

	"github.com/drover-ml/drover/collector/optimize/learn"
)

// paramSpec is one hyper-parameter: its default and the values it takes.
type paramSpec struct {
	integer  bool
	min, max float64 // inclusive bounds
	// openMin excludes min itself.
	openMin bool
}

// resolve merges p over defaults, refusing names not in specs and values
// outside their range.
func resolve(family string, specs map[string]paramSpec, defaults, p learn.Params) (learn.Params, error) {
	out := learn.Params{}
	for k, v := range defaults {
		out[k] = v
	}
	names := make([]string, 0, len(p))
	for k := range p {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		v := p[k]
		s, ok := specs[k]
		if !ok {
			return nil, fmt.Errorf("%s: unknown parameter %q (it takes %s)", family, k, known(specs))
		}
		switch {
		case math.IsNaN(v) || math.IsInf(v, 0):
			return nil, fmt.Errorf("%s: %s = %v is not a finite number", family, k, v)
		case s.integer && v != math.Trunc(v):
			return nil, fmt.Errorf("%s: %s = %v must be a whole number", family, k, v)
		case v < s.min || (s.openMin && v == s.min) || v > s.max:
			lo := "["
			if s.openMin {
				lo = "("
			}
			return nil, fmt.Errorf("%s: %s = %v is outside %s%g, %g]", family, k, v, lo, s.min, s.max)
		}
		out[k] = v
	}
	return out, nil
}

func known(specs map[string]paramSpec) string {
	names := make([]string, 0, len(specs))
	for k := range specs {
		names = append(names, k)
	}
	sort.Strings(names)
	s := ""
	for i, n := range names {
		if i > 0 {
			s += ", "
		}
		s += n
	}
	return s
}

const maxCount = 1 << 20

var (
	depthSpec    = paramSpec{integer: true, min: 0, max: 1000}
	leafSpec     = paramSpec{integer: true, min: 1, max: maxCount}
	splitSpec    = paramSpec{integer: true, min: 2, max: maxCount}
	fractionSpec = paramSpec{min: 0, max: 1, openMin: true}
	// max_features of a forest: 0 means scikit-learn's default (sqrt of
	// the features for classification, all of them for regression).
	forestFeaturesSpec = paramSpec{min: 0, max: 1}
	estimatorsSpec     = paramSpec{integer: true, min: 1, max: 10000}
	rateSpec           = paramSpec{min: 0, max: 1e6, openMin: true}
)

// featuresPerSplit turns a max_features fraction into a count of features
// (at least 1), scikit-learn's int(fraction * d); 0 means sqrt(d) for
// classification and d for regression.
func featuresPerSplit(frac float64, d int, t learn.Task) int {
	if frac == 0 {
		if t == learn.Classification {
			return max(1, int(math.Sqrt(float64(d))))
		}
		return max(1, d)
	}
	return max(1, min(d, int(frac*float64(d))))
}
