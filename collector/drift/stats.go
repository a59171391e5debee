package drift

import (
	"errors"
	"fmt"
	"math"
	"slices"
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
// error.
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

// JS is the Jensen-Shannon divergence between ref and cur in bits (base-2
// logarithms), so it lies in [0, 1]: 0 for equal distributions, 1 for
// distributions with disjoint support. Empty bins need no epsilon
// (0·log 0 = 0). An empty distribution gives an error.
func JS(ref, cur []float64) (float64, error) {
	if err := checkPair(ref, cur); err != nil {
		return 0, err
	}
	p, np := shares(ref)
	q, nq := shares(cur)
	if np == 0 || nq == 0 {
		return 0, errors.New("js: empty distribution")
	}
	var js float64
	for i := range p {
		m := (p[i] + q[i]) / 2
		if p[i] > 0 {
			js += p[i] / 2 * math.Log2(p[i]/m)
		}
		if q[i] > 0 {
			js += q[i] / 2 * math.Log2(q[i]/m)
		}
	}
	return min(max(js, 0), 1), nil
}

// Chi2 is Pearson's chi-squared test of homogeneity of two categorical
// count vectors (a 2×k contingency table): the statistic Σ (O − E)² / E over
// both rows, its degrees of freedom (categories with any count, minus one)
// and the p-value P(χ²_df ≥ stat), computed with the regularized upper
// incomplete gamma function. Counts must be counts (not shares): the
// p-value depends on the sample sizes. Fewer than two non-empty categories
// give stat 0, df 0 and p-value 1.
func Chi2(ref, cur []float64) (stat float64, df int, p float64, err error) {
	if err := checkPair(ref, cur); err != nil {
		return 0, 0, 0, err
	}
	var nr, nc float64
	for i := range ref {
		nr += ref[i]
		nc += cur[i]
	}
	if nr == 0 || nc == 0 {
		return 0, 0, 0, errors.New("chi2: empty distribution")
	}
	n := nr + nc
	k := 0
	for i := range ref {
		t := ref[i] + cur[i]
		if t == 0 {
			continue
		}
		k++
		er, ec := t*nr/n, t*nc/n
		stat += (ref[i]-er)*(ref[i]-er)/er + (cur[i]-ec)*(cur[i]-ec)/ec
	}
	if k < 2 {
		return 0, 0, 1, nil
	}
	df = k - 1
	return stat, df, Chi2SF(stat, df), nil
}

// Chi2SF is the survival function of the chi-squared distribution with df
// degrees of freedom: P(X ≥ x) = Q(df/2, x/2).
func Chi2SF(x float64, df int) float64 {
	if x <= 0 {
		return 1
	}
	return GammaQ(float64(df)/2, x/2)
}

// GammaQ is the regularized upper incomplete gamma function
// Q(a, x) = Γ(a, x) / Γ(a) for a > 0, x ≥ 0, computed with the series of
// P(a, x) for x < a+1 and Lentz's continued fraction of Q otherwise
// (Numerical Recipes §6.2), to about 1e-14 relative accuracy. It returns
// NaN for invalid arguments.
func GammaQ(a, x float64) float64 {
	switch {
	case a <= 0 || x < 0 || math.IsNaN(a) || math.IsNaN(x):
		return math.NaN()
	case x == 0:
		return 1
	case math.IsInf(x, 1):
		return 0
	case x < a+1:
		return 1 - gammaPSeries(a, x)
	default:
		return gammaQFraction(a, x)
	}
}

// GammaP is the regularized lower incomplete gamma function 1 − Q(a, x).
func GammaP(a, x float64) float64 {
	switch {
	case a <= 0 || x < 0 || math.IsNaN(a) || math.IsNaN(x):
		return math.NaN()
	case x == 0:
		return 0
	case math.IsInf(x, 1):
		return 1
	case x < a+1:
		return gammaPSeries(a, x)
	default:
		return 1 - gammaQFraction(a, x)
	}
}

const (
	gammaEps     = 1e-15
	gammaMaxIter = 1000
	gammaTiny    = 1e-300
)

// gammaPSeries is P(a, x) = e^−x x^a / Γ(a+1) · Σ x^n / ((a+1)…(a+n)).
func gammaPSeries(a, x float64) float64 {
	lg, _ := math.Lgamma(a)
	sum, term, ap := 1/a, 1/a, a
	for range gammaMaxIter {
		ap++
		term *= x / ap
		sum += term
		if math.Abs(term) < math.Abs(sum)*gammaEps {
			break
		}
	}
	return sum * math.Exp(-x+a*math.Log(x)-lg)
}

// gammaQFraction is Q(a, x) by the continued fraction
// e^−x x^a / Γ(a) · 1/(x+1−a− 1·(1−a)/(x+3−a− 2·(2−a)/(x+5−a− …))).
func gammaQFraction(a, x float64) float64 {
	lg, _ := math.Lgamma(a)
	b := x + 1 - a
	c := 1 / gammaTiny
	d := 1 / b
	h := d
	for i := 1; i <= gammaMaxIter; i++ {
		an := -float64(i) * (float64(i) - a)
		b += 2
		d = an*d + b
		if math.Abs(d) < gammaTiny {
			d = gammaTiny
		}
		c = b + an/c
		if math.Abs(c) < gammaTiny {
			c = gammaTiny
		}
		d = 1 / d
		del := d * c
		h *= del
		if math.Abs(del-1) < gammaEps {
			break
		}
	}
	return math.Exp(-x+a*math.Log(x)-lg) * h
}

// KSBinned is the two-sample Kolmogorov-Smirnov statistic on binned data:
// the largest difference between the two cumulative shares at the bins'
// edges, in [0, 1]. Binning can only hide differences inside a bin, so it
// is at most the statistic on the raw samples.
func KSBinned(ref, cur []float64) (float64, error) {
	if err := checkPair(ref, cur); err != nil {
		return 0, err
	}
	p, np := shares(ref)
	q, nq := shares(cur)
	if np == 0 || nq == 0 {
		return 0, errors.New("ks: empty distribution")
	}
	var fp, fq, d float64
	for i := range p {
		fp += p[i]
		fq += q[i]
		d = max(d, math.Abs(fp-fq))
	}
	return min(d, 1), nil
}

// KSSamples is the exact two-sample Kolmogorov-Smirnov statistic
// sup_x |F_ref(x) − F_cur(x)| of two samples. It does not modify its
// arguments. Empty samples give an error.
func KSSamples(ref, cur []float64) (float64, error) {
	if len(ref) == 0 || len(cur) == 0 {
		return 0, errors.New("ks: empty sample")
	}
	a, b := slices.Clone(ref), slices.Clone(cur)
	slices.Sort(a)
	slices.Sort(b)
	na, nb := float64(len(a)), float64(len(b))
	var i, j int
	var d float64
	for i < len(a) && j < len(b) {
		x := min(a[i], b[j])
		for i < len(a) && a[i] == x {
			i++
		}
		for j < len(b) && b[j] == x {
			j++
		}
		d = max(d, math.Abs(float64(i)/na-float64(j)/nb))
	}
	return d, nil
}

// Wasserstein is the normed Wasserstein-1 (earth mover's) distance between
// two binned distributions over the same bounds (OTLP layout: len(bounds)+1
// buckets, bucket i is (bounds[i-1], bounds[i]]). Each interior bucket's
// mass sits at its midpoint, the two open-ended buckets' at the first and
// the last bound, and the distance is divided by the bins' range
// bounds[last] − bounds[0], the reference's range: 0 for equal
// distributions, 1 for all mass moved from one end of the range to the
// other. It needs at least two bounds.
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
