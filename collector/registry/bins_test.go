package registry

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/drover-ml/drover/shared/manifest"
	"github.com/drover-ml/drover/shared/testmodels"
)

func TestQuantileBins(t *testing.T) {
	var b strings.Builder
	b.WriteString("a,y,b,c\n")
	for i := 1; i <= 100; i++ {
		fmt.Fprintf(&b, "%d,%d,5,%g\n", i, i%3, float64(i%4)/2)
	}
	features, err := QuantileBins(strings.NewReader(b.String()), "y", "X", 10)
	if err != nil {
		t.Fatal(err)
	}
	// b is constant: no feature. c takes 0, 0.5, 1, 1.5 a quarter each.
	if len(features) != 2 || features[0].Name != "a" || features[1].Name != "c" {
		t.Fatalf("features %+v, want a and c", features)
	}
	a, c := features[0], features[1]
	if want := []float64{1, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100}; !slices.Equal(a.Bins, want) || a.Input != "X" || a.Index != 0 {
		t.Errorf("a = %+v, want bins %v on X index 0", a, want)
	}
	if want := []float64{0, 0.5, 1, 1.5}; !slices.Equal(c.Bins, want) || c.Index != 2 {
		t.Errorf("c = %+v, want bins %v at index 2", c, want)
	}

	for name, c := range map[string]struct{ csv, want string }{
		"no label":       {"a,b\n1,2\n", `no label column "y"`},
		"not a number":   {"a,y\n1,0\nx,1\n", `line 3 column "a": "x"`},
		"infinite":       {"a,y\n+Inf,0\n", "not a finite number"},
		"ragged":         {"a,y\n1,0,3\n", "wrong number of fields"},
		"no rows":        {"a,y\n", "no rows"},
		"only the label": {"y\n1\n", "no feature column"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := QuantileBins(strings.NewReader(c.csv), "y", "X", 10)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("QuantileBins = %v, want ErrInvalid with %q", err, c.want)
			}
		})
	}
}

func TestPublishWithTrainingDataWritesBins(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	model, err := testmodels.Linear("X", "Y", [][]float32{{1, 2}, {3, 4}}, []float32{0, 0})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("f0,f1,y\n")
	for i := range 50 {
		fmt.Fprintf(&b, "%d,%d,%d\n", i, 100-i, i%2)
	}
	v, _ := f.publish(t, "m", map[string][]byte{"model.onnx": model, "training/data.csv": []byte(b.String())},
		Meta{TrainingData: &TrainingData{Path: "training/data.csv", Label: "y"}})
	if _, ok := v.File("training/data.csv"); !ok {
		t.Errorf("the training data is not a file of the version: %+v", v.Files)
	}
	r, _, err := f.reg.OpenFile(ctx, "m", v.Version, manifest.FileName)
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifest.Parse(readAll(t, r))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Features) != 2 || m.Features[0].Name != "f0" || m.Features[0].Input != "X" || m.Features[1].Index != 1 ||
		m.Features[0].Bins[0] != 0 || m.Features[0].Bins[len(m.Features[0].Bins)-1] != 49 {
		t.Errorf("manifest features %+v, want f0 (0..49) and f1 on X", m.Features)
	}
	// A training data path that is not among the files is refused.
	_, _, err = f.reg.Publish(ctx, "m", Uploads(upload("model.onnx", linear(t, 9))), Meta{TrainingData: &TrainingData{Path: "absent.csv", Label: "y"}})
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("publish with absent training data = %v, want ErrInvalid", err)
	}
}
