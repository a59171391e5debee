package evaluate

import (
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/drover-ml/drover/shared/manifest"
	"github.com/drover-ml/drover/shared/oip"
	"github.com/drover-ml/drover/shared/runtime"
)

func tensor(name string, dt oip.Datatype, shape []int64, data any) oip.Tensor {
	return oip.Tensor{Name: name, Datatype: dt, Shape: shape, Data: data}
}

func TestExtractClassification(t *testing.T) {
	zipmap := runtime.Signature{Outputs: []runtime.TensorSpec{
		{Name: "label", Datatype: oip.BYTES, Shape: []int64{-1}},
		{Name: "probs", Datatype: oip.FP32, Shape: []int64{-1, 3}, Classes: []string{"setosa", "versicolor", "virginica"}},
	}}
	probs := tensor("probs", oip.FP32, []int64{2, 3}, []float32{0.25, 0.5, 0.25, 0.75, 0.125, 0.125})
	tests := map[string]struct {
		sig         runtime.Signature
		outputs     []oip.Tensor
		opts        ExtractOptions
		wantClass   []string
		wantProbs   [][]float64
		wantClasses []string
	}{
		"INT64 labels only": {
			outputs:   []oip.Tensor{tensor("y", oip.INT64, []int64{3}, []int64{2, 0, -1})},
			wantClass: []string{"2", "0", "-1"},
		},
		"INT32 labels [N,1]": {
			outputs:   []oip.Tensor{tensor("y", oip.INT32, []int64{2, 1}, []int32{7, 8})},
			wantClass: []string{"7", "8"},
		},
		"BOOL labels": {
			outputs:   []oip.Tensor{tensor("y", oip.BOOL, []int64{2}, []bool{true, false})},
			wantClass: []string{"1", "0"},
		},
		"UINT8 labels": {
			outputs:   []oip.Tensor{tensor("y", oip.UINT8, []int64{1}, []uint8{255})},
			wantClass: []string{"255"},
		},
		"BYTES labels and probabilities with classes (ZipMap)": {
			sig: zipmap,
			outputs: []oip.Tensor{
				tensor("label", oip.BYTES, []int64{2}, [][]byte{[]byte("versicolor"), []byte("virginica")}),
				probs,
			},
			// The label output wins over the argmax (row 2).
			wantClass:   []string{"versicolor", "virginica"},
			wantProbs:   [][]float64{{0.25, 0.5, 0.25}, {0.75, 0.125, 0.125}},
			wantClasses: []string{"setosa", "versicolor", "virginica"},
		},
		"probabilities only, classes from the signature": {
			sig:         zipmap,
			outputs:     []oip.Tensor{probs},
			wantClass:   []string{"versicolor", "setosa"},
			wantProbs:   [][]float64{{0.25, 0.5, 0.25}, {0.75, 0.125, 0.125}},
			wantClasses: []string{"setosa", "versicolor", "virginica"},
		},
		"probabilities without classes": {
			outputs:     []oip.Tensor{tensor("p", oip.FP64, []int64{1, 2}, []float64{0.5, 0.5})},
			wantClass:   []string{"0"}, // first on ties
			wantProbs:   [][]float64{{0.5, 0.5}},
			wantClasses: []string{"0", "1"},
		},
		"FP16 probabilities": {
			outputs:     []oip.Tensor{tensor("p", oip.FP16, []int64{1, 2}, []uint16{oip.Float64ToHalf(0.25), oip.Float64ToHalf(0.75)})},
			wantClass:   []string{"1"},
			wantProbs:   [][]float64{{0.25, 0.75}},
			wantClasses: []string{"0", "1"},
		},
		"logits get a softmax": {
			outputs:     []oip.Tensor{tensor("logits", oip.FP32, []int64{1, 2}, []float32{0, float32(math.Log(3))})},
			wantClass:   []string{"1"},
			wantProbs:   [][]float64{{0.25, 0.75}},
			wantClasses: []string{"0", "1"},
		},
		"unnormalized rows are normalized, zero rows uniform": {
			outputs:     []oip.Tensor{tensor("p", oip.FP64, []int64{2, 2}, []float64{0.2, 0.6, 0, 0})},
			wantClass:   []string{"1", "0"},
			wantProbs:   [][]float64{{0.25, 0.75}, {0.5, 0.5}},
			wantClasses: []string{"0", "1"},
		},
		"named output chooses among label outputs": {
			outputs: []oip.Tensor{
				tensor("a", oip.INT64, []int64{1}, []int64{1}),
				tensor("b", oip.INT64, []int64{1}, []int64{2}),
			},
			opts:      ExtractOptions{Output: "b"},
			wantClass: []string{"2"},
		},
		"named probability output still takes the label output": {
			sig: zipmap,
			outputs: []oip.Tensor{
				probs,
				tensor("label", oip.BYTES, []int64{2}, [][]byte{[]byte("x"), []byte("y")}),
			},
			opts:        ExtractOptions{Output: "probs"},
			wantClass:   []string{"x", "y"},
			wantProbs:   [][]float64{{0.25, 0.5, 0.25}, {0.75, 0.125, 0.125}},
			wantClasses: []string{"setosa", "versicolor", "virginica"},
		},
		"unusable outputs are skipped": {
			outputs: []oip.Tensor{
				tensor("embedding", oip.FP32, []int64{1, 2, 2}, []float32{1, 2, 3, 4}),
				tensor("y", oip.INT64, []int64{1}, []int64{4}),
			},
			wantClass: []string{"4"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			preds, classes, err := ExtractPredictions(manifest.TaskClassification, tc.sig, tc.outputs, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(preds) != len(tc.wantClass) {
				t.Fatalf("got %d predictions, want %d", len(preds), len(tc.wantClass))
			}
			for i, p := range preds {
				if !p.HasClass || p.Class != tc.wantClass[i] {
					t.Errorf("row %d: class %q (has %v), want %q", i, p.Class, p.HasClass, tc.wantClass[i])
				}
				var want []float64
				if tc.wantProbs != nil {
					want = tc.wantProbs[i]
				}
				if !closeSlices(p.Probs, want, 1e-6) {
					t.Errorf("row %d: probs %v, want %v", i, p.Probs, want)
				}
			}
			if !reflect.DeepEqual(classes, tc.wantClasses) {
				t.Errorf("classes %q, want %q", classes, tc.wantClasses)
			}
		})
	}
}

func closeSlices(a, b []float64, tol float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Abs(a[i]-b[i]) > tol {
			return false
		}
	}
	return true
}

func TestExtractRegression(t *testing.T) {
	tests := map[string]struct {
		outputs []oip.Tensor
		opts    ExtractOptions
		want    []float64
	}{
		"FP32 [N]":   {outputs: []oip.Tensor{tensor("y", oip.FP32, []int64{2}, []float32{1.5, -2})}, want: []float64{1.5, -2}},
		"FP64 [N,1]": {outputs: []oip.Tensor{tensor("y", oip.FP64, []int64{2, 1}, []float64{3, 4})}, want: []float64{3, 4}},
		"first usable output": {
			outputs: []oip.Tensor{tensor("id", oip.INT64, []int64{1}, []int64{9}), tensor("y", oip.FP64, []int64{1}, []float64{7})},
			want:    []float64{7},
		},
		"named output": {
			outputs: []oip.Tensor{tensor("a", oip.FP64, []int64{1}, []float64{1}), tensor("b", oip.FP64, []int64{1}, []float64{2})},
			opts:    ExtractOptions{Output: "b"},
			want:    []float64{2},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			preds, classes, err := ExtractPredictions(manifest.TaskRegression, runtime.Signature{}, tc.outputs, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if classes != nil {
				t.Errorf("classes = %q, want nil", classes)
			}
			got := make([]float64, len(preds))
			for i, p := range preds {
				got[i] = p.Value
				if p.HasClass || p.Probs != nil {
					t.Errorf("row %d: regression prediction with a class: %+v", i, p)
				}
			}
			if !closeSlices(got, tc.want, 0) {
				t.Errorf("values %v, want %v", got, tc.want)
			}
		})
	}
}

func TestExtractErrors(t *testing.T) {
	sig := runtime.Signature{Outputs: []runtime.TensorSpec{{Name: "p", Datatype: oip.FP32, Shape: []int64{-1, 3}, Classes: []string{"a", "b", "c"}}}}
	tests := map[string]struct {
		task    string
		outputs []oip.Tensor
		opts    ExtractOptions
		want    string
	}{
		"unknown task": {
			task: "ranking", outputs: []oip.Tensor{tensor("y", oip.FP32, []int64{1}, []float32{1})},
			want: `unknown task "ranking"`,
		},
		"invalid tensor": {
			task: manifest.TaskRegression, outputs: []oip.Tensor{tensor("y", oip.FP32, []int64{2}, []float32{1})},
			want: `tensor "y": shape [2] needs 2 elements, got 1`,
		},
		"named output missing": {
			task: manifest.TaskClassification, outputs: []oip.Tensor{tensor("y", oip.INT64, []int64{1}, []int64{1})},
			opts: ExtractOptions{Output: "label"},
			want: `output "label" is not among the model's outputs ("y" INT64 [1])`,
		},
		"named output unusable for classification": {
			task: manifest.TaskClassification, outputs: []oip.Tensor{tensor("y", oip.FP32, []int64{1}, []float32{1})},
			opts: ExtractOptions{Output: "y"},
			want: `output "y" (FP32 [1]) is neither class labels`,
		},
		"no classification output": {
			task: manifest.TaskClassification, outputs: []oip.Tensor{tensor("y", oip.FP32, []int64{2, 1}, []float32{1, 2})},
			want: `no output holds class labels`,
		},
		"no regression output": {
			task: manifest.TaskRegression, outputs: []oip.Tensor{tensor("p", oip.FP32, []int64{1, 2}, []float32{1, 2})},
			want: `no output holds regression values`,
		},
		"named output unusable for regression": {
			task: manifest.TaskRegression, outputs: []oip.Tensor{tensor("y", oip.BYTES, []int64{1}, [][]byte{[]byte("x")})},
			opts: ExtractOptions{Output: "y"},
			want: `output "y" (BYTES [1]) does not hold regression values`,
		},
		"row counts differ": {
			task: manifest.TaskClassification,
			outputs: []oip.Tensor{
				tensor("y", oip.INT64, []int64{2}, []int64{1, 2}),
				tensor("p", oip.FP32, []int64{1, 3}, []float32{0.2, 0.3, 0.5}),
			},
			want: `outputs "y" and "p" have 2 and 1 rows`,
		},
		"classes do not match the columns": {
			task:    manifest.TaskClassification,
			outputs: []oip.Tensor{tensor("p", oip.FP32, []int64{1, 2}, []float32{0.5, 0.5})},
			want:    `output "p" has 2 columns but the model names 3 classes`,
		},
		"NaN probability": {
			task:    manifest.TaskClassification,
			outputs: []oip.Tensor{tensor("q", oip.FP64, []int64{2, 2}, []float64{0.5, 0.5, math.NaN(), 1})},
			want:    `output "q" row 1: column 0 is NaN`,
		},
		"infinite regression value": {
			task:    manifest.TaskRegression,
			outputs: []oip.Tensor{tensor("y", oip.FP64, []int64{2}, []float64{1, math.Inf(-1)})},
			want:    `output "y" row 1 is -Inf`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, _, err := ExtractPredictions(tc.task, sig, tc.outputs, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
