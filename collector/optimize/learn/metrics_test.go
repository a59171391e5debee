package learn

import (
	"math"
	"strings"
	"testing"

	"gonum.org/v1/gonum/mat"
)

func classData(y []float64, k int) *Dataset {
	return &Dataset{X: mat.NewDense(len(y), 1, make([]float64, len(y))), Y: y, Task: Classification, Classes: k}
}

func regData(y []float64) *Dataset {
	return &Dataset{X: mat.NewDense(len(y), 1, make([]float64, len(y))), Y: y, Task: Regression}
}

// The expected values are computed by hand (and agree with scikit-learn's
// documented examples for auc, r2, mse and mae).
func TestScoreHandComputed(t *testing.T) {
	three := classData([]float64{0, 1, 2, 2}, 3)
	threeP := [][]float64{{0.7, 0.2, 0.1}, {0.1, 0.6, 0.3}, {0.2, 0.5, 0.3}, {0.1, 0.2, 0.7}}
	binary := classData([]float64{0, 0, 1, 1}, 2)
	binaryP := [][]float64{{0.9, 0.1}, {0.6, 0.4}, {0.65, 0.35}, {0.2, 0.8}}
	reg := regData([]float64{3, -0.5, 2, 7})
	regP := [][]float64{{2.5}, {0}, {2}, {8}}
	cases := map[string]struct {
		metric string
		d      *Dataset
		preds  [][]float64
		want   float64
	}{
		"accuracy":            {MetricAccuracy, three, threeP, 0.75},
		"f1 macro":            {MetricF1Macro, three, threeP, (1 + 2.0/3 + 2.0/3) / 3},
		"log loss":            {MetricLogLoss, three, threeP, -(math.Log(0.7) + math.Log(0.6) + math.Log(0.3) + math.Log(0.7)) / 4},
		"auc one-vs-rest":     {MetricAUC, three, threeP, (1 + 1 + 0.875) / 3},
		"auc binary":          {MetricAUC, binary, binaryP, 0.75},
		"accuracy binary":     {MetricAccuracy, binary, binaryP, 0.75},
		"r2":                  {MetricR2, reg, regP, 0.9486081370449679},
		"mse":                 {MetricMSE, reg, regP, 0.375},
		"mae":                 {MetricMAE, reg, regP, 0.5},
		"r2 constant perfect": {MetricR2, regData([]float64{1, 1}), [][]float64{{1}, {1}}, 1},
		"r2 constant missed":  {MetricR2, regData([]float64{1, 1}), [][]float64{{1}, {2}}, 0},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := Score(tc.metric, tc.d, tc.preds)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(got-tc.want) > 1e-12 {
				t.Fatalf("%s = %v, want %v", tc.metric, got, tc.want)
			}
		})
	}
}

func TestScoreErrors(t *testing.T) {
	three := classData([]float64{0, 1, 2}, 3)
	cases := map[string]struct {
		metric string
		d      *Dataset
		preds  [][]float64
		want   string
	}{
		"unknown metric":      {"precision", three, nil, `unknown metric "precision"`},
		"wrong task":          {MetricR2, three, nil, `metric "r2" scores regression models; this model does classification`},
		"classification on r": {MetricAccuracy, regData([]float64{1}), [][]float64{{1}}, "scores classification"},
		"wrong length":        {MetricAccuracy, three, [][]float64{{1, 0, 0}}, "1 predictions for 3 rows"},
		"wrong width":         {MetricAccuracy, three, [][]float64{{1, 0}, {1, 0}, {1, 0}}, "has 2 values, want 3"},
		"auc single class":    {MetricAUC, classData([]float64{1, 1}, 2), [][]float64{{0.5, 0.5}, {0.2, 0.8}}, "both positive and negative"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Score(tc.metric, tc.d, tc.preds)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestMetricDirectionAndDefaults(t *testing.T) {
	for _, m := range Metrics() {
		want := m == MetricLogLoss || m == MetricMSE || m == MetricMAE
		if LowerIsBetter(m) != want {
			t.Errorf("LowerIsBetter(%s) = %v", m, !want)
		}
	}
	if DefaultMetric(Classification) != "accuracy" || DefaultMetric(Regression) != "r2" {
		t.Fatalf("defaults %s, %s", DefaultMetric(Classification), DefaultMetric(Regression))
	}
	if !Better(MetricMSE, 1, 2) || Better(MetricAccuracy, 0.5, 0.6) || Better(MetricAccuracy, math.NaN(), 0) {
		t.Fatal("Better has the wrong direction")
	}
}

func TestBootstrap(t *testing.T) {
	n := 200
	y := make([]float64, n)
	oldP, newP := make([][]float64, n), make([][]float64, n)
	for i := range n {
		y[i] = float64(i % 2)
		newP[i] = []float64{1 - y[i], y[i]} // always right
		if i%4 < 2 {
			oldP[i] = newP[i]
		} else {
			oldP[i] = []float64{y[i], 1 - y[i]} // wrong on half the rows
		}
	}
	d := classData(y, 2)
	ci, err := Bootstrap(MetricAccuracy, d, oldP, newP, 500, 7)
	if err != nil {
		t.Fatal(err)
	}
	if ci.Level != 0.95 || ci.Low < 0.4 || ci.High > 0.6 || ci.Low > 0.5 || ci.High < 0.5 {
		t.Fatalf("interval %+v, want around the difference 0.5", ci)
	}
	again, _ := Bootstrap(MetricAccuracy, d, oldP, newP, 500, 7)
	if again != ci {
		t.Fatalf("not deterministic: %+v then %+v", ci, again)
	}
	same, err := Bootstrap(MetricAccuracy, d, oldP, oldP, 100, 1)
	if err != nil || same.Low != 0 || same.High != 0 {
		t.Fatalf("identical predictions: %+v, %v", same, err)
	}
}
