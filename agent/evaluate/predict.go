package evaluate

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/drover-ml/drover/shared/manifest"
	"github.com/drover-ml/drover/shared/oip"
	"github.com/drover-ml/drover/shared/runtime"
)

// Prediction is what a model answered for one row.
type Prediction struct {
	// Class is the predicted class (classification), valid when HasClass.
	Class    string
	HasClass bool
	// Probs are the class probabilities, aligned with the classes that
	// ExtractPredictions returns; nil when the model outputs none.
	Probs []float64
	// Value is the prediction of a regression model.
	Value float64
}

// ExtractOptions configure ExtractPredictions.
type ExtractOptions struct {
	// Output names the output compared with the label (a golden set's
	// output). Empty: the first usable output, and for classification also
	// the first output of the other kind (labels or probabilities).
	Output string
}

// ExtractPredictions turns a model's outputs for a batch of N rows into N
// predictions, for task manifest.TaskClassification or
// manifest.TaskRegression. sig supplies the class labels of probability
// outputs (runtime.TensorSpec.Classes).
//
// Classification uses a label output (BOOL, an integer type or BYTES, shape
// [N] or [N, 1]) and/or a probability output (FP16, FP32 or FP64, shape
// [N, C] with C >= 2). The predicted class is the label output's value when
// there is one, else the class of the highest probability (the first on
// ties). The returned classes label the probability columns: the output's
// TensorSpec.Classes, or "0".."C-1" when it has none; they are nil without a
// probability output. Probability rows are taken as they are when every
// value is in [0, 1] and they sum to 1 ± 0.001; rows in [0, 1] with another
// sum are normalized (an all-zero row becomes uniform); a row with a value
// outside [0, 1] is taken for logits and replaced by its softmax.
//
// Regression uses an FP16, FP32 or FP64 output of shape [N] or [N, 1].
//
// Errors say why no output could be used, or which row holds a NaN or an
// infinity. The returned slices are new; outputs are only read. Safe for
// concurrent use.
func ExtractPredictions(task string, sig runtime.Signature, outputs []oip.Tensor, opts ExtractOptions) ([]Prediction, []string, error) {
	for i := range outputs {
		if err := outputs[i].Validate(); err != nil {
			return nil, nil, fmt.Errorf("model output: %w", err)
		}
	}
	switch task {
	case manifest.TaskClassification:
		return extractClasses(sig, outputs, opts)
	case manifest.TaskRegression:
		preds, err := extractValues(outputs, opts)
		return preds, nil, err
	}
	return nil, nil, fmt.Errorf("unknown task %q (want %q or %q)", task, manifest.TaskClassification, manifest.TaskRegression)
}

// outKind is what an output can be used as.
type outKind int

const (
	kindNone  outKind = iota
	kindLabel         // class labels, [N] or [N, 1]
	kindProbs         // class probabilities, [N, C]
	kindValue         // regression values, [N] or [N, 1]
)

func isFloat(d oip.Datatype) bool { return d == oip.FP16 || d == oip.FP32 || d == oip.FP64 }

func isLabelType(d oip.Datatype) bool {
	switch d {
	case oip.BOOL, oip.UINT8, oip.UINT16, oip.UINT32, oip.UINT64,
		oip.INT8, oip.INT16, oip.INT32, oip.INT64, oip.BYTES:
		return true
	}
	return false
}

// kindOf says what an output of this datatype and shape can be used as for
// task. Shapes may hold -1 (a signature's dynamic dimension): the answer is
// then what the output could be.
func kindOf(task string, d oip.Datatype, shape []int64) outKind {
	column := len(shape) == 1 || len(shape) == 2 && (shape[1] == 1 || shape[1] == -1)
	switch task {
	case manifest.TaskClassification:
		switch {
		case isLabelType(d) && column:
			return kindLabel
		case isFloat(d) && len(shape) == 2 && (shape[1] >= 2 || shape[1] == -1):
			return kindProbs
		}
	case manifest.TaskRegression:
		if isFloat(d) && column {
			return kindValue
		}
	}
	return kindNone
}

func outputNames(outputs []oip.Tensor) string {
	var b strings.Builder
	for i, t := range outputs {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q %s %v", t.Name, t.Datatype, t.Shape)
	}
	return b.String()
}

func findOutput(outputs []oip.Tensor, name string) (*oip.Tensor, error) {
	for i := range outputs {
		if outputs[i].Name == name {
			return &outputs[i], nil
		}
	}
	return nil, fmt.Errorf("output %q is not among the model's outputs (%s)", name, outputNames(outputs))
}

const (
	labelShapes = "class labels (BOOL, an integer type or BYTES of shape [N] or [N, 1])"
	probShapes  = "class probabilities (FP16, FP32 or FP64 of shape [N, classes])"
	valueShapes = "regression values (FP16, FP32 or FP64 of shape [N] or [N, 1])"
)

func extractClasses(sig runtime.Signature, outputs []oip.Tensor, opts ExtractOptions) ([]Prediction, []string, error) {
	var label, probs *oip.Tensor
	if opts.Output != "" {
		t, err := findOutput(outputs, opts.Output)
		if err != nil {
			return nil, nil, err
		}
		switch kindOf(manifest.TaskClassification, t.Datatype, t.Shape) {
		case kindLabel:
			label = t
		case kindProbs:
			probs = t
		default:
			return nil, nil, fmt.Errorf("output %q (%s %v) is neither %s nor %s", t.Name, t.Datatype, t.Shape, labelShapes, probShapes)
		}
	}
	for i := range outputs {
		t := &outputs[i]
		switch kindOf(manifest.TaskClassification, t.Datatype, t.Shape) {
		case kindLabel:
			if label == nil && t != probs {
				label = t
			}
		case kindProbs:
			if probs == nil && t != label {
				probs = t
			}
		}
	}
	if label == nil && probs == nil {
		return nil, nil, fmt.Errorf("no output holds %s or %s; the outputs are %s", labelShapes, probShapes, outputNames(outputs))
	}
	n := -1
	for _, t := range []*oip.Tensor{label, probs} {
		if t == nil {
			continue
		}
		if n >= 0 && int(t.Shape[0]) != n {
			return nil, nil, fmt.Errorf("outputs %q and %q have %d and %d rows", label.Name, probs.Name, label.Shape[0], probs.Shape[0])
		}
		n = int(t.Shape[0])
	}
	preds := make([]Prediction, n)
	var classes []string
	if probs != nil {
		var err error
		if classes, err = probClasses(sig, probs); err != nil {
			return nil, nil, err
		}
		c := len(classes)
		flat := make([]float64, n*c)
		floats(flat, probs.Data)
		for r := range n {
			row := flat[r*c : (r+1)*c : (r+1)*c]
			if err := normalize(row); err != nil {
				return nil, nil, fmt.Errorf("output %q row %d: %w", probs.Name, r, err)
			}
			preds[r].Probs = row
			preds[r].Class, preds[r].HasClass = classes[argmax(row)], true
		}
	}
	if label != nil {
		for r := range n {
			preds[r].Class, preds[r].HasClass = labelString(label.Data, r), true
		}
	}
	return preds, classes, nil
}

// probClasses returns the class labels of a probability output's columns.
func probClasses(sig runtime.Signature, t *oip.Tensor) ([]string, error) {
	c := int(t.Shape[1])
	for _, spec := range sig.Outputs {
		if spec.Name != t.Name || len(spec.Classes) == 0 {
			continue
		}
		if len(spec.Classes) != c {
			return nil, fmt.Errorf("output %q has %d columns but the model names %d classes", t.Name, c, len(spec.Classes))
		}
		return spec.Classes, nil
	}
	classes := make([]string, c)
	for j := range classes {
		classes[j] = strconv.Itoa(j)
	}
	return classes, nil
}

// normalize makes a row of probabilities or logits a distribution; see
// ExtractPredictions.
func normalize(row []float64) error {
	sum, logits := 0.0, false
	for j, p := range row {
		if !finite(p) {
			return fmt.Errorf("column %d is %v", j, p)
		}
		if p < 0 || p > 1 {
			logits = true
		}
		sum += p
	}
	switch {
	case logits:
		m := row[argmax(row)]
		sum = 0
		for j, p := range row {
			row[j] = math.Exp(p - m)
			sum += row[j]
		}
		for j := range row {
			row[j] /= sum
		}
	case sum == 0:
		for j := range row {
			row[j] = 1 / float64(len(row))
		}
	case math.Abs(sum-1) > 1e-3:
		for j := range row {
			row[j] /= sum
		}
	}
	return nil
}

func argmax(row []float64) int {
	best := 0
	for j, p := range row {
		if p > row[best] {
			best = j
		}
	}
	return best
}

func extractValues(outputs []oip.Tensor, opts ExtractOptions) ([]Prediction, error) {
	var out *oip.Tensor
	if opts.Output != "" {
		t, err := findOutput(outputs, opts.Output)
		if err != nil {
			return nil, err
		}
		if kindOf(manifest.TaskRegression, t.Datatype, t.Shape) != kindValue {
			return nil, fmt.Errorf("output %q (%s %v) does not hold %s", t.Name, t.Datatype, t.Shape, valueShapes)
		}
		out = t
	} else {
		for i := range outputs {
			if kindOf(manifest.TaskRegression, outputs[i].Datatype, outputs[i].Shape) == kindValue {
				out = &outputs[i]
				break
			}
		}
		if out == nil {
			return nil, fmt.Errorf("no output holds %s; the outputs are %s", valueShapes, outputNames(outputs))
		}
	}
	n := int(out.Shape[0])
	vals := make([]float64, n)
	floats(vals, out.Data)
	preds := make([]Prediction, n)
	for r, v := range vals {
		if !finite(v) {
			return nil, fmt.Errorf("output %q row %d is %v", out.Name, r, v)
		}
		preds[r].Value = v
	}
	return preds, nil
}

// floats converts float data (FP16 bit patterns, float32, float64) into dst.
func floats(dst []float64, data any) {
	switch v := data.(type) {
	case []uint16:
		for i, h := range v {
			dst[i] = float64(oip.HalfToFloat32(h))
		}
	case []float32:
		for i, f := range v {
			dst[i] = float64(f)
		}
	case []float64:
		copy(dst, v)
	}
}

// labelString returns element r of a label output as a class string.
func labelString(data any, r int) string {
	switch v := data.(type) {
	case []bool:
		if v[r] {
			return "1"
		}
		return "0"
	case []uint8:
		return strconv.FormatUint(uint64(v[r]), 10)
	case []uint16:
		return strconv.FormatUint(uint64(v[r]), 10)
	case []uint32:
		return strconv.FormatUint(uint64(v[r]), 10)
	case []uint64:
		return strconv.FormatUint(v[r], 10)
	case []int8:
		return strconv.FormatInt(int64(v[r]), 10)
	case []int16:
		return strconv.FormatInt(int64(v[r]), 10)
	case []int32:
		return strconv.FormatInt(int64(v[r]), 10)
	case []int64:
		return strconv.FormatInt(v[r], 10)
	case [][]byte:
		return string(v[r])
	}
	return ""
}
