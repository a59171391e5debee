package optimize

import (
	"context"
	"fmt"
	"math"
	"os"
	"strconv"
	"time"

	"github.com/drover-ml/drover/collector/optimize/export"
	"github.com/drover-ml/drover/collector/optimize/learn"
	"github.com/drover-ml/drover/shared/oip"
	"github.com/drover-ml/drover/shared/onnx"
	"github.com/drover-ml/drover/shared/runtime"
)

// session is an ONNX model loaded in ONNX Runtime with the signature the
// optimizer reads its outputs by.
type session struct {
	m   runtime.Model
	sig *export.Signature
}

// loadONNX loads model bytes into ONNX Runtime (through a temporary file
// in dir, removed once loaded). The caller closes the session.
func loadONNX(ctx context.Context, dir string, model []byte, sig *export.Signature) (*session, error) {
	if err := runtime.Init(""); err != nil {
		return nil, fmt.Errorf("ONNX Runtime: %w", err)
	}
	f, err := os.CreateTemp(dir, "optimize-*.onnx")
	if err != nil {
		return nil, fmt.Errorf("write model for ONNX Runtime: %w", err)
	}
	path := f.Name()
	defer os.Remove(path)
	if _, err := f.Write(model); err != nil {
		f.Close()
		return nil, fmt.Errorf("write model for ONNX Runtime: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("write model for ONNX Runtime: %w", err)
	}
	b := &runtime.ONNX{Options: runtime.Options{IntraOpThreads: 1, InterOpThreads: 1}}
	m, err := b.Load(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("load into ONNX Runtime: %w", err)
	}
	return &session{m: m, sig: sig}, nil
}

func (s *session) Close() error { return s.m.Close() }

// predictBatch bounds the rows of one Run.
const predictBatch = 4096

// predict runs the model on rows x and returns, per row, what a
// learn.Model would predict (class probabilities in the signature's class
// order, or the value) and, for a classifier, the label it answered (as
// text). A classifier without a probabilities output gets one-hot rows of
// its label.
func (s *session) predict(ctx context.Context, x [][]float64) (preds [][]float64, labels []string, err error) {
	for lo := 0; lo < len(x); lo += predictBatch {
		hi := min(lo+predictBatch, len(x))
		p, l, err := s.run(ctx, x[lo:hi])
		if err != nil {
			return nil, nil, err
		}
		preds, labels = append(preds, p...), append(labels, l...)
	}
	return preds, labels, nil
}

func (s *session) input(x [][]float64) oip.Tensor {
	n, d := len(x), len(x[0])
	t := oip.Tensor{Name: s.sig.Input, Shape: []int64{int64(n), int64(d)}}
	if s.sig.InputType == onnx.TensorProto_DOUBLE {
		data := make([]float64, 0, n*d)
		for _, r := range x {
			data = append(data, r...)
		}
		t.Datatype, t.Data = oip.FP64, data
		return t
	}
	data := make([]float32, 0, n*d)
	for _, r := range x {
		for _, v := range r {
			data = append(data, float32(v))
		}
	}
	t.Datatype, t.Data = oip.FP32, data
	return t
}

func (s *session) run(ctx context.Context, x [][]float64) ([][]float64, []string, error) {
	n := len(x)
	outs, err := s.m.Run(ctx, []oip.Tensor{s.input(x)}, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("run ONNX Runtime: %w", err)
	}
	byName := map[string]oip.Tensor{}
	specs := map[string]runtime.TensorSpec{}
	for _, o := range outs {
		byName[o.Name] = o
	}
	for _, sp := range s.m.Signature().Outputs {
		specs[sp.Name] = sp
	}
	preds := make([][]float64, n)
	if s.sig.Task == learn.Regression {
		o, ok := byName[s.sig.ValueOutput]
		if !ok {
			return nil, nil, fmt.Errorf("the model answered no output %q", s.sig.ValueOutput)
		}
		v, err := floats(o.Data)
		if err != nil || len(v) != n {
			return nil, nil, fmt.Errorf("output %q: %d values for %d rows (%v)", o.Name, len(v), n, err)
		}
		for i := range preds {
			preds[i] = []float64{v[i]}
		}
		return preds, nil, nil
	}
	k := s.sig.Classes()
	lo, ok := byName[s.sig.LabelOutput]
	if !ok {
		return nil, nil, fmt.Errorf("the model answered no output %q", s.sig.LabelOutput)
	}
	labels, err := texts(lo.Data)
	if err != nil || len(labels) != n {
		return nil, nil, fmt.Errorf("output %q: %d labels for %d rows (%v)", lo.Name, len(labels), n, err)
	}
	classOf := map[string]int{}
	for c := range k {
		classOf[classLabel(s.sig, c)] = c
	}
	po, ok := byName[s.sig.ProbOutput]
	if s.sig.ProbOutput == "" || !ok {
		for i, l := range labels {
			preds[i] = make([]float64, k)
			if c, ok := classOf[l]; ok {
				preds[i][c] = 1
			}
		}
		return preds, labels, nil
	}
	v, err := floats(po.Data)
	if err != nil || len(v) != n*k {
		return nil, nil, fmt.Errorf("output %q: %d probabilities for %d rows of %d classes (%v)", po.Name, len(v), n, k, err)
	}
	// Columns: a ZipMap's come in the order the runtime names
	// (TensorSpec.Classes); a tensor's in class-index order.
	col := make([]int, k)
	for c := range col {
		col[c] = c
	}
	if cl := specs[po.Name].Classes; len(cl) == k {
		for j, name := range cl {
			c, ok := classOf[name]
			if !ok {
				return nil, nil, fmt.Errorf("output %q: class %q is not one of the model's", po.Name, name)
			}
			col[j] = c
		}
	}
	for i := range preds {
		preds[i] = make([]float64, k)
		for j := range k {
			preds[i][col[j]] = v[i*k+j]
		}
	}
	return preds, labels, nil
}

// classLabel is class index c's label as text.
func classLabel(sig *export.Signature, c int) string {
	if len(sig.ClassStrings) > 0 {
		return sig.ClassStrings[c]
	}
	return strconv.FormatInt(sig.ClassInts[c], 10)
}

func floats(data any) ([]float64, error) {
	switch d := data.(type) {
	case []float32:
		out := make([]float64, len(d))
		for i, v := range d {
			out[i] = float64(v)
		}
		return out, nil
	case []float64:
		return d, nil
	}
	return nil, fmt.Errorf("data of type %T, not FP32 or FP64", data)
}

func texts(data any) ([]string, error) {
	var out []string
	switch d := data.(type) {
	case []int64:
		for _, v := range d {
			out = append(out, strconv.FormatInt(v, 10))
		}
	case []int32:
		for _, v := range d {
			out = append(out, strconv.FormatInt(int64(v), 10))
		}
	case [][]byte:
		for _, v := range d {
			out = append(out, string(v))
		}
	default:
		return nil, fmt.Errorf("labels of type %T", data)
	}
	return out, nil
}

// latency measures the model's inference time per row on up to 256 rows
// of x: runs repeated until 20 ms or 50 runs have passed, after one warm-up
// run.
func (s *session) latency(ctx context.Context, x [][]float64) (float64, error) {
	x = x[:min(len(x), 256)]
	in := []oip.Tensor{s.input(x)}
	if _, err := s.m.Run(ctx, in, nil); err != nil {
		return 0, fmt.Errorf("run ONNX Runtime: %w", err)
	}
	start := time.Now()
	runs := 0
	for runs < 50 && (runs < 3 || time.Since(start) < 20*time.Millisecond) {
		if _, err := s.m.Run(ctx, in, nil); err != nil {
			return 0, fmt.Errorf("run ONNX Runtime: %w", err)
		}
		runs++
	}
	return float64(time.Since(start).Microseconds()) / float64(runs*len(x)), nil
}

// agreeTolerance is how far an export's probabilities and values may be
// from the Go model's (absolute, and relative for large values).
const agreeTolerance = 1e-5

// checkAgreement compares the export's answers through ONNX Runtime with
// the Go model's on the same rows: the same label (the most probable
// class, when the Go model's top two are not within the tolerance) and
// probabilities or values within agreeTolerance.
func checkAgreement(sig *export.Signature, m learn.Model, x [][]float64, onnxPreds [][]float64, onnxLabels []string) error {
	width := 1
	if sig.Task == learn.Classification {
		width = sig.Classes()
	}
	goPred := make([]float64, width)
	for i, row := range x {
		m.Predict(row, goPred)
		for j, g := range goPred {
			o := onnxPreds[i][j]
			if math.Abs(g-o) > agreeTolerance*max(1, math.Abs(g)) || math.IsNaN(o) {
				return fmt.Errorf("row %d: the export answers %v through ONNX Runtime, the trained model %v (tolerance %g)", i, onnxPreds[i], goPred, agreeTolerance)
			}
		}
		if sig.Task == learn.Classification && onnxLabels != nil {
			best, second := top2(goPred)
			if goPred[best]-goPred[second] > agreeTolerance && onnxLabels[i] != classLabel(sig, best) {
				return fmt.Errorf("row %d: the export labels it %q through ONNX Runtime, the trained model %q", i, onnxLabels[i], classLabel(sig, best))
			}
		}
	}
	return nil
}

func top2(p []float64) (best, second int) {
	best, second = 0, -1
	for i := 1; i < len(p); i++ {
		switch {
		case p[i] > p[best]:
			best, second = i, best
		case second < 0 || p[i] > p[second]:
			second = i
		}
	}
	if second < 0 {
		second = best
	}
	return best, second
}
