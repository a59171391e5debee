package tree

import (
	"fmt"
	"slices"

	"github.com/drover-ml/drover/collector/optimize/learn"
)

// frame is a data set prepared for growing trees: each feature as a float32
// column (the precision trees compare in) and the rows sorted by it once.
type frame struct {
	n, d int
	// cols[f][r] is feature f of row r.
	cols [][]float32
	// order[f] lists the rows by increasing cols[f], ties by row number.
	order [][]int32
	y     []float64
}

// newFrame checks d (learn.Validate) and prepares it.
func newFrame(d *learn.Dataset) (*frame, error) {
	if err := learn.Validate(d); err != nil {
		return nil, fmt.Errorf("training data: %w", err)
	}
	n, nf := d.Rows(), d.Features()
	if n > 1<<31-1 {
		return nil, fmt.Errorf("training data: %d rows is more than a tree can index", n)
	}
	fr := &frame{n: n, d: nf, cols: make([][]float32, nf), order: make([][]int32, nf), y: d.Y}
	for f := range nf {
		col := make([]float32, n)
		for r := range n {
			col[r] = float32(d.X.At(r, f))
		}
		ord := make([]int32, n)
		for r := range ord {
			ord[r] = int32(r)
		}
		slices.SortStableFunc(ord, func(a, b int32) int {
			switch va, vb := col[a], col[b]; {
			case va < vb:
				return -1
			case va > vb:
				return 1
			}
			return 0
		})
		fr.cols[f], fr.order[f] = col, ord
	}
	return fr, nil
}
