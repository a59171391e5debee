package linear

import (
	"math"

	"github.com/drover-ml/drover/collector/optimize/export"
	"github.com/drover-ml/drover/collector/optimize/learn"
	"github.com/drover-ml/drover/shared/onnx"
)

// scaler standardises features: z = (x − Offset) · Scale, with Offset the
// training mean and Scale 1/std (1 for a constant feature, as
// scikit-learn's StandardScaler does).
type scaler struct {
	Offset []float64
	Scale  []float64
}

func fitScaler(d *learn.Dataset) scaler {
	n, c := d.X.Dims()
	s := scaler{Offset: make([]float64, c), Scale: make([]float64, c)}
	for i := range n {
		for j, v := range d.X.RawRowView(i) {
			s.Offset[j] += v
		}
	}
	for j := range c {
		s.Offset[j] /= float64(n)
	}
	variance := make([]float64, c)
	for i := range n {
		for j, v := range d.X.RawRowView(i) {
			e := v - s.Offset[j]
			variance[j] += e * e
		}
	}
	for j := range c {
		sd := math.Sqrt(variance[j] / float64(n))
		if sd < 1e-12*math.Max(1, math.Abs(s.Offset[j])) {
			s.Scale[j] = 1
		} else {
			s.Scale[j] = 1 / sd
		}
	}
	return s
}

// apply writes the standardised x into z.
func (s *scaler) apply(x, z []float64) {
	for j, v := range x {
		z[j] = (v - s.Offset[j]) * s.Scale[j]
	}
}

// transform returns the standardised rows of d, row-major.
func (s *scaler) transform(d *learn.Dataset) []float64 {
	n, c := d.X.Dims()
	z := make([]float64, n*c)
	for i := range n {
		s.apply(d.X.RawRowView(i), z[i*c:(i+1)*c])
	}
	return z
}

// node is the ai.onnx.ml Scaler node reading in and writing out.
func (s *scaler) node(name, in, out string) *onnx.NodeProto {
	return export.MLNode(name, "Scaler", []string{in}, []string{out},
		export.FloatsAttr("offset", s.Offset), export.FloatsAttr("scale", s.Scale))
}
