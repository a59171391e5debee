package drift

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"gonum.org/v1/gonum/floats"
	gstat "gonum.org/v1/gonum/stat"
	"gonum.org/v1/gonum/stat/distuv"
)

// Epsilon replaces an empty bin's share in PSI (and only there): PSI has
// ln(cur/ref) terms that are infinite for a bin that is empty in one
// distribution, so such a share counts as 1e-4 (0.01 %). Shares are not
// renormalized afterwards; with 10 bins the error this adds is below 0.001.
const Epsilon = 1e-4

// errLength is returned for distributions of different lengths.
var errLength = errors.New("distributions have different numbers of bins")

// shares returns counts divided by their sum, and the sum.
func shares(counts []float64) ([]float64, float64) {
	var n float64
	for _, c := range counts {
		n += c
	}
	p := make([]float64, len(counts))
	if n > 0 {
		for i, c := range counts {
			p[i] = c / n
		}
	}
	return p, n
}

func checkPair(ref, cur []float64) error {
	if len(ref) != len(cur) {
		return fmt.Errorf("%w: %d and %d", errLength, len(ref), len(cur))
	}
	if len(ref) == 0 {
		return errors.New("distributions have no bins")
	}
	for i := range ref {
		if ref[i] < 0 || cur[i] < 0 || math.IsNaN(ref[i]) || math.IsNaN(cur[i]) {
			return fmt.Errorf("bin %d: counts must be non-negative numbers", i)
		}
	}
	return nil
}

// PSI is the population stability index of cur against ref, both bin counts
// (or shares) over the same bins: Σ (c_i − r_i) · ln(c_i / r_i) over the
// shares r_i, c_i, an empty bin's share counted as Epsilon. It is 0 for
// equal distributions and grows without bound; 0.1 is usually read as a
// moderate and 0.2 as a significant shift. An empty distribution gives an
// error. (Written here: gonum has no PSI, and its KullbackLeibler has no
// epsilon for empty bins.)
func PSI(ref, cur []float64) (float64, error) {
	if err := checkPair(ref, cur); err != nil {
		return 0, err
	}
	r, nr := shares(ref)
	c, nc := shares(cur)
	if nr == 0 || nc == 0 {
		return 0, errors.New("psi: empty distribution")
	}
	var psi float64
	for i := range r {
		ri, ci := max(r[i], Epsilon), max(c[i], Epsilon)
		psi += (ci - ri) * math.Log(ci/ri)
	}
	return psi, nil
}

// JS is the Jensen-Shannon divergence between ref and cur in bits (gonum's
// stat.JensenShannon, in nats, divided by ln 2), so it lies in [0, 1]: 0
// for equal distributions, 1 for distributions with disjoint support. Empty
// bins need no epsilon (0·log 0 = 0). An empty distribution gives an error.
func JS(ref, cur []float64) (float64, error) {
	if err := checkPair(ref, cur); err != nil {
		return 0, err
	}
	p, np := shares(ref)
	q, nq := shares(cur)
	if np == 0 || nq == 0 {
		return 0, errors.New("js: empty distribution")
	}
	js := gstat.JensenShannon(p, q) / math.Ln2 // gonum computes it in nats
	return min(max(js, 0), 1), nil
}

// Chi2 is Pearson's chi-squared test of homogeneity of two categorical
// count vectors (a 2×k contingency table): the statistic Σ (O − E)² / E over
// both rows (gonum's stat.ChiSquare of each row against its expected
// counts), its degrees of freedom (categories with any count, minus one)
// and the p-value P(χ²_df ≥ stat) (Chi2SF). Counts must be counts (not
// shares): the p-value depends on the sample sizes. Fewer than two
// non-empty categories give stat 0, df 0 and p-value 1.
func Chi2(ref, cur []float64) (stat float64, df int, p float64, err error) {
	if err := checkPair(ref, cur); err != nil {
		return 0, 0, 0, err
	}
	nr, nc := floats.Sum(ref), floats.Sum(cur)
	if nr == 0 || nc == 0 {
		return 0, 0, 0, errors.New("chi2: empty distribution")
	}
	n := nr + nc
	expRef, expCur := make([]float64, len(ref)), make([]float64, len(cur))
	k := 0
	for i := range ref {
		t := ref[i] + cur[i]
		if t > 0 {
			k++
		}
		// An empty category has expected counts 0 on both rows, which
		// stat.ChiSquare leaves out.
		expRef[i], expCur[i] = t*nr/n, t*nc/n
	}
	if k < 2 {
		return 0, 0, 1, nil
	}
	stat = gstat.ChiSquare(ref, expRef) + gstat.ChiSquare(cur, expCur)
	df = k - 1
	return stat, df, Chi2SF(stat, df), nil
}

// Chi2SF is the survival function of the chi-squared distribution with df
// degrees of freedom, P(X ≥ x): gonum's distuv.ChiSquared.Survival, the
// regularized upper incomplete gamma function Q(df/2, x/2) of Cephes
// (mathext.GammaIncRegComp). It is 1 for x ≤ 0, 0 for x = +Inf, and NaN for
// df < 1 or a NaN x.
func Chi2SF(x float64, df int) float64 {
	switch {
	case df < 1 || math.IsNaN(x):
		return math.NaN()
	case x <= 0:
		return 1
	case math.IsInf(x, 1):
		return 0
	}
	return distuv.ChiSquared{K: float64(df)}.Survival(x)
}

// KSBinned is the two-sample Kolmogorov-Smirnov statistic on binned data:
// the largest difference between the two cumulative shares at the bins'
// edges, in [0, 1] (gonum's weighted stat.KolmogorovSmirnov, each bin a
// sample point weighted by its count). Binning can only hide differences
// inside a bin, so it is at most the statistic on the raw samples.
func KSBinned(ref, cur []float64) (float64, error) {
	if err := checkPair(ref, cur); err != nil {
		return 0, err
	}
	if floats.Sum(ref) == 0 || floats.Sum(cur) == 0 {
		return 0, errors.New("ks: empty distribution")
	}
	bins := make([]float64, len(ref))
	for i := range bins {
		bins[i] = float64(i)
	}
	return min(gstat.KolmogorovSmirnov(bins, ref, bins, cur), 1), nil
}

// KSSamples is the exact two-sample Kolmogorov-Smirnov statistic
// sup_x |F_ref(x) − F_cur(x)| of two samples (gonum's
// stat.KolmogorovSmirnov of sorted copies; NaN if either holds a NaN). It
// does not modify its arguments. Empty samples give an error.
func KSSamples(ref, cur []float64) (float64, error) {
	if len(ref) == 0 || len(cur) == 0 {
		return 0, errors.New("ks: empty sample")
	}
	a, b := slices.Clone(ref), slices.Clone(cur)
	slices.Sort(a)
	slices.Sort(b)
	return gstat.KolmogorovSmirnov(a, nil, b, nil), nil
}

// Wasserstein is the normed Wasserstein-1 (earth mover's) distance between
// two binned distributions over the same bounds (OTLP layout: len(bounds)+1
// buckets, bucket i is (bounds[i-1], bounds[i]]). Each interior bucket's
// mass sits at its midpoint, the two open-ended buckets' at the first and
// the last bound, and the distance is divided by the bins' range
// bounds[last] − bounds[0], the reference's range: 0 for equal
// distributions, 1 for all mass moved from one end of the range to the
// other. It needs at least two bounds. (Written here: gonum has no
// Wasserstein distance; on bins it is the area between the two CDFs.)
func Wasserstein(bounds, ref, cur []float64) (float64, error) {
	if err := checkPair(ref, cur); err != nil {
		return 0, err
	}
	if len(bounds) < 2 || len(ref) != len(bounds)+1 {
		return 0, fmt.Errorf("wasserstein: %d buckets need %d bounds (at least 2), have %d", len(ref), len(ref)-1, len(bounds))
	}
	span := bounds[len(bounds)-1] - bounds[0]
	if !(span > 0) {
		return 0, errors.New("wasserstein: bounds must increase")
	}
	p, np := shares(ref)
	q, nq := shares(cur)
	if np == 0 || nq == 0 {
		return 0, errors.New("wasserstein: empty distribution")
	}
	x := make([]float64, len(p)) // support points, increasing
	x[0], x[len(x)-1] = bounds[0], bounds[len(bounds)-1]
	for i := 1; i < len(x)-1; i++ {
		x[i] = (bounds[i-1] + bounds[i]) / 2
	}
	var fp, fq, w float64
	for i := 0; i < len(x)-1; i++ {
		fp += p[i]
		fq += q[i]
		w += math.Abs(fp-fq) * (x[i+1] - x[i])
	}
	return w / span, nil
}

// Quantile returns the q quantile (0 < q ≤ 1) of a binned distribution,
// interpolated linearly inside its bucket, the first bucket starting at 0
// (latencies) and a quantile in the open last bucket reported as the last
// bound, as in docs/schema.md. It is NaN for an empty distribution.
// (Written here: gonum's stat.Quantile takes weighted samples and does not
// interpolate inside a histogram bucket.)
func Quantile(bounds, counts []float64, q float64) float64 {
	var n float64
	for _, c := range counts {
		n += c
	}
	if n == 0 || len(bounds) == 0 || len(counts) != len(bounds)+1 {
		return math.NaN()
	}
	rank := n * q
	var below float64
	for i, c := range counts {
		if below+c >= rank && c > 0 {
			if i == len(bounds) {
				return bounds[len(bounds)-1]
			}
			lower := 0.0
			if i > 0 {
				lower = bounds[i-1]
			}
			return lower + (bounds[i]-lower)*(rank-below)/c
		}
		below += c
	}
	return bounds[len(bounds)-1]
}

// CountAbove returns how many observations of a binned distribution lie
// above t, with Quantile's conventions: linear inside t's bucket (the
// first bucket starting at 0), and the open last bucket counted whole when
// t is below the last bound, not at all otherwise. For a distribution of n
// observations, CountAbove(Quantile(q)) is n·(1−q) when the quantile falls
// in a closed bucket.
func CountAbove(bounds, counts []float64, t float64) float64 {
	var n float64
	for i, c := range counts {
		if c == 0 {
			continue
		}
		if i == len(bounds) {
			if len(bounds) > 0 && t < bounds[len(bounds)-1] {
				n += c
			}
			continue
		}
		lower := 0.0
		if i > 0 {
			lower = bounds[i-1]
		}
		switch upper := bounds[i]; {
		case t <= lower:
			n += c
		case t < upper:
			n += c * (upper - t) / (upper - lower)
		}
	}
	return n
}
