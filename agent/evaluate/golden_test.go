package evaluate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/drover-ml/drover/shared/manifest"
	"github.com/drover-ml/drover/shared/oip"
	"github.com/drover-ml/drover/shared/runtime"
)

var irisClasses = []string{"setosa", "versicolor", "virginica"}

// irisSig is a skl2onnx-style classifier: a label and ZipMap probabilities.
func irisSig() runtime.Signature {
	return runtime.Signature{
		Inputs: []runtime.TensorSpec{{Name: "X", Datatype: oip.FP32, Shape: []int64{-1, 4}}},
		Outputs: []runtime.TensorSpec{
			{Name: "output_label", Datatype: oip.BYTES, Shape: []int64{-1}},
			{Name: "output_probability", Datatype: oip.FP32, Shape: []int64{-1, 3}, Classes: irisClasses},
		},
	}
}

// irisProbs is the fake classifier: a softmax of linear scores, in FP32 as
// the runtime returns it.
func irisProbs(x []float32) []float32 {
	s := []float64{
		3 - 1.5*float64(x[2]),
		float64(x[1]) - 0.5*math.Abs(float64(x[2])-4),
		float64(x[2]) + float64(x[3]) - 6,
	}
	m := slices.Max(s)
	sum := 0.0
	for i := range s {
		s[i] = math.Exp(s[i] - m)
		sum += s[i]
	}
	out := make([]float32, 3)
	for i := range s {
		out[i] = float32(s[i] / sum)
	}
	return out
}

// irisRun runs the fake classifier, checking its input.
func irisRun(t *testing.T, calls *[]int64) func([]oip.Tensor) ([]oip.Tensor, error) {
	return func(in []oip.Tensor) ([]oip.Tensor, error) {
		if _, err := runtime.CheckInputs(irisSig(), in); err != nil {
			t.Errorf("bad input: %v", err)
			return nil, err
		}
		n := in[0].Shape[0]
		*calls = append(*calls, n)
		x := in[0].Data.([]float32)
		labels := make([][]byte, n)
		probs := make([]float32, 0, 3*n)
		for r := range int(n) {
			p := irisProbs(x[4*r : 4*r+4])
			probs = append(probs, p...)
			labels[r] = []byte(irisClasses[argmax32(p)])
		}
		return []oip.Tensor{
			{Name: "output_label", Datatype: oip.BYTES, Shape: []int64{n}, Data: labels},
			{Name: "output_probability", Datatype: oip.FP32, Shape: []int64{n, 3}, Data: probs},
		}, nil
	}
}

func argmax32(p []float32) int {
	best := 0
	for j := range p {
		if p[j] > p[best] {
			best = j
		}
	}
	return best
}

type irisRow struct {
	x     []float32
	label string
}

// irisRows generates rows whose labels mostly agree with the fake model.
func irisRows(n int) []irisRow {
	rng := rand.New(rand.NewPCG(1, 2))
	rows := make([]irisRow, n)
	for i := range rows {
		x := []float32{
			float32(math.Round((4+rng.Float64()*4)*10) / 10),
			float32(math.Round((2+rng.Float64()*2)*10) / 10),
			float32(math.Round((1+rng.Float64()*6)*10) / 10),
			float32(math.Round(rng.Float64()*25) / 10),
		}
		label := irisClasses[argmax32(irisProbs(x))]
		if rng.IntN(4) == 0 {
			label = irisClasses[rng.IntN(3)]
		}
		rows[i] = irisRow{x, label}
	}
	return rows
}

func irisReference(rows []irisRow) Result {
	ref := make([]refRow, len(rows))
	for i, r := range rows {
		p32 := irisProbs(r.x)
		p := []float64{float64(p32[0]), float64(p32[1]), float64(p32[2])}
		ref[i] = refRow{label: r.label, pred: irisClasses[argmax32(p32)], probs: p}
	}
	return refClassification(ref, irisClasses)
}

var irisFeatures = []string{"sepal_length", "sepal_width", "petal_length", "petal_width"}

// writeIrisCSV writes rows with the columns in another order than the
// features, an extra column, quoting and spaces.
func writeIrisCSV(t *testing.T, dir string, rows []irisRow) {
	var b strings.Builder
	b.WriteString("\ufeffid,petal_width,species,sepal_length,\"sepal_width\",petal_length\n")
	for i, r := range rows {
		f := func(v float32) string { return strconv.FormatFloat(float64(v), 'g', -1, 32) }
		fmt.Fprintf(&b, "%d,%s, %s ,%s,\"%s\",%s\n", i, f(r.x[3]), r.label, f(r.x[0]), f(r.x[1]), f(r.x[2]))
	}
	writeFile(t, filepath.Join(dir, "eval", "golden.csv"), b.String())
}

func writeIrisJSONL(t *testing.T, dir string, rows []irisRow) {
	var b strings.Builder
	for i, r := range rows {
		m := map[string]any{"id": i, "species": r.label}
		for j, name := range irisFeatures {
			m[name] = float64(r.x[j])
		}
		if i%3 == 0 {
			m["petal_width"] = strconv.FormatFloat(float64(r.x[3]), 'g', -1, 32) // a number in a string
		}
		line, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(line)
		b.WriteString("\n")
		if i == 5 {
			b.WriteString("\n   \n") // blank lines
		}
	}
	writeFile(t, filepath.Join(dir, "eval", "golden.jsonl"), b.String())
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestGoldenClassification(t *testing.T) {
	rows := irisRows(1100)
	want := irisReference(rows)
	for _, format := range []string{"csv", "jsonl"} {
		t.Run(format, func(t *testing.T) {
			dir := t.TempDir()
			if format == "csv" {
				writeIrisCSV(t, dir, rows)
			} else {
				writeIrisJSONL(t, dir, rows)
			}
			g := &manifest.GoldenSet{Path: "eval/golden." + format, Task: cls, Features: irisFeatures, Label: "species"}
			gs, err := LoadGoldenSet(dir, g, irisSig())
			if err != nil {
				t.Fatal(err)
			}
			if gs.Len() != 1100 || gs.Task() != cls {
				t.Fatalf("Len %d Task %q", gs.Len(), gs.Task())
			}
			var calls []int64
			got, err := gs.Evaluate(irisRun(t, &calls), irisSig())
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(calls, []int64{512, 512, 76}) {
				t.Errorf("batches %v, want 512, 512, 76", calls)
			}
			compareResults(t, got, want, 1e-9)
			if a := got.Metrics["accuracy"]; a < 0.7 || a > 0.9 {
				t.Errorf("accuracy %v: the test data should be mostly right", a)
			}
		})
	}
}

// A static batch dimension gets exactly that many rows per run, the last
// batch padded; an INT64 input gets integers; labels of several JSON types.
func TestGoldenStaticBatchIntegerInput(t *testing.T) {
	sig := runtime.Signature{
		Inputs:  []runtime.TensorSpec{{Name: "x", Datatype: oip.INT64, Shape: []int64{4, 2}}},
		Outputs: []runtime.TensorSpec{{Name: "label", Datatype: oip.INT64, Shape: []int64{4}}},
	}
	content := `{"a": 1, "b": 0, "y": 1}
{"a": 0, "b": 1, "y": 0}
{"a": 5, "b": 2.0, "y": true}
{"a": 2, "b": 5, "y": false}
{"a": 3, "b": 3, "y": "1"}
{"a": -4, "b": 9007199254740993, "y": 0}
{"a": 7, "b": 1, "y": 1.0}
{"a": 1, "b": 2, "y": 1}
{"a": 2, "b": 1, "y": 0}
{"a": 9, "b": "8", "y": 1}
`
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "g.jsonl"), content)
	gs, err := LoadGoldenSet(dir, &manifest.GoldenSet{Path: "g.jsonl", Task: cls, Features: []string{"a", "b"}, Label: "y"}, sig)
	if err != nil {
		t.Fatal(err)
	}
	var seen [][]int64
	run := func(in []oip.Tensor) ([]oip.Tensor, error) {
		if _, err := runtime.CheckInputs(sig, in); err != nil {
			return nil, err
		}
		x := in[0].Data.([]int64)
		seen = append(seen, slices.Clone(x))
		out := make([]int64, 4)
		for r := range 4 {
			if x[2*r] > x[2*r+1] {
				out[r] = 1
			}
		}
		return []oip.Tensor{{Name: "label", Datatype: oip.INT64, Shape: []int64{4}, Data: out}}, nil
	}
	got, err := gs.Evaluate(run, sig)
	if err != nil {
		t.Fatal(err)
	}
	wantSeen := [][]int64{
		{1, 0, 0, 1, 5, 2, 2, 5},
		{3, 3, -4, 9007199254740993, 7, 1, 1, 2},
		{2, 1, 9, 8, 9, 8, 9, 8}, // padded with the last row
	}
	if fmt.Sprint(seen) != fmt.Sprint(wantSeen) {
		t.Errorf("inputs %v, want %v", seen, wantSeen)
	}
	// predictions 1 0 1 0 0 0 1 0 1 1, labels 1 0 1 0 1 0 1 1 0 1
	want := refClassification([]refRow{
		{"1", "1", nil}, {"0", "0", nil}, {"1", "1", nil}, {"0", "0", nil}, {"1", "0", nil},
		{"0", "0", nil}, {"1", "1", nil}, {"1", "0", nil}, {"0", "1", nil}, {"1", "1", nil},
	}, nil)
	compareResults(t, got, want, 1e-12)
}

func TestGoldenRegression(t *testing.T) {
	sig := runtime.Signature{
		Inputs:  []runtime.TensorSpec{{Name: "x", Datatype: oip.FP64, Shape: []int64{-1, 3}}},
		Outputs: []runtime.TensorSpec{{Name: "y", Datatype: oip.FP64, Shape: []int64{-1, 1}}},
	}
	model := func(x []float64) float64 { return 2*x[0] - x[1] + 0.5*x[2] }
	rng := rand.New(rand.NewPCG(3, 4))
	var b strings.Builder
	b.WriteString("x0,x1,x2,price\n")
	var preds, ys []float64
	for range 700 {
		x := []float64{rng.NormFloat64(), rng.NormFloat64() * 10, rng.Float64()}
		y := model(x) + rng.NormFloat64()
		fmt.Fprintf(&b, "%v,%v,%v,%v\n", x[0], x[1], x[2], y)
		preds, ys = append(preds, model(x)), append(ys, y)
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "g.csv"), b.String())
	gs, err := LoadGoldenSet(dir, &manifest.GoldenSet{Path: "g.csv", Task: reg, Features: []string{"x0", "x1", "x2"}, Label: "price"}, sig)
	if err != nil {
		t.Fatal(err)
	}
	run := func(in []oip.Tensor) ([]oip.Tensor, error) {
		x := in[0].Data.([]float64)
		n := int(in[0].Shape[0])
		out := make([]float64, n)
		for r := range n {
			out[r] = model(x[3*r : 3*r+3])
		}
		return []oip.Tensor{{Name: "y", Datatype: oip.FP64, Shape: []int64{int64(n), 1}, Data: out}}, nil
	}
	got, err := gs.Evaluate(run, sig)
	if err != nil {
		t.Fatal(err)
	}
	compareResults(t, got, refRegression(preds, ys), 1e-9)
}

func TestGoldenEvaluateErrors(t *testing.T) {
	sig := runtime.Signature{
		Inputs:  []runtime.TensorSpec{{Name: "x", Datatype: oip.FP32, Shape: []int64{-1, 1}}},
		Outputs: []runtime.TensorSpec{{Name: "y", Datatype: oip.FP32, Shape: []int64{-1}}},
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "g.csv"), "x,y\n1,1\n2,2\n3,3\n")
	gs, err := LoadGoldenSet(dir, &manifest.GoldenSet{Path: "g.csv", Task: reg, Features: []string{"x"}, Label: "y"}, sig)
	if err != nil {
		t.Fatal(err)
	}
	out := func(data []float32) func([]oip.Tensor) ([]oip.Tensor, error) {
		return func([]oip.Tensor) ([]oip.Tensor, error) {
			return []oip.Tensor{{Name: "y", Datatype: oip.FP32, Shape: []int64{int64(len(data))}, Data: data}}, nil
		}
	}
	boom := errors.New("boom")
	tests := map[string]struct {
		run  func([]oip.Tensor) ([]oip.Tensor, error)
		want string
	}{
		"run fails":       {func([]oip.Tensor) ([]oip.Tensor, error) { return nil, boom }, "golden set rows 1-3: run the model: boom"},
		"too few rows":    {out([]float32{1, 2}), "golden set rows 1-3: the model returned 2 predictions for 3 rows"},
		"NaN prediction":  {out([]float32{1, float32(math.NaN()), 3}), `golden set rows 1-3: output "y" row 1 is NaN`},
		"unusable output": {func([]oip.Tensor) ([]oip.Tensor, error) { return nil, nil }, "golden set rows 1-3: no output holds regression values"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := gs.Evaluate(tc.run, sig)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if name == "run fails" && !errors.Is(err, boom) {
				t.Errorf("err does not wrap the run's error")
			}
		})
	}
}

func TestLoadGoldenSetErrors(t *testing.T) {
	oneInput := func(dt oip.Datatype, shape ...int64) runtime.Signature {
		return runtime.Signature{
			Inputs:  []runtime.TensorSpec{{Name: "x", Datatype: dt, Shape: shape}},
			Outputs: []runtime.TensorSpec{{Name: "y", Datatype: oip.FP32, Shape: []int64{-1}}, {Name: "label", Datatype: oip.INT64, Shape: []int64{-1}}},
		}
	}
	fp32 := oneInput(oip.FP32, -1, 2)
	longLine := `{"a": 1, "b": 2, "y": "` + strings.Repeat("x", MaxGoldenLine) + `"}` + "\n"
	tests := map[string]struct {
		file    string // name under the version directory; "" = none written
		content string
		g       manifest.GoldenSet // Features a, b and Label y unless set
		sig     *runtime.Signature
		want    string
	}{
		"missing feature column": {file: "g.csv", content: "a,y\n1,2\n", want: `golden set g.csv: missing column "b" (the header has "a", "y")`},
		"missing label column":   {file: "g.csv", content: "a,b\n1,2\n", want: `missing column "y"`},
		"duplicate column":       {file: "g.csv", content: "a,b,a,y\n1,2,3,4\n", want: `column "a" appears more than once in the header`},
		"non-numeric feature":    {file: "g.csv", content: "a,b,y\n1,2,3\n4,abc,5\n", want: `golden set g.csv: line 3, column "b": "abc" is not a number`},
		"hexadecimal feature":    {file: "g.csv", content: "a,b,y\n0x1p-2,2,3\n", want: `line 2, column "a": "0x1p-2" is not a number`},
		"underscore feature":     {file: "g.csv", content: "a,b,y\n1_000,2,3\n", sig: ptr(oneInput(oip.INT64, -1, 2)), want: `"1_000" is not a number`},
		"empty feature":          {file: "g.csv", content: "a,b,y\n,2,3\n", want: `line 2, column "a": is empty; want a number`},
		"ragged row":             {file: "g.csv", content: "a,b,y\n1,2,3\n1,2\n", want: `record on line 3: wrong number of fields`},
		"empty csv":              {file: "g.csv", content: "", want: "golden set g.csv: is empty; want a header row and at least one row"},
		"header only":            {file: "g.csv", content: "a,b,y\n", want: "has a header but no rows"},
		"regression label text":  {file: "g.csv", content: "a,b,y\n1,2,3\n1,2,cat\n", g: manifest.GoldenSet{Task: reg}, want: `line 3, column "y": "cat" is not a finite number`},
		"empty class label":      {file: "g.csv", content: "a,b,y\n1,2, \n", want: `line 2, column "y": is empty; want a class`},
		"FP32 out of range":      {file: "g.csv", content: "a,b,y\n1e39,2,3\n", want: `"1e39" is out of the range of FP32`},
		"integer input fraction": {file: "g.csv", content: "a,b,y\n1.5,2,3\n", sig: ptr(oneInput(oip.INT64, -1, 2)), want: `line 2, column "a": "1.5" is not an integer (the input is INT64)`},
		"INT32 out of range":     {file: "g.csv", content: "a,b,y\n1,3000000000,3\n", sig: ptr(oneInput(oip.INT32, -1, 2)), want: `column "b": "3000000000" is out of the range of INT32`},
		"integer input NaN":      {file: "g.csv", content: "a,b,y\n1,NaN,3\n", sig: ptr(oneInput(oip.INT32, -1, 2)), want: `"NaN" is not an integer`},
		"jsonl missing key":      {file: "g.jsonl", content: `{"a": 1, "y": 1}` + "\n", want: `golden set g.jsonl: line 1: missing column "b"`},
		"jsonl missing label":    {file: "g.jsonl", content: "\n" + `{"a": 1, "b": 2}` + "\n", want: `line 2: missing column "y"`},
		"jsonl non-numeric":      {file: "g.jsonl", content: `{"a": 1, "b": 2, "y": 1}` + "\n" + `{"a": 1, "b": "x", "y": 1}`, want: `line 2, column "b": "x" is not a number`},
		"jsonl boolean feature":  {file: "g.jsonl", content: `{"a": true, "b": 2, "y": 1}`, want: `line 1, column "a": want a number, got a boolean`},
		"jsonl null feature":     {file: "g.jsonl", content: `{"a": null, "b": 2, "y": 1}`, want: `line 1, column "a": want a number, got null`},
		"jsonl null label":       {file: "g.jsonl", content: `{"a": 1, "b": 2, "y": null}`, want: `line 1, column "y": is null`},
		"jsonl fractional class": {file: "g.jsonl", content: `{"a": 1, "b": 2, "y": 0.5}`, want: `line 1, column "y": want a class (a string, an integer or a boolean) for a classification model, got 0.5`},
		"jsonl regression bool":  {file: "g.jsonl", content: `{"a": 1, "b": 2, "y": true}`, g: manifest.GoldenSet{Task: reg}, want: `line 1, column "y": want a number, got a boolean`},
		"jsonl not an object":    {file: "g.jsonl", content: `[1, 2, 3]`, want: `line 1: want a JSON object`},
		"jsonl bad JSON":         {file: "g.jsonl", content: `{"a": 1,`, want: `line 1: unexpected end of JSON input`},
		"jsonl line too long":    {file: "g.jsonl", content: `{"a": 1, "b": 2, "y": 1}` + "\n" + longLine, want: "line 2 is longer than 1048576 bytes"},
		"empty jsonl":            {file: "g.jsonl", content: "\n\n", want: "golden set g.jsonl: is empty; want one JSON object per line"},
		"feature count":          {file: "g.csv", content: "a,b,y\n1,2,3\n", sig: ptr(oneInput(oip.FP32, -1, 3)), want: `input "x" has 3 features (shape [-1 3]) but the golden set lists 2`},
		"input not rank 2":       {file: "g.csv", content: "a,b,y\n1,2,3\n", sig: ptr(oneInput(oip.FP32, -1, 2, 1)), want: `input "x" has shape [-1 2 1]; golden sets feed inputs of shape [batch, features]`},
		"input datatype":         {file: "g.csv", content: "a,b,y\n1,2,3\n", sig: ptr(oneInput(oip.BYTES, -1, 2)), want: `input "x" has datatype BYTES; golden sets feed FP32, FP64, INT32 or INT64 inputs`},
		"unknown input":          {file: "g.csv", content: "a,b,y\n1,2,3\n", g: manifest.GoldenSet{Input: "nope"}, want: `input "nope" is not an input of the model ("x")`},
		"several inputs": {file: "g.csv", content: "a,b,y\n1,2,3\n", g: manifest.GoldenSet{Input: "x"},
			sig:  &runtime.Signature{Inputs: []runtime.TensorSpec{{Name: "x", Datatype: oip.FP32, Shape: []int64{-1, 2}}, {Name: "z", Datatype: oip.FP32, Shape: []int64{-1, 1}}}, Outputs: fp32.Outputs},
			want: `the model has 2 inputs ("x", "z"); a golden set feeds a model with one input`},
		"no inputs":             {file: "g.csv", content: "a,b,y\n1,2,3\n", sig: &runtime.Signature{}, want: "the model has no inputs"},
		"unknown output":        {file: "g.csv", content: "a,b,y\n1,2,3\n", g: manifest.GoldenSet{Output: "nope"}, want: `output "nope" is not an output of the model ("y" FP32 [-1], "label" INT64 [-1])`},
		"named output unusable": {file: "g.csv", content: "a,b,y\n1,2,3\n", g: manifest.GoldenSet{Output: "label", Task: reg}, want: `output "label" (INT64 [-1]) cannot hold regression values`},
		"no usable output": {file: "g.csv", content: "a,b,y\n1,2,3\n",
			sig:  &runtime.Signature{Inputs: fp32.Inputs, Outputs: []runtime.TensorSpec{{Name: "emb", Datatype: oip.FP32, Shape: []int64{-1, 8, 8}}}},
			want: `no output of the model ("emb" FP32 [-1 8 8]) holds class labels`},
		"missing file":        {file: "", g: manifest.GoldenSet{Path: "eval/none.csv"}, want: "golden set eval/none.csv: open"},
		"escaping path":       {file: "", g: manifest.GoldenSet{Path: "../g.csv"}, want: "path must be a clean relative path"},
		"unknown format":      {file: "g.csv", content: "a,b,y\n1,2,3\n", g: manifest.GoldenSet{Format: "parquet"}, want: `format "parquet" is neither csv nor jsonl`},
		"unknown extension":   {file: "g.txt", content: "a,b,y\n1,2,3\n", want: `format "" is neither csv nor jsonl`},
		"unknown task":        {file: "g.csv", content: "a,b,y\n1,2,3\n", g: manifest.GoldenSet{Task: "ranking"}, want: `task "ranking" is neither`},
		"too many csv rows":   {file: "g.csv", content: "a,b,y\n1,2,3\n1,2,3\n1,2,3\n1,2,3\n", want: "has more than 3 rows"},
		"too many jsonl rows": {file: "g.jsonl", content: strings.Repeat(`{"a":1,"b":2,"y":1}`+"\n", 4), want: "has more than 3 rows"},
		"static batch of 0":   {file: "g.csv", content: "a,b,y\n1,2,3\n", sig: ptr(oneInput(oip.FP32, 0, 2)), want: "a batch of 0 rows"},
	}
	old := maxGoldenRows
	maxGoldenRows = 3
	t.Cleanup(func() { maxGoldenRows = old })
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			g := tc.g
			if g.Path == "" {
				g.Path = tc.file
			}
			if g.Task == "" {
				g.Task = cls
			}
			g.Features, g.Label = []string{"a", "b"}, "y"
			sig := fp32
			if tc.sig != nil {
				sig = *tc.sig
			}
			if tc.file != "" {
				writeFile(t, filepath.Join(dir, tc.file), tc.content)
			}
			gs, err := LoadGoldenSet(dir, &g, sig)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("LoadGoldenSet = %v, %v; want an error containing %q", gs, err, tc.want)
			}
		})
	}
	if _, err := LoadGoldenSet(t.TempDir(), nil, fp32); err == nil {
		t.Error("nil golden set accepted")
	}
}

func ptr[T any](v T) *T { return &v }

var fuzzLayouts = []layout{
	{task: cls, features: []string{"a", "b"}, label: "y", dtype: oip.FP32},
	{task: reg, features: []string{"b"}, label: "y", dtype: oip.INT32},
}

func checkTable(t *testing.T, tb table, l layout) {
	if tb.rows < 1 || oip.Len(tb.data) != tb.rows*len(l.features) {
		t.Fatalf("%d rows, %d features", tb.rows, oip.Len(tb.data))
	}
	if l.task == cls && len(tb.classes) != tb.rows || l.task == reg && len(tb.values) != tb.rows {
		t.Fatalf("%d rows, %d classes, %d values", tb.rows, len(tb.classes), len(tb.values))
	}
	for _, c := range tb.classes {
		if c == "" {
			t.Fatal("empty class")
		}
	}
	for _, v := range tb.values {
		if !finite(v) {
			t.Fatalf("label %v", v)
		}
	}
}

func FuzzGoldenCSV(f *testing.F) {
	for _, s := range []string{
		"a,b,y\n1,2,cat\n3.5,-4e3,dog\n",
		"\ufeffy,b,a\n1,2,3\n",
		"a,b,y\n\"1\",\" 2 \",\"x,y\"\n",
		"a,b,y\nNaN,Inf,1\n",
		"a,b\n1,2\n", "a,b,y\n1,2\n", "", "a,a,y\n1,2,3\n", "a,b,y\n1,2,3\n\"unterminated\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, l := range fuzzLayouts {
			if tb, err := parseCSV(bytes.NewReader(data), l); err == nil {
				checkTable(t, tb, l)
			}
		}
	})
}

func FuzzGoldenJSONL(f *testing.F) {
	for _, s := range []string{
		`{"a": 1, "b": 2, "y": "cat"}` + "\n" + `{"a": 1.5, "b": "3", "y": 2}`,
		`{"a": 1, "b": 2, "y": true}`,
		`{"a": 1, "b": 2, "y": null}`,
		`{"a": [1], "b": {}, "y": 1}`,
		"\n\n", `[]`, `{"a":1`, `{"b": 1e400, "y": -0}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, l := range fuzzLayouts {
			if tb, err := parseJSONL(bytes.NewReader(data), l); err == nil {
				checkTable(t, tb, l)
			}
		}
	})
}
