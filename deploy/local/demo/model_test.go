package demo

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/drover-ml/drover/shared/manifest"
	"github.com/drover-ml/drover/shared/oip"
	"github.com/drover-ml/drover/shared/runtime"
	"github.com/drover-ml/drover/shared/testenv"
)

func TestDatasetShipped(t *testing.T) {
	d, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if d.Rows() != 569 || len(d.Features) != 30 || d.Classes() != 2 {
		t.Fatalf("rows %d, features %d, classes %d; want 569, 30, 2", d.Rows(), len(d.Features), d.Classes())
	}
	benign := 0
	for _, y := range d.Y {
		benign += int(y)
	}
	if benign != 357 {
		t.Errorf("%d benign rows, want 357", benign)
	}
	// WriteCSV and ParseCSV round-trip.
	var b strings.Builder
	if err := d.WriteCSV(&b, Label); err != nil {
		t.Fatal(err)
	}
	back, err := ParseCSV(strings.NewReader(b.String()), Label)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, d) {
		t.Error("the data set written and read back differs")
	}
}

func TestParseCSVErrors(t *testing.T) {
	for name, tc := range map[string]struct{ csv, want string }{
		"no label column": {"a,b\n1,2\n", `no label column "y"`},
		"no feature":      {"y\n1\n", "no feature column"},
		"bad number":      {"a,y\nx,1\n", `line 2: column a: "x" is not a finite number`},
		"infinite":        {"a,y\nInf,1\n", `line 2: column a: "Inf" is not a finite number`},
		"bad class":       {"a,y\n1,-1\n", `line 2: column y: "-1" is not a class`},
		"ragged":          {"a,y\n1,1,3\n", "line 2:"},
		"no rows":         {"a,y\n", "no data rows"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseCSV(strings.NewReader(tc.csv), "y")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func FuzzParseCSV(f *testing.F) {
	f.Add([]byte("a,b,y\n1,2,0\n3,4,1\n"))
	f.Add([]byte(DataCSV[:2000]))
	f.Add([]byte("y,a\n1,NaN\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseCSV(strings.NewReader(string(b)), "y")
		if err != nil {
			return
		}
		for r, x := range d.X {
			if len(x) != len(d.Features) || d.Y[r] < 0 {
				t.Fatalf("row %d: %d values for %d features, class %d", r, len(x), len(d.Features), d.Y[r])
			}
		}
	})
}

// TestModelAndDrift trains the demo model, serves it with ONNX Runtime and
// checks the drift's effect: the model is right on the clean rows, clearly
// worse on the drifted ones, and a model retrained on the drifted rows is
// as good as the first was on the clean ones (so the loop can restore the
// metric).
func TestModelAndDrift(t *testing.T) {
	ctx := context.Background()
	d, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	acc, err := WriteVersion(ctx, d, dir)
	if err != nil {
		t.Fatal(err)
	}
	if acc < 0.97 {
		t.Errorf("training accuracy %.3f, want ≥ 0.97", acc)
	}
	mf, err := manifest.Parse([]byte(Manifest))
	if err != nil || mf.Optimize == nil || mf.Optimize.Families[0].Name != "logistic_regression" || mf.Optimize.IncludeTrainingData {
		t.Fatalf("the demo's manifest: %+v, %v", mf, err)
	}
	train, err := os.ReadFile(filepath.Join(dir, TrainingFile))
	if err != nil || !strings.HasPrefix(string(train), "mean_radius,") {
		t.Fatalf("training data: %v %.40q", err, train)
	}

	if err := runtime.Init(testenv.ONNXRuntimeLib(t)); err != nil {
		t.Fatal(err)
	}
	rt := &runtime.ONNX{Options: runtime.Options{IntraOpThreads: 1, InterOpThreads: 1}}
	m, err := rt.Load(ctx, filepath.Join(dir, manifest.ModelFile))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	sig := m.Signature()
	if len(sig.Inputs) != 1 || sig.Inputs[0].Name != Input || !reflect.DeepEqual(sig.Inputs[0].Shape, []int64{-1, 30}) {
		t.Fatalf("inputs %+v", sig.Inputs)
	}
	if len(sig.Outputs) != 2 || sig.Outputs[0].Name != LabelOutput || sig.Outputs[0].Datatype != oip.INT64 ||
		sig.Outputs[1].Name != ProbOutput || !reflect.DeepEqual(sig.Outputs[1].Classes, []string{"0", "1"}) {
		t.Fatalf("outputs %+v", sig.Outputs)
	}
	served := func(d *Dataset) float64 {
		flat := make([]float32, 0, d.Rows()*30)
		for _, x := range d.X {
			for _, v := range x {
				flat = append(flat, float32(v))
			}
		}
		out, err := m.Run(ctx, []oip.Tensor{{Name: Input, Datatype: oip.FP32, Shape: []int64{int64(d.Rows()), 30}, Data: flat}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		labels := out[0].Data.([]int64)
		probs := out[1].Data.([]float32)
		right := 0
		for r, l := range labels {
			if l == d.Y[r] {
				right++
			}
			if s := probs[2*r] + probs[2*r+1]; math.Abs(float64(s)-1) > 1e-5 || (probs[2*r+1] > 0.5) != (l == 1) {
				t.Fatalf("row %d: label %d, probabilities %v", r, l, probs[2*r:2*r+2])
			}
		}
		return float64(right) / float64(d.Rows())
	}
	if got := served(d); math.Abs(got-acc) > 0.005 {
		t.Errorf("ONNX Runtime's accuracy %.4f, the trained model's %.4f", got, acc)
	}

	dr, err := NewDrift(d, DefaultSizeFactor)
	if err != nil {
		t.Fatal(err)
	}
	drifted := dr.ApplyAll(d)
	after := served(drifted)
	t.Logf("accuracy: clean %.3f, drifted %.3f", acc, after)
	if after > acc-0.2 {
		t.Errorf("accuracy on drifted rows %.3f, want at least 0.2 below %.3f", after, acc)
	}
	m2, err := Train(ctx, drifted)
	if err != nil {
		t.Fatal(err)
	}
	if re := ModelAccuracy(m2, drifted); re < acc-0.01 {
		t.Errorf("retrained on the drifted rows: accuracy %.3f, want ≥ %.3f", re, acc-0.01)
	}
}
