package monitor

import (
	"context"
	"log/slog"
	"strconv"
	"testing"

	"github.com/drover-ml/drover/agent/telemetry"
	"github.com/drover-ml/drover/shared/oip"
)

// observeAllColumns is observeTensor as it was before it visited only the
// columns that feed a distribution: kept for the A/B below.
func (p *plan) observeAllColumns(tel *telemetry.Telemetry, t *oip.Tensor, kind string) {
	width, n := int(t.Shape[1]), oip.Len(t.Data)
	for j := 0; j < width && j < n; j++ {
		p.observeColumn(tel, t, kind, j, width, n)
	}
}

func widePlan(tb testing.TB) (*telemetry.Telemetry, *plan, []oip.Tensor) {
	tel, err := telemetry.New(context.Background(), telemetry.Config{Disabled: true}, telemetry.ResourceInfo{AgentID: "a"}, slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	x, y := make([]float32, 1000), make([]float32, 1000)
	for i := range x {
		x[i], y[i] = float32(i), float32(-i)
	}
	p := &plan{model: "big", version: "1", cols: map[string]map[int]*featureCol{}}
	return tel, p, []oip.Tensor{{Name: "X", Datatype: oip.FP32, Shape: []int64{1, 1000}, Data: x}, {Name: "Y", Datatype: oip.FP32, Shape: []int64{1, 1000}, Data: y}}
}

// TestWideTensorObservesFirstColumns: a 1000-wide tensor without named
// features feeds exactly the first maxAutoColumns distributions.
func TestWideTensorObservesFirstColumns(t *testing.T) {
	tel, p, ts := widePlan(t)
	p.observe(tel, ts[:1], nil)
	if got := len(p.cols["X"]); got != maxAutoColumns {
		t.Fatalf("%d columns observed, want %d", got, maxAutoColumns)
	}
	for j := range maxAutoColumns {
		if p.cols["X"][j] == nil || p.cols["X"][j].name != "X["+itoa(j)+"]" {
			t.Fatalf("column %d: %+v", j, p.cols["X"][j])
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// BenchmarkObserveWide is the A/B of one sampled request's observation on
// the big model (1000 inputs, 1000 outputs, no named features): "all"
// visits every column, "fed" only those that feed a distribution.
func BenchmarkObserveWide(b *testing.B) {
	tel, p, ts := widePlan(b)
	p.observe(tel, ts[:1], ts[1:])
	for range 3 {
		b.Run("all", func(b *testing.B) {
			for b.Loop() {
				p.mu.Lock()
				p.observeAllColumns(tel, &ts[0], telemetry.KindInput)
				p.observeAllColumns(tel, &ts[1], telemetry.KindOutput)
				p.mu.Unlock()
			}
		})
		b.Run("fed", func(b *testing.B) {
			for b.Loop() {
				p.observe(tel, ts[:1], ts[1:])
			}
		})
	}
}
