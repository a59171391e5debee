package demo

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"

	"gonum.org/v1/gonum/mat"

	"github.com/drover-ml/drover/collector/optimize/export"
	"github.com/drover-ml/drover/collector/optimize/learn"
	"github.com/drover-ml/drover/collector/optimize/learn/linear"
	"github.com/drover-ml/drover/shared/manifest"
	"github.com/drover-ml/drover/shared/onnx"
)

// The demo model's signature, skl2onnx's for a scikit-learn classifier
// with integer classes: one FLOAT input [N, features], the label INT64
// [N] and the probabilities as a sequence of maps (ZipMap).
const (
	Input       = "float_input"
	LabelOutput = "output_label"
	ProbOutput  = "output_probability"
	// TrainingFile is the training data's name in the version published
	// (the registry computes the manifest's reference bins from it; the
	// optimizer's name for it, not added to its rows: the manifest does
	// not set optimize.include_training_data).
	TrainingFile = manifest.TrainingFile
	// ModelName is the demo model's name in the registry.
	ModelName = "demo"
)

// Opset versions the demo model imports (those skl2onnx 1.16 writes for a
// linear pipeline); IR version 8 loads in ONNX Runtime 1.30.
const (
	irVersion = 8
	opset     = 13
	mlOpset   = 1
)

// Signature returns the export signature of the demo model for d.
func Signature(d *Dataset) *export.Signature {
	classes := make([]int64, d.Classes())
	for i := range classes {
		classes[i] = int64(i)
	}
	return &export.Signature{
		Input: Input, InputType: onnx.TensorProto_FLOAT, Features: len(d.Features),
		Task: learn.Classification, LabelOutput: LabelOutput, ClassInts: classes,
		ProbOutput: ProbOutput, ZipMap: true,
		IRVersion: irVersion, OpsetVersion: opset, MLOpsetVersion: mlOpset,
	}
}

// Train fits the initial demo model on d: the optimizer's own
// logistic_regression family (package learn/linear) at C = 1.
func Train(ctx context.Context, d *Dataset) (learn.Model, error) {
	ld := &learn.Dataset{X: mat.NewDense(d.Rows(), len(d.Features), nil), Y: make([]float64, d.Rows()),
		Task: learn.Classification, Classes: d.Classes()}
	for r, x := range d.X {
		ld.X.SetRow(r, x)
		ld.Y[r] = float64(d.Y[r])
	}
	m, err := linear.Logistic{}.Fit(ctx, ld, learn.Params{"C": 1, "max_iter": 200}, 1)
	if err != nil {
		return nil, fmt.Errorf("train the demo model: %w", err)
	}
	return m, nil
}

// Export writes m as an ONNX graph with sig, through the optimizer's own
// export (export.Build): the model's core (Scaler, LinearClassifier) and
// the outputs skl2onnx names, the probabilities through a ZipMap.
func Export(m learn.Model, sig *export.Signature) ([]byte, error) {
	em, ok := m.(export.Exportable)
	if !ok {
		return nil, fmt.Errorf("export the demo model: %T cannot be exported", m)
	}
	g, err := export.Build(em, sig, "drover-demo")
	if err != nil {
		return nil, fmt.Errorf("export the demo model: %w", err)
	}
	b, err := onnx.Marshal(g)
	if err != nil {
		return nil, fmt.Errorf("export the demo model: %w", err)
	}
	return b, nil
}

// Manifest is the demo version's drover.yaml as published: the
// optimizer's search space (the registry adds the files, the lineage and
// the reference bins from the training data; model and version are its
// own). The drifted rows are the only training rows: the clean training
// data is not added (include_training_data), the job learns what the
// fleet sees since the incident.
const Manifest = `model: demo
version: 1
optimize:
  families:
    - name: logistic_regression
      grid: {C: [0.01, 0.1, 1, 10, 100]}
  folds: 5
  metric: accuracy
`

// WriteVersion trains the demo model on d and writes what `droverctl
// publish` takes into dir (created if missing): model.onnx, its
// drover.yaml (Manifest) and the training data TrainingFile, whose label
// column is Label. It returns the
// model's accuracy on d.
func WriteVersion(ctx context.Context, d *Dataset, dir string) (accuracy float64, err error) {
	m, err := Train(ctx, d)
	if err != nil {
		return 0, err
	}
	b, err := Export(m, Signature(d))
	if err != nil {
		return 0, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, fmt.Errorf("write the demo version: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, manifest.ModelFile), b, 0o644); err != nil {
		return 0, fmt.Errorf("write the demo version: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, manifest.FileName), []byte(Manifest), 0o644); err != nil {
		return 0, fmt.Errorf("write the demo version: %w", err)
	}
	var csv bytes.Buffer
	if err := d.WriteCSV(&csv, Label); err != nil {
		return 0, err
	}
	if err := os.WriteFile(filepath.Join(dir, TrainingFile), csv.Bytes(), 0o644); err != nil {
		return 0, fmt.Errorf("write the demo version: %w", err)
	}
	return ModelAccuracy(m, d), nil
}

// ModelAccuracy returns the share of d's rows m classifies right (the class of
// the largest probability).
func ModelAccuracy(m learn.Model, d *Dataset) float64 {
	out := make([]float64, d.Classes())
	right := 0
	for r, x := range d.X {
		m.Predict(x, out)
		best := 0
		for c := range out {
			if out[c] > out[best] {
				best = c
			}
		}
		if int64(best) == d.Y[r] {
			right++
		}
	}
	return float64(right) / float64(d.Rows())
}
