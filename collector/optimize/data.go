package optimize

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"gonum.org/v1/gonum/mat"

	"github.com/drover-ml/drover/collector/labels"
	"github.com/drover-ml/drover/collector/optimize/learn"
)

// table is labelled rows in time order (oldest first): the features of
// each row in the model input's order and its label as text ("1",
// "setosa", "3.5").
type table struct {
	x      [][]float64
	labels []string
}

func (t *table) rows() int { return len(t.labels) }

func (t *table) add(x []float64, label string) {
	t.x = append(t.x, x)
	t.labels = append(t.labels, label)
}

// slice returns rows [lo, hi) (sharing t's rows).
func (t *table) slice(lo, hi int) *table {
	return &table{x: t.x[lo:hi], labels: t.labels[lo:hi]}
}

// dataset turns t into a learn.Dataset for sig's task; labels are
// encoded by sig (a label of the wrong type, a class the model does not
// know: a clear error naming the row).
func (t *table) dataset(task learn.Task, classes int, encode func([]string) ([]float64, error)) (*learn.Dataset, error) {
	y, err := encode(t.labels)
	if err != nil {
		return nil, err
	}
	d := &learn.Dataset{Y: y, Task: task}
	if task == learn.Classification {
		d.Classes = classes
	}
	if len(t.x) > 0 {
		cols := len(t.x[0])
		x := mat.NewDense(len(t.x), cols, nil)
		for i, r := range t.x {
			if len(r) != cols {
				return nil, fmt.Errorf("row %d has %d features, row 0 has %d", i, len(r), cols)
			}
			x.SetRow(i, r)
		}
		d.X = x
	}
	return d, nil
}

// labelText turns a stored label's JSON text into the text EncodeLabels
// reads: a JSON string unquoted, a number or boolean as written.
func labelText(stored string) string {
	s := strings.TrimSpace(stored)
	if strings.HasPrefix(s, `"`) {
		var v string
		if json.Unmarshal([]byte(s), &v) == nil {
			return v
		}
	}
	return s
}

// oipTensor is a tensor of an OIP JSON body as the agent samples it.
type oipTensor struct {
	Name     string            `json:"name"`
	Datatype string            `json:"datatype"`
	Shape    []int64           `json:"shape"`
	Data     []json.RawMessage `json:"data"`
}

// sampleFeatures reads element elem of the input tensor named input from a
// sample's inputs (the agent writes them as an OIP JSON body whose
// tensors are under "outputs"; "inputs" and a bare array are read too).
// The tensor must be [N, features] (or [features] for one row); a value
// that is not a number is NaN, which validation reports as missing.
func sampleFeatures(inputs, input string, elem, features int) ([]float64, error) {
	var body struct {
		Inputs  []oipTensor `json:"inputs"`
		Outputs []oipTensor `json:"outputs"`
	}
	var ts []oipTensor
	raw := bytes.TrimSpace([]byte(inputs))
	if len(raw) > 0 && raw[0] == '[' {
		if err := json.Unmarshal(raw, &ts); err != nil {
			return nil, fmt.Errorf("inputs: %v", err)
		}
	} else {
		if err := json.Unmarshal(raw, &body); err != nil {
			return nil, fmt.Errorf("inputs: %v", err)
		}
		ts = append(body.Inputs, body.Outputs...)
	}
	var t *oipTensor
	for i := range ts {
		if ts[i].Name == input || len(ts) == 1 && input == "" {
			t = &ts[i]
			break
		}
	}
	if t == nil {
		names := make([]string, len(ts))
		for i := range ts {
			names[i] = ts[i].Name
		}
		return nil, fmt.Errorf("the sample has no input %q (it has %q)", input, names)
	}
	cols := features
	switch len(t.Shape) {
	case 1:
		if elem != 0 {
			return nil, fmt.Errorf("input %q has shape %v: no element %d", input, t.Shape, elem)
		}
		if cols == 0 {
			cols = len(t.Data)
		}
	case 2:
		if cols == 0 {
			cols = int(t.Shape[1])
		}
		if t.Shape[1] != int64(cols) {
			return nil, fmt.Errorf("input %q has %d features, the model takes %d", input, t.Shape[1], cols)
		}
	default:
		return nil, fmt.Errorf("input %q has shape %v; the optimizer reads [N, features]", input, t.Shape)
	}
	if cols <= 0 || (elem+1)*cols > len(t.Data) {
		return nil, fmt.Errorf("input %q: %d values, no element %d of %d features", input, len(t.Data), elem, cols)
	}
	x := make([]float64, cols)
	for j, v := range t.Data[elem*cols : (elem+1)*cols] {
		x[j] = jsonNumber(v)
	}
	return x, nil
}

// jsonNumber reads a JSON number; "NaN", "Infinity" and "-Infinity" as
// strings (how the agent writes them) are those values; anything else is
// NaN (a missing feature).
func jsonNumber(v json.RawMessage) float64 {
	var f float64
	if json.Unmarshal(v, &f) == nil {
		return f
	}
	var s string
	if json.Unmarshal(v, &s) == nil {
		switch s {
		case "Infinity", "+Infinity", "inf", "+inf":
			return math.Inf(1)
		case "-Infinity", "-inf":
			return math.Inf(-1)
		}
	}
	return math.NaN()
}

// fromLabelled builds the table of labelled samples for the input named
// input of features features (0: as the first sample says). A sample whose
// inputs cannot be read is an error naming its request id.
func fromLabelled(js []labels.Joined, input string, features int) (*table, error) {
	t := &table{}
	for _, j := range js {
		x, err := sampleFeatures(j.Inputs, input, j.Element, features)
		if err != nil {
			return nil, fmt.Errorf("labelled request %s: %w", j.RequestID, err)
		}
		if features == 0 {
			features = len(x)
		}
		t.add(x, labelText(j.Label))
	}
	return t, nil
}

// MaxCSVBytes bounds an uploaded CSV (POST /v1/models/{model}/optimize/csv);
// larger bodies are refused with 413. A version's training.csv is bounded
// by it too.
const MaxCSVBytes = 64 << 20

// maxCSVRows bounds the rows of a CSV.
const maxCSVRows = 1_000_000

// errCSV marks problems of a CSV's content (400).
var errCSV = errors.New("bad CSV")

// decodeCSV reads a CSV with a header row: the column named label holds
// each row's label, every other column is a numeric feature, in the model
// input's order (features of them; 0: any number). Empty cells and "NaN"
// are NaN (missing; validation refuses them), "inf" and "-inf" infinities.
// Errors wrap errCSV and name the line and column.
func decodeCSV(r io.Reader, label string, features int) (*table, error) {
	if label == "" {
		return nil, fmt.Errorf("%w: no label column named", errCSV)
	}
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: empty: want a header row", errCSV)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errCSV, err)
	}
	header = append([]string(nil), header...)
	li := -1
	for i, h := range header {
		if strings.TrimSpace(h) == label {
			if li >= 0 {
				return nil, fmt.Errorf("%w: the label column %q appears twice in the header", errCSV, label)
			}
			li = i
		}
	}
	if li < 0 {
		return nil, fmt.Errorf("%w: no column %q in the header %q", errCSV, label, header)
	}
	if n := len(header) - 1; features > 0 && n != features {
		return nil, fmt.Errorf("%w: %d feature columns, the model takes %d (the header is %q)", errCSV, n, features, header)
	}
	if len(header) < 2 {
		return nil, fmt.Errorf("%w: no feature columns", errCSV)
	}
	t := &table{}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			// %w: an oversized body stays an *http.MaxBytesError (413).
			return nil, fmt.Errorf("%w: %w", errCSV, err)
		}
		if t.rows() >= maxCSVRows {
			return nil, fmt.Errorf("%w: more than %d rows", errCSV, maxCSVRows)
		}
		line, _ := cr.FieldPos(0)
		x := make([]float64, 0, len(rec)-1)
		lab := ""
		for i, cell := range rec {
			cell = strings.TrimSpace(cell)
			if i == li {
				if cell == "" {
					return nil, fmt.Errorf("%w: line %d: empty label", errCSV, line)
				}
				lab = cell
				continue
			}
			v := math.NaN()
			if cell != "" {
				if v, err = strconv.ParseFloat(cell, 64); err != nil {
					return nil, fmt.Errorf("%w: line %d, column %q: %q is not a number", errCSV, line, header[i], cell)
				}
			}
			x = append(x, v)
		}
		t.add(x, lab)
	}
	if t.rows() == 0 {
		return nil, fmt.Errorf("%w: no rows after the header", errCSV)
	}
	return t, nil
}
