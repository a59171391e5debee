package monitor

import (
	"strconv"
	"sync"

	"github.com/drover-ml/drover/agent/telemetry"
	"github.com/drover-ml/drover/agent/versions"
	"github.com/drover-ml/drover/shared/oip"
)

// maxAutoColumns bounds the distributions made per tensor when the manifest
// names no features: wide inputs (images, embeddings) would otherwise make
// thousands of series.
const maxAutoColumns = 32

// plan says which distributions a version's tensors feed: the manifest's
// features (with their fixed bins) or, without them, the first columns of
// each numeric tensor of rank 1 or 2 (exponential histograms).
type plan struct {
	mu      sync.Mutex // guards cols; only sampled requests take it
	version string
	named   bool                           // the manifest names features
	cols    map[string]map[int]*featureCol // tensor -> column -> feature
	model   string
}

type featureCol struct {
	name, kind string
	bins       []float64
	cats       map[string]int // categorical: value -> bin index
	dist       *telemetry.Dist
}

func (m *Monitor) plan(v *versions.Version) *plan {
	if p, ok := m.plans.Load(v); ok {
		return p.(*plan)
	}
	p := &plan{model: v.Model, version: strconv.FormatInt(v.Number, 10), cols: map[string]map[int]*featureCol{}}
	if v.Manifest != nil && len(v.Manifest.Features) > 0 {
		p.named = true
		for _, f := range v.Manifest.Features {
			tensor, kind := f.Input, telemetry.KindInput
			if f.Output != "" {
				tensor, kind = f.Output, telemetry.KindOutput
			}
			fc := &featureCol{name: f.Name, kind: kind, bins: f.Bins}
			if len(f.Categories) > 0 {
				fc.cats = map[string]int{}
				fc.bins = make([]float64, len(f.Categories))
				for i, c := range f.Categories {
					fc.cats[c] = i
					fc.bins[i] = float64(i)
				}
			}
			if p.cols[tensor] == nil {
				p.cols[tensor] = map[int]*featureCol{}
			}
			p.cols[tensor][f.Index] = fc
		}
	}
	actual, _ := m.plans.LoadOrStore(v, p)
	return actual.(*plan)
}

func (p *plan) observe(tel *telemetry.Telemetry, inputs, outputs []oip.Tensor) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range inputs {
		p.observeTensor(tel, &inputs[i], telemetry.KindInput)
	}
	for i := range outputs {
		p.observeTensor(tel, &outputs[i], telemetry.KindOutput)
	}
}

func (p *plan) column(tel *telemetry.Telemetry, t *oip.Tensor, kind string, j int) *featureCol {
	cols := p.cols[t.Name]
	if fc := cols[j]; fc != nil {
		if fc.dist == nil {
			fc.dist = tel.Distribution(p.model, p.version, fc.name, fc.kind, fc.bins)
		}
		return fc
	}
	if p.named || j >= maxAutoColumns {
		return nil
	}
	name := t.Name
	if len(t.Shape) == 2 {
		name += "[" + strconv.Itoa(j) + "]"
	}
	fc := &featureCol{name: name, kind: kind, dist: tel.Distribution(p.model, p.version, name, kind, nil)}
	if cols == nil {
		cols = map[int]*featureCol{}
		p.cols[t.Name] = cols
	}
	cols[j] = fc
	return fc
}

func (p *plan) observeTensor(tel *telemetry.Telemetry, t *oip.Tensor, kind string) {
	if tel == nil || len(t.Shape) == 0 || len(t.Shape) > 2 {
		return
	}
	width := 1
	if len(t.Shape) == 2 {
		width = int(t.Shape[1])
	}
	if width <= 0 {
		return
	}
	n := oip.Len(t.Data)
	// Only columns that feed a distribution are visited: the manifest's
	// features of this tensor, or the first maxAutoColumns. A wide tensor
	// (1000 features) then costs a sampled request no lookup per column
	// that nothing observes.
	if p.named {
		for j := range p.cols[t.Name] {
			if j < width && j < n {
				p.observeColumn(tel, t, kind, j, width, n)
			}
		}
		return
	}
	for j := 0; j < min(width, n, maxAutoColumns); j++ {
		p.observeColumn(tel, t, kind, j, width, n)
	}
}

// observeColumn observes column j of t (row width width, n elements).
func (p *plan) observeColumn(tel *telemetry.Telemetry, t *oip.Tensor, kind string, j, width, n int) {
	fc := p.column(tel, t, kind, j)
	if fc == nil || fc.dist == nil {
		return
	}
	for i := j; i < n; i += width {
		if fc.cats != nil {
			if b, ok := fc.cats[elementString(t.Data, i)]; ok {
				fc.dist.Observe(float64(b))
			}
			continue
		}
		if f, ok := elementFloat(t.Data, i); ok {
			fc.dist.Observe(f)
		}
	}
}

func elementFloat(data any, i int) (float64, bool) {
	switch d := data.(type) {
	case []float32:
		return float64(d[i]), true
	case []float64:
		return d[i], true
	case []int64:
		return float64(d[i]), true
	case []int32:
		return float64(d[i]), true
	case []int16:
		return float64(d[i]), true
	case []int8:
		return float64(d[i]), true
	case []uint8:
		return float64(d[i]), true
	case []uint16:
		return float64(d[i]), true
	case []uint32:
		return float64(d[i]), true
	case []uint64:
		return float64(d[i]), true
	case []bool:
		if d[i] {
			return 1, true
		}
		return 0, true
	}
	return 0, false
}

func elementString(data any, i int) string {
	if b, ok := data.([][]byte); ok {
		return string(b[i])
	}
	if f, ok := elementFloat(data, i); ok {
		return strconv.FormatFloat(f, 'g', -1, 64)
	}
	return ""
}
