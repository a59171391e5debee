package drift

import (
	"math"
	"testing"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol || (math.IsNaN(a) && math.IsNaN(b)) }

func TestPSI(t *testing.T) {
	for name, tc := range map[string]struct {
		ref, cur []float64
		want     float64
	}{
		"equal":             {[]float64{10, 20, 30}, []float64{1, 2, 3}, 0},
		"half to quarter":   {[]float64{0.5, 0.5}, []float64{0.25, 0.75}, 0.25*math.Log(2) + 0.25*math.Log(1.5)}, // 0.274653
		"empty bin eps":     {[]float64{1, 0}, []float64{0.5, 0.5}, 0.5*math.Log(2) + (0.5-1e-4)*math.Log(0.5/1e-4)},
		"counts not shares": {[]float64{50, 50}, []float64{25, 75}, 0.2746530721670274},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := PSI(tc.ref, tc.cur)
			if err != nil || !near(got, tc.want, 1e-12) {
				t.Errorf("PSI = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
	if _, err := PSI([]float64{1}, []float64{1, 2}); err == nil {
		t.Error("PSI of different lengths: no error")
	}
	if _, err := PSI([]float64{0, 0}, []float64{1, 2}); err == nil {
		t.Error("PSI of an empty distribution: no error")
	}
}

func TestJS(t *testing.T) {
	for name, tc := range map[string]struct {
		ref, cur []float64
		want     float64
	}{
		"equal":    {[]float64{1, 3}, []float64{2, 6}, 0},
		"disjoint": {[]float64{1, 0}, []float64{0, 1}, 1},
		// m = [.75 .25]; KL(p||m) = .5 log2(2/3) + .5 log2 2 = .207519; KL(q||m) = log2(4/3) = .415037.
		"half vs all": {[]float64{0.5, 0.5}, []float64{1, 0}, 0.5 * (0.5*math.Log2(0.5/0.75) + 0.5 + math.Log2(1/0.75))},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := JS(tc.ref, tc.cur)
			if err != nil || !near(got, tc.want, 1e-12) {
				t.Errorf("JS = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

// TestChi2SF checks the chi-squared survival function (gonum's) against
// p-values of scipy.stats.chi2.sf(x, df), here computed to 20 digits with
// mpmath (gammainc(df/2, x/2, inf, regularized=True), the same function),
// and against closed forms.
func TestChi2SF(t *testing.T) {
	// Q(n, x) = Σ_{k<n} e^−x x^k / k!, so chi2.sf(2x, 2n) = Q(n, x).
	poissonQ := func(n int, x float64) float64 {
		s, term := 0.0, math.Exp(-x)
		for k := range n {
			if k > 0 {
				term *= x / float64(k)
			}
			s += term
		}
		return s
	}
	for name, tc := range map[string]struct{ got, want float64 }{
		// Critical values of the chi-squared table (5 % and 1 %).
		"df=1 crit 0.05":   {Chi2SF(3.841458820694124, 1), 0.050000000000000057435},
		"df=5 crit 0.05":   {Chi2SF(11.070497693516351, 5), 0.050000000000000051957},
		"df=10 crit 0.01":  {Chi2SF(23.209251158954356, 10), 0.010000000000000014294},
		"df=100 crit 0.05": {Chi2SF(124.34211340400407, 100), 0.050000000000000093076},
		// Other points, scipy/mpmath.
		"df=1 x=1":     {Chi2SF(1, 1), 0.31731050786291410283},
		"df=3 x=0.5":   {Chi2SF(0.5, 3), 0.91889141165467585936},
		"df=7 x=7.5":   {Chi2SF(7.5, 7), 0.37873690604821293668},
		"df=4 x=1e-3":  {Chi2SF(1e-3, 4), 0.99999987504165885521},
		"df=3 x=50":    {Chi2SF(50, 3), 7.9891792449514711391e-11},
		"df=200 x=300": {Chi2SF(300, 200), 5.9245403354839158294e-6},
		"df=800 x=1e3": {Chi2SF(1000, 800), 1.6472192644087197583e-6},
		// Closed forms.
		"df=1 = erfc(sqrt(x/2))": {Chi2SF(20.0/3, 1), math.Erfc(math.Sqrt(10.0 / 3))},
		"df=2 = e^(-x/2)":        {Chi2SF(4, 2), math.Exp(-2)},
		"df=20 x=10 Poisson":     {Chi2SF(10, 20), poissonQ(10, 5)},
		"df=6 x=40 Poisson":      {Chi2SF(40, 6), poissonQ(3, 20)},
		"df=100 x=120 Poisson":   {Chi2SF(120, 100), poissonQ(50, 60)},
		// Edges.
		"at 0":    {Chi2SF(0, 3), 1},
		"below 0": {Chi2SF(-1, 3), 1},
		"at +Inf": {Chi2SF(math.Inf(1), 3), 0},
		"df=0":    {Chi2SF(1, 0), math.NaN()},
		"x NaN":   {Chi2SF(math.NaN(), 2), math.NaN()},
	} {
		t.Run(name, func(t *testing.T) {
			if !near(tc.got, tc.want, 1e-12*math.Abs(tc.want)) && !near(tc.got, tc.want, 1e-15) {
				t.Errorf("got %.17g, want %.17g", tc.got, tc.want)
			}
		})
	}
}

func TestChi2(t *testing.T) {
	// 2×2 table [[10 20] [20 10]]: every expected count 15, stat 4·25/15.
	stat, df, p, err := Chi2([]float64{10, 20}, []float64{20, 10})
	if err != nil || !near(stat, 20.0/3, 1e-12) || df != 1 || !near(p, math.Erfc(math.Sqrt(10.0/3)), 1e-12) {
		t.Errorf("Chi2 = %v, %d, %v, %v; want 6.667, 1, %v", stat, df, p, err, math.Erfc(math.Sqrt(10.0/3)))
	}
	// 2×3 table [[30 50 20] [20 40 40]]: scipy.stats.chi2_contingency(...,
	// correction=False) gives 9.7777…, df 2, p 0.0075297842556500259871.
	stat, df, p, err = Chi2([]float64{30, 50, 20}, []float64{20, 40, 40})
	if err != nil || !near(stat, 88.0/9, 1e-12) || df != 2 || !near(p, 0.0075297842556500259871, 1e-15) {
		t.Errorf("Chi2 2×3 = %v, %d, %v, %v; want 9.7778, 2, 0.00752978", stat, df, p, err)
	}
	// An empty category on both sides does not count as a degree of freedom.
	stat, df, p, _ = Chi2([]float64{5, 0, 5}, []float64{5, 0, 5})
	if stat != 0 || df != 1 || p != 1 {
		t.Errorf("equal with empty category: %v, %d, %v; want 0, 1, 1", stat, df, p)
	}
	if _, _, _, err := Chi2([]float64{0, 0}, []float64{1, 1}); err == nil {
		t.Error("empty reference: no error")
	}
}

func TestKS(t *testing.T) {
	for name, tc := range map[string]struct {
		ref, cur []float64
		want     float64
	}{
		"binned equal": {[]float64{1, 2, 3}, []float64{2, 4, 6}, 0},
		"binned shift": {[]float64{0.5, 0.5}, []float64{0.25, 0.75}, 0.25},
		"binned apart": {[]float64{1, 0, 0}, []float64{0, 0, 1}, 1},
		// cumulative shares .2 .5 .9 1 against .4 .4 .8 1
		"binned middle": {[]float64{2, 3, 4, 1}, []float64{4, 0, 4, 2}, 0.2},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := KSBinned(tc.ref, tc.cur)
			if err != nil || !near(got, tc.want, 1e-12) {
				t.Errorf("KSBinned = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
	if _, err := KSBinned([]float64{0, 0}, []float64{1, 1}); err == nil {
		t.Error("KSBinned of an empty distribution: no error")
	}
	for name, tc := range map[string]struct {
		ref, cur []float64
		want     float64
	}{
		"same":    {[]float64{3, 1, 2}, []float64{1, 2, 3}, 0},
		"overlap": {[]float64{1, 2, 3, 4}, []float64{3, 4, 5, 6}, 0.5},
		"apart":   {[]float64{1, 2}, []float64{3, 4}, 1},
		"ties":    {[]float64{1, 1, 2, 2}, []float64{1, 2, 2, 2}, 0.25},
		"sizes":   {[]float64{1, 2, 3}, []float64{2}, 1.0 / 3},
		"nan":     {[]float64{1, math.NaN()}, []float64{1, 2}, math.NaN()},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := KSSamples(tc.ref, tc.cur)
			if err != nil || !near(got, tc.want, 1e-12) {
				t.Errorf("KSSamples = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestWasserstein(t *testing.T) {
	bounds := []float64{0, 1, 2} // buckets (-inf,0] (0,1] (1,2] (2,inf) at 0, .5, 1.5, 2
	for name, tc := range map[string]struct {
		ref, cur []float64
		want     float64
	}{
		"equal":          {[]float64{1, 2, 3, 4}, []float64{1, 2, 3, 4}, 0},
		"one bin over":   {[]float64{0, 1, 0, 0}, []float64{0, 0, 1, 0}, 0.5},  // moved 1 of range 2
		"end to end":     {[]float64{1, 0, 0, 0}, []float64{0, 0, 0, 1}, 1},    // moved 2 of range 2
		"half moved":     {[]float64{0, 2, 0, 0}, []float64{0, 1, 1, 0}, 0.25}, // half the mass by 1
		"outer to first": {[]float64{1, 0, 0, 0}, []float64{0, 1, 0, 0}, 0.25}, // 0 → .5
	} {
		t.Run(name, func(t *testing.T) {
			got, err := Wasserstein(bounds, tc.ref, tc.cur)
			if err != nil || !near(got, tc.want, 1e-12) {
				t.Errorf("Wasserstein = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
	if _, err := Wasserstein([]float64{1}, []float64{1, 1}, []float64{1, 1}); err == nil {
		t.Error("one bound: no error")
	}
}

func TestQuantile(t *testing.T) {
	b, c := []float64{0.1, 0.5, 1}, []float64{11, 22, 33, 44}
	for q, want := range map[float64]float64{0.5: 0.5 + 22.0/33*0.5, 0.99: 1, 0.05: 0.1 * 5.5 / 11} {
		if got := Quantile(b, c, q); !near(got, want, 1e-12) {
			t.Errorf("Quantile(%v) = %v, want %v", q, got, want)
		}
	}
	if !math.IsNaN(Quantile(b, []float64{0, 0, 0, 0}, 0.5)) {
		t.Error("empty: want NaN")
	}
}

// TestCountAbove: the inverse of Quantile inside closed buckets; the open
// last bucket counts whole below the last bound, not at all above it.
func TestCountAbove(t *testing.T) {
	b, c := []float64{0.1, 0.5, 1}, []float64{11, 22, 33, 44}
	for _, q := range []float64{0.05, 0.3, 0.5} {
		if got, want := CountAbove(b, c, Quantile(b, c, q)), 110*(1-q); !near(got, want, 1e-9) {
			t.Errorf("CountAbove(Quantile(%v)) = %v, want %v", q, got, want)
		}
	}
	for at, want := range map[float64]float64{0: 110, 0.1: 99, 0.75: 16.5 + 44, 1: 0, 2: 0} {
		if got := CountAbove(b, c, at); !near(got, want, 1e-9) {
			t.Errorf("CountAbove(%v) = %v, want %v", at, got, want)
		}
	}
}
