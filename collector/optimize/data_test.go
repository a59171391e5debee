package optimize

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/drover-ml/drover/collector/labels"
)

func TestSampleFeatures(t *testing.T) {
	for name, tc := range map[string]struct {
		inputs   string
		elem     int
		features int
		want     []float64
		err      string
	}{
		"agent body":     {`{"model_name":"m","outputs":[{"name":"X","datatype":"FP32","shape":[1,3],"data":[1,2.5,-3]}]}`, 0, 3, []float64{1, 2.5, -3}, ""},
		"inputs body":    {`{"inputs":[{"name":"X","datatype":"FP64","shape":[2,2],"data":[1,2,3,4]}]}`, 1, 2, []float64{3, 4}, ""},
		"bare array":     {`[{"name":"other","datatype":"FP32","shape":[1,1],"data":[9]},{"name":"X","datatype":"FP32","shape":[1,2],"data":[5,6]}]`, 0, 0, []float64{5, 6}, ""},
		"one row rank 1": {`{"outputs":[{"name":"X","datatype":"FP32","shape":[2],"data":[7,8]}]}`, 0, 2, []float64{7, 8}, ""},
		"infinities":     {`{"outputs":[{"name":"X","datatype":"FP32","shape":[1,2],"data":["Infinity","-Infinity"]}]}`, 0, 2, []float64{math.Inf(1), math.Inf(-1)}, ""},
		"no such input":  {`{"outputs":[{"name":"Y","datatype":"FP32","shape":[1,2],"data":[1,2]}]}`, 0, 2, nil, `no input "X"`},
		"wrong width":    {`{"outputs":[{"name":"X","datatype":"FP32","shape":[1,3],"data":[1,2,3]}]}`, 0, 2, nil, "has 3 features, the model takes 2"},
		"no element":     {`{"outputs":[{"name":"X","datatype":"FP32","shape":[1,2],"data":[1,2]}]}`, 1, 2, nil, "no element 1"},
		"not json":       {`nope`, 0, 2, nil, "inputs:"},
		"rank 3":         {`{"outputs":[{"name":"X","datatype":"FP32","shape":[1,1,2],"data":[1,2]}]}`, 0, 2, nil, "shape [1 1 2]"},
	} {
		got, err := sampleFeatures(tc.inputs, "X", tc.elem, tc.features)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", name, err, tc.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, %v; want %v", name, got, err, tc.want)
		}
	}
	// A value that is not a number is missing (NaN).
	got, err := sampleFeatures(`{"outputs":[{"name":"X","datatype":"BYTES","shape":[1,2],"data":["a",1]}]}`, "X", 0, 2)
	if err != nil || !math.IsNaN(got[0]) || got[1] != 1 {
		t.Errorf("text feature: %v, %v; want NaN, 1", got, err)
	}
}

func TestFromLabelledKeepsOrderAndLabelText(t *testing.T) {
	js := []labels.Joined{
		{RequestID: "a", Label: `"setosa"`, Inputs: `{"outputs":[{"name":"X","datatype":"FP32","shape":[1,2],"data":[1,2]}]}`},
		{RequestID: "b#1", Element: 1, Label: `2`, Inputs: `{"outputs":[{"name":"X","datatype":"FP32","shape":[2,2],"data":[1,2,3,4]}]}`},
	}
	tb, err := fromLabelled(js, "X", 0)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(tb.labels, []string{"setosa", "2"}) || !slices.Equal(tb.x[1], []float64{3, 4}) {
		t.Errorf("table = %+v", tb)
	}
	if _, err := fromLabelled([]labels.Joined{{RequestID: "c", Inputs: `[]`, Label: "1"}}, "X", 2); err == nil || !strings.Contains(err.Error(), "labelled request c") {
		t.Errorf("unreadable inputs: %v, want an error naming the request", err)
	}
}

func TestDecodeCSV(t *testing.T) {
	tb, err := decodeCSV(strings.NewReader("f1, y ,f2\n1,a,2\n3,b,\n-inf,c,4e2\n"), "y", 2)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(tb.labels, []string{"a", "b", "c"}) || !slices.Equal(tb.x[0], []float64{1, 2}) || !math.IsNaN(tb.x[1][1]) || !math.IsInf(tb.x[2][0], -1) || tb.x[2][1] != 400 {
		t.Errorf("table = %+v", tb)
	}
	for name, tc := range map[string]struct{ csv, label, err string }{
		"empty":          {"", "y", "empty: want a header row"},
		"no label":       {"a,b\n1,2\n", "y", `no column "y"`},
		"label twice":    {"y,y,a\n1,2,3\n", "y", "appears twice"},
		"feature count":  {"a,y\n1,2\n", "y", "1 feature columns, the model takes 2"},
		"ragged":         {"a,b,y\n1,2,3\n1,2\n", "y", "wrong number of fields"},
		"not a number":   {"a,b,y\n1,zz,3\n", "y", `line 2, column "b": "zz" is not a number`},
		"empty label":    {"a,b,y\n1,2,\n", "y", "line 2: empty label"},
		"header only":    {"a,b,y\n", "y", "no rows after the header"},
		"no label named": {"a,b,y\n1,2,3\n", "", "no label column named"},
	} {
		_, err := decodeCSV(strings.NewReader(tc.csv), tc.label, 2)
		if err == nil || !errors.Is(err, errCSV) || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: %v; want an errCSV with %q", name, err, tc.err)
		}
	}
}

// FuzzDecodeCSV: any body decodes to rows of equal width with a label
// each, or to an errCSV; never a panic.
func FuzzDecodeCSV(f *testing.F) {
	for _, s := range []string{
		"a,b,y\n1,2,0\n3,4,1\n",
		"y,a\n\"x\",1e308\n",
		"a,b,y\n,,\n",
		"a,\"b\nc\",y\n1,2,3\n",
		"\xff,y\n1,2\n",
		"y\n1\n",
	} {
		f.Add(s, "y")
	}
	f.Fuzz(func(t *testing.T, body, label string) {
		tb, err := decodeCSV(strings.NewReader(body), label, 0)
		if err != nil {
			if !errors.Is(err, errCSV) {
				t.Fatalf("error %v is not an errCSV", err)
			}
			return
		}
		if tb.rows() == 0 || len(tb.x) != len(tb.labels) {
			t.Fatalf("%d rows, %d labels", len(tb.x), len(tb.labels))
		}
		for i, r := range tb.x {
			if len(r) != len(tb.x[0]) || len(r) == 0 || tb.labels[i] == "" {
				t.Fatalf("row %d: %v %q", i, r, tb.labels[i])
			}
		}
	})
}

// FuzzSampleFeatures: a stored sample's inputs (written by agents) never
// crash the reader.
func FuzzSampleFeatures(f *testing.F) {
	f.Add(`{"outputs":[{"name":"X","datatype":"FP32","shape":[1,2],"data":[1,2]}]}`, 0, 2)
	f.Add(`[{"name":"X","shape":[2],"data":["NaN",1]}]`, 0, 0)
	f.Add(`{"inputs":[{"name":"X","shape":[-1,2],"data":[1]}]}`, 3, 0)
	f.Fuzz(func(t *testing.T, inputs string, elem, features int) {
		if elem < 0 || elem > 1<<20 || features < 0 || features > 1<<20 {
			return
		}
		x, err := sampleFeatures(inputs, "X", elem, features)
		if err == nil && (len(x) == 0 || features > 0 && len(x) != features) {
			t.Fatalf("%d features, want %d", len(x), features)
		}
	})
}
