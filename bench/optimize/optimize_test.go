package main

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drover-ml/drover/collector/optimize/learn"
)

func loadNamed(t *testing.T, name string) *learn.Dataset {
	t.Helper()
	ds, ok := lookupDataset(name)
	if !ok {
		t.Fatalf("no data set %q", name)
	}
	d, err := ds.load()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDatasetsLoad(t *testing.T) {
	want := map[string][3]int{ // rows, features, classes
		"breast_cancer": {569, 30, 2},
		"wine":          {178, 13, 3},
		"digits":        {1797, 64, 10},
	}
	for _, ds := range datasets {
		t.Run(ds.name, func(t *testing.T) {
			d := loadNamed(t, ds.name)
			got := [3]int{d.Rows(), d.Features(), d.Classes}
			if got != want[ds.name] {
				t.Fatalf("rows, features, classes = %v, want %v", got, want[ds.name])
			}
			counts := learn.ClassCounts(d)
			for c, n := range counts {
				if n == 0 {
					t.Errorf("class %d has no rows", c)
				}
			}
		})
	}
	// The first row of breast_cancer.csv, as written in the file.
	d := loadNamed(t, "breast_cancer")
	if x := d.X.At(0, 0); x != 17.99 {
		t.Errorf("breast_cancer row 0 feature 0 = %v, want 17.99", x)
	}
	if d.Y[0] != 0 {
		t.Errorf("breast_cancer row 0 class = %v, want 0", d.Y[0])
	}
}

func TestParseCSVRefuses(t *testing.T) {
	for name, tc := range map[string]struct {
		in     string
		header bool
		want   string
	}{
		"row count":        {"3,2,a,b\n1,2,0\n3,4,1\n", true, "2 rows, the header says 3"},
		"feature count":    {"2,3,a,b\n1,2,0\n3,4,1\n", true, "3 columns, want 3 features"},
		"not a number":     {"1,x,0\n3,4,1\n", false, `line 1, column 2: "x" is not a finite number`},
		"infinite":         {"1,Inf,0\n3,4,1\n", false, "is not a finite number"},
		"bad class":        {"1,2,0.5\n3,4,1\n", false, `class "0.5" is not a whole number`},
		"negative class":   {"1,2,-1\n", false, "is not a whole number in [0, 1000]"},
		"single class":     {"1,2,0\n3,4,0\n", false, "class"},
		"no rows":          {"", false, "no rows"},
		"header counts":    {"a,b,c\n", true, `row count "a"`},
		"only a class":     {"1\n", false, "at least a feature and the class"},
		"ragged":           {"1,2,0\n1,1\n", false, "line 2: 2 columns"},
		"absent class 1":   {"1,2,0\n3,4,2\n", false, "class 1 has no rows"},
		"header too short": {"5\n", true, "no row and feature counts"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := parseCSV(strings.NewReader(tc.in), tc.header)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func FuzzParseCSV(f *testing.F) {
	f.Add("2,2,a,b\n1,2,0\n3,4,1\n", true)
	f.Add("1,2,0\n3,4,1\n", false)
	f.Add("1,NaN,0\n", false)
	f.Fuzz(func(t *testing.T, in string, header bool) {
		d, err := parseCSV(strings.NewReader(in), header)
		if err != nil {
			return
		}
		if err := learn.Validate(d); err != nil {
			t.Fatalf("parseCSV returned a data set Validate refuses: %v", err)
		}
	})
}

// TestDroverSearch runs the Drover side on small grids (no Python): the
// scores are those of a sound search and do not depend on Procs.
func TestDroverSearch(t *testing.T) {
	ctx := context.Background()
	wine := loadNamed(t, "wine")
	for _, tc := range []struct {
		name    string
		d       *learn.Dataset
		family  string
		grid    learn.Grid
		minBest float64
	}{
		{"wine logistic", wine, "logistic_regression", learn.Grid{"C": {0.01, 1}}, 0.95},
		{"wine forest", wine, "random_forest", learn.Grid{"n_estimators": {5}, "max_depth": {0, 3}}, 0.85},
		// C = 0.001 on breast_cancer once failed the whole search (an
		// L-BFGS line search at the optimum).
		{"breast_cancer logistic", loadNamed(t, "breast_cancer"), "logistic_regression", learn.Grid{"C": {0.001}}, 0.85},
	} {
		t.Run(tc.name, func(t *testing.T) {
			one, err := runDrover(ctx, tc.d, tc.family, tc.grid, 3, 1, 1, 7)
			if err != nil {
				t.Fatal(err)
			}
			two, err := runDrover(ctx, tc.d, tc.family, tc.grid, 3, 2, 2, 7)
			if err != nil {
				t.Fatal(err)
			}
			if len(one.walls) != 1 || len(two.walls) != 2 {
				t.Fatalf("wall times %d and %d, want 1 and 2 (repeat)", len(one.walls), len(two.walls))
			}
			if got := one.best(); got < tc.minBest || got > 1 {
				t.Errorf("best CV accuracy %.4f, want in [%.2f, 1]", got, tc.minBest)
			}
			if len(one.result.Results) != len(learn.Points(tc.grid)) {
				t.Fatalf("%d results for %d grid points", len(one.result.Results), len(learn.Points(tc.grid)))
			}
			for i, r := range one.result.Results {
				if !slices.Equal(r.Scores, two.result.Results[i].Scores) {
					t.Errorf("%s: fold scores %v with 1 proc, %v with 2", r.Params, r.Scores, two.result.Results[i].Scores)
				}
			}
		})
	}
}

func TestSklearnGrid(t *testing.T) {
	lr, err := sklearnGrid("logistic_regression", learn.Classification, learn.Grid{"C": {0.1, 10}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(lr)
	if want := `{"logisticregression__C":[0.1,10],"logisticregression__max_iter":[100]}`; string(b) != want {
		t.Errorf("logistic grid %s, want %s", b, want)
	}
	rf, err := sklearnGrid("random_forest", learn.Classification, learn.Grid{"n_estimators": {50, 100}, "max_depth": {0, 8}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ = json.Marshal(rf)
	if want := `{"max_depth":[null,8],"max_features":["sqrt"],"min_samples_leaf":[1],"n_estimators":[50,100]}`; string(b) != want {
		t.Errorf("forest grid %s, want %s", b, want)
	}
	for _, fam := range benchFamilies {
		f, _ := learn.Lookup(fam)
		if _, err := sklearnGrid(fam, learn.Classification, f.DefaultGrid(learn.Classification)); err != nil {
			t.Errorf("%s default grid: %v", fam, err)
		}
	}
	if _, err := sklearnGrid("random_forest", learn.Classification, learn.Grid{"C": {1}}); err == nil || !strings.Contains(err.Error(), `unknown parameter "C"`) {
		t.Errorf("unknown parameter: err = %v", err)
	}
	if _, err := sklearnGrid("nope", learn.Classification, nil); err == nil {
		t.Error("unknown family accepted")
	}
}

func TestNewSpec(t *testing.T) {
	d := loadNamed(t, "wine")
	folds, err := learn.Folds(d, 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := newSpec(d, "random_forest", learn.Grid{"n_estimators": {10}}, folds, 2, 3, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(spec.X) != 178 || len(spec.Y) != 178 || len(spec.X[5]) != 13 {
		t.Fatalf("spec holds %d×%d rows and %d labels", len(spec.X), len(spec.X[5]), len(spec.Y))
	}
	if spec.X[0][0] != d.X.At(0, 0) || spec.Y[177] != int(d.Y[177]) {
		t.Error("spec rows differ from the data set")
	}
	for i, f := range folds {
		if !slices.Equal(spec.Folds[i][0], f.Train) || !slices.Equal(spec.Folds[i][1], f.Test) {
			t.Fatalf("fold %d differs from Drover's", i)
		}
	}
	if spec.NJobs != 2 || spec.Repeat != 3 || spec.Seed != 3 {
		t.Errorf("n_jobs %d repeat %d seed %d", spec.NJobs, spec.Repeat, spec.Seed)
	}
}

func TestWriteTable(t *testing.T) {
	res := func(mean float64) *learn.SearchResult {
		return &learn.SearchResult{Results: []learn.CandidateResult{{Candidate: learn.Candidate{Params: learn.Params{"C": 1}}, Mean: mean}}}
	}
	rows := []row{
		{dataset: "wine", family: "logistic_regression", points: 7,
			drover: &droverRun{walls: []time.Duration{time.Second}, result: res(0.98)},
			sk:     &sklearnResult{WallS: []float64{2}, BestScore: 0.98, BestParams: map[string]any{"logisticregression__C": 1.0}}},
		{dataset: "digits", family: "random_forest", points: 4,
			drover: &droverRun{walls: []time.Duration{3 * time.Second, 5 * time.Second, 4 * time.Second}, result: res(0.96)},
			sk:     &sklearnResult{WallS: []float64{2, 9, 2}, BestScore: 0.97, BestParams: map[string]any{"max_depth": nil}}},
	}
	var buf bytes.Buffer
	if missed := writeTable(&buf, rows, true); missed != 1 {
		t.Errorf("missed %d rows, want 1", missed)
	}
	out := buf.String()
	for _, want := range []string{
		"0.50", // wine: 1 s / 2 s
		"2.00", // digits: median 4 s / median 2 s
		"MISSED time+score",
		"-1.00", // 0.96 − 0.97
		"sklearn C=1",
		"sklearn max_depth=None",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}
