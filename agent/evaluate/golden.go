package evaluate

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/drover-ml/drover/shared/manifest"
	"github.com/drover-ml/drover/shared/oip"
	"github.com/drover-ml/drover/shared/runtime"
)

// Bounds on golden sets.
const (
	// MaxGoldenRows is the most rows a golden set may have.
	MaxGoldenRows = 1_000_000
	// MaxGoldenBytes bounds a golden set file.
	MaxGoldenBytes = 1 << 30
	// MaxGoldenLine bounds one line of a JSONL golden set.
	MaxGoldenLine = 1 << 20
	// GoldenBatch is the number of rows per model run when the input's
	// batch dimension is dynamic.
	GoldenBatch = 512
	// maxGoldenScores bounds the probabilities kept for the golden set's
	// AUC (128 MiB); beyond it, AUC is computed over the last rows.
	maxGoldenScores = 1 << 24
)

// maxGoldenRows is MaxGoldenRows, lowered by tests.
var maxGoldenRows = MaxGoldenRows

// GoldenSet is a loaded golden set: features ready to feed the model's input
// and the labels to compare its predictions with. It is immutable and safe
// for concurrent use.
type GoldenSet struct {
	task   string
	input  string
	dtype  oip.Datatype
	width  int
	batch  int  // rows per run
	static bool // the batch dimension is static: every run has exactly batch rows
	output string
	table
}

// table is the parsed content of a golden set file.
type table struct {
	rows    int
	data    any // features, row-major, of the input's datatype
	classes []string
	values  []float64
}

// layout says what to read from a golden set file.
type layout struct {
	task     string
	features []string
	label    string
	dtype    oip.Datatype
}

// Len returns the number of rows.
func (g *GoldenSet) Len() int { return g.rows }

// Task returns manifest.TaskClassification or manifest.TaskRegression.
func (g *GoldenSet) Task() string { return g.task }

// LoadGoldenSet reads the golden set that g describes from the version
// directory dir, for a model with signature sig.
//
// The file (dir/g.Path) is CSV with a header row, or JSONL with one object
// per line (blank lines skipped); other columns or keys are ignored. The
// feature columns, in g.Features' order, become the rows of a
// [N, len(g.Features)] tensor for the input g.Input (default the model's
// only input), of that input's datatype: FP32, FP64, INT32 or INT64. A
// feature is a number (in JSONL a number or a string holding one; NaN and
// Inf are accepted for float inputs, as missing values); integer inputs need
// integral values. The label is a class for classification (CSV: the text as
// it is, trimmed; JSONL: a string, an integer written in decimal or a
// boolean as "1"/"0") and a number for regression.
//
// Every problem is an error naming the file and, for bad values, the line
// and column: a missing column, a value that is not a number, a model with
// several inputs or whose input is not [batch, len(features)], an unknown
// input or output, an output that cannot hold predictions for the task, an
// empty file, more than MaxGoldenRows rows or MaxGoldenBytes bytes. Such a
// version should be rejected.
func LoadGoldenSet(dir string, g *manifest.GoldenSet, sig runtime.Signature) (*GoldenSet, error) {
	if g == nil {
		return nil, errors.New("no golden set")
	}
	gs, err := loadGolden(dir, g, sig)
	if err != nil {
		return nil, fmt.Errorf("golden set %s: %w", g.Path, err)
	}
	return gs, nil
}

func loadGolden(dir string, g *manifest.GoldenSet, sig runtime.Signature) (*GoldenSet, error) {
	if g.Task != manifest.TaskClassification && g.Task != manifest.TaskRegression {
		return nil, fmt.Errorf("task %q is neither %q nor %q", g.Task, manifest.TaskClassification, manifest.TaskRegression)
	}
	if len(g.Features) == 0 || g.Label == "" {
		return nil, errors.New("needs feature columns and a label column")
	}
	format := g.Format
	if format == "" {
		switch strings.ToLower(path.Ext(g.Path)) {
		case ".csv":
			format = "csv"
		case ".jsonl", ".ndjson":
			format = "jsonl"
		}
	}
	if format != "csv" && format != "jsonl" {
		return nil, fmt.Errorf("format %q is neither csv nor jsonl", g.Format)
	}
	gs := &GoldenSet{task: g.Task, output: g.Output}
	spec, err := goldenInput(sig, g.Input)
	if err != nil {
		return nil, err
	}
	gs.input, gs.dtype, gs.width = spec.Name, spec.Datatype, len(g.Features)
	switch spec.Datatype {
	case oip.FP32, oip.FP64, oip.INT32, oip.INT64:
	default:
		return nil, fmt.Errorf("input %q has datatype %s; golden sets feed FP32, FP64, INT32 or INT64 inputs", spec.Name, spec.Datatype)
	}
	if len(spec.Shape) != 2 {
		return nil, fmt.Errorf("input %q has shape %v; golden sets feed inputs of shape [batch, features]", spec.Name, spec.Shape)
	}
	if w := spec.Shape[1]; w >= 0 && w != int64(gs.width) {
		return nil, fmt.Errorf("input %q has %d features (shape %v) but the golden set lists %d", spec.Name, w, spec.Shape, gs.width)
	}
	switch b := spec.Shape[0]; {
	case b < 0:
		gs.batch = GoldenBatch
	case b == 0:
		return nil, fmt.Errorf("input %q has shape %v, a batch of 0 rows", spec.Name, spec.Shape)
	case b > 1<<16:
		return nil, fmt.Errorf("input %q has a static batch of %d rows, more than %d", spec.Name, b, 1<<16)
	default:
		gs.batch, gs.static = int(b), true
	}
	if err := goldenOutput(sig, g.Task, g.Output); err != nil {
		return nil, err
	}

	if !fs.ValidPath(g.Path) || g.Path == "." {
		return nil, errors.New("path must be a clean relative path inside the version directory")
	}
	f, err := os.Open(filepath.Join(dir, filepath.FromSlash(g.Path)))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return nil, err
	} else if !fi.Mode().IsRegular() {
		return nil, errors.New("is not a regular file")
	} else if fi.Size() > MaxGoldenBytes {
		return nil, fmt.Errorf("is %d bytes, more than %d", fi.Size(), MaxGoldenBytes)
	}
	r := bufio.NewReaderSize(io.LimitReader(f, MaxGoldenBytes), 64<<10)
	l := layout{task: g.Task, features: g.Features, label: g.Label, dtype: gs.dtype}
	if format == "csv" {
		gs.table, err = parseCSV(r, l)
	} else {
		gs.table, err = parseJSONL(r, l)
	}
	if err != nil {
		return nil, err
	}
	return gs, nil
}

// goldenInput returns the input a golden set feeds.
func goldenInput(sig runtime.Signature, name string) (runtime.TensorSpec, error) {
	names := make([]string, len(sig.Inputs))
	for i, in := range sig.Inputs {
		names[i] = strconv.Quote(in.Name)
	}
	list := strings.Join(names, ", ")
	var spec *runtime.TensorSpec
	for i := range sig.Inputs {
		if name == "" || sig.Inputs[i].Name == name {
			spec = &sig.Inputs[i]
			break
		}
	}
	switch {
	case len(sig.Inputs) == 0:
		return runtime.TensorSpec{}, errors.New("the model has no inputs")
	case name != "" && spec == nil:
		return runtime.TensorSpec{}, fmt.Errorf("input %q is not an input of the model (%s)", name, list)
	case len(sig.Inputs) > 1:
		return runtime.TensorSpec{}, fmt.Errorf("the model has %d inputs (%s); a golden set feeds a model with one input", len(sig.Inputs), list)
	}
	return *spec, nil
}

// goldenOutput checks that the model has an output usable for task (the
// named one when name is set).
func goldenOutput(sig runtime.Signature, task, name string) error {
	var names []string
	for _, out := range sig.Outputs {
		names = append(names, fmt.Sprintf("%q %s %v", out.Name, out.Datatype, out.Shape))
		if name != "" && out.Name != name {
			continue
		}
		if kindOf(task, out.Datatype, out.Shape) != kindNone {
			return nil
		}
		if name != "" {
			want := valueShapes
			if task == manifest.TaskClassification {
				want = labelShapes + " or " + probShapes
			}
			return fmt.Errorf("output %q (%s %v) cannot hold %s for a %s model", name, out.Datatype, out.Shape, want, task)
		}
	}
	if name != "" {
		return fmt.Errorf("output %q is not an output of the model (%s)", name, strings.Join(names, ", "))
	}
	want := valueShapes
	if task == manifest.TaskClassification {
		want = labelShapes + " or " + probShapes
	}
	return fmt.Errorf("no output of the model (%s) holds %s", strings.Join(names, ", "), want)
}

// features accumulates feature values as one typed slice.
type features struct {
	dt  oip.Datatype
	f32 []float32
	f64 []float64
	i32 []int32
	i64 []int64
}

func (b *features) add(text string) error {
	s := strings.TrimSpace(text)
	switch {
	case s == "":
		return errors.New("is empty; want a number")
	case !decimal(s):
		return fmt.Errorf("%s is not a number", quoteValue(s))
	}
	switch b.dt {
	case oip.FP32, oip.FP64:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return fmt.Errorf("%s is not a number", quoteValue(s))
		}
		if b.dt == oip.FP64 {
			if err != nil {
				return fmt.Errorf("%s is out of the range of FP64", quoteValue(s))
			}
			b.f64 = append(b.f64, f)
			return nil
		}
		if err != nil || finite(f) && math.IsInf(float64(float32(f)), 0) {
			return fmt.Errorf("%s is out of the range of FP32", quoteValue(s))
		}
		b.f32 = append(b.f32, float32(f))
	case oip.INT32, oip.INT64:
		bits := 64
		if b.dt == oip.INT32 {
			bits = 32
		}
		i, err := strconv.ParseInt(s, 10, bits)
		if err != nil {
			f, ferr := strconv.ParseFloat(s, 64)
			switch {
			case ferr != nil && !errors.Is(ferr, strconv.ErrRange):
				return fmt.Errorf("%s is not a number", quoteValue(s))
			case !finite(f) || f != math.Trunc(f):
				return fmt.Errorf("%s is not an integer (the input is %s)", quoteValue(s), b.dt)
			case f < -math.Ldexp(1, bits-1) || f >= math.Ldexp(1, bits-1):
				return fmt.Errorf("%s is out of the range of %s", quoteValue(s), b.dt)
			}
			i = int64(f)
		}
		if bits == 32 {
			b.i32 = append(b.i32, int32(i))
		} else {
			b.i64 = append(b.i64, i)
		}
	}
	return nil
}

func (b *features) data() any {
	switch b.dt {
	case oip.FP32:
		return b.f32
	case oip.FP64:
		return b.f64
	case oip.INT32:
		return b.i32
	}
	return b.i64
}

func quoteValue(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return strconv.Quote(s)
}

// decimal rejects what strconv.ParseFloat accepts beyond decimal numbers,
// NaN and Inf: hexadecimal floats and underscores.
func decimal(s string) bool { return !strings.ContainsAny(s, "_xXpP") }

// number parses a regression label.
func number(text string) (float64, error) {
	s := strings.TrimSpace(text)
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || !finite(f) || !decimal(s) {
		return 0, fmt.Errorf("%s is not a finite number", quoteValue(s))
	}
	return f, nil
}

func parseCSV(r io.Reader, l layout) (table, error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return table{}, errors.New("is empty; want a header row and at least one row")
	}
	if err != nil {
		return table{}, err
	}
	col := make(map[string]int, len(header))
	for i, h := range header {
		if i == 0 {
			h = strings.TrimPrefix(h, "\ufeff") // a byte order mark
		}
		h = strings.TrimSpace(h)
		if _, dup := col[h]; dup {
			col[h] = -1 // ambiguous
		} else {
			col[h] = i
		}
	}
	find := func(name string) (int, error) {
		i, ok := col[name]
		switch {
		case !ok:
			return 0, fmt.Errorf("missing column %q (the header has %s)", name, quoteList(header))
		case i < 0:
			return 0, fmt.Errorf("column %q appears more than once in the header", name)
		}
		return i, nil
	}
	feat := make([]int, len(l.features))
	for j, name := range l.features {
		if feat[j], err = find(name); err != nil {
			return table{}, err
		}
	}
	lab, err := find(l.label)
	if err != nil {
		return table{}, err
	}
	t := table{}
	b := features{dt: l.dtype}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return table{}, err
		}
		if t.rows == maxGoldenRows {
			return table{}, fmt.Errorf("has more than %d rows", maxGoldenRows)
		}
		t.rows++
		for j, i := range feat {
			if err := b.add(rec[i]); err != nil {
				line, _ := cr.FieldPos(i)
				return table{}, fmt.Errorf("line %d, column %q: %w", line, l.features[j], err)
			}
		}
		if err := t.addLabel(l.task, rec[lab], nil); err != nil {
			line, _ := cr.FieldPos(lab)
			return table{}, fmt.Errorf("line %d, column %q: %w", line, l.label, err)
		}
	}
	if t.rows == 0 {
		return table{}, errors.New("has a header but no rows")
	}
	t.data = b.data()
	return t, nil
}

func quoteList(names []string) string {
	q := make([]string, 0, len(names))
	for i, n := range names {
		if i == 20 {
			q = append(q, fmt.Sprintf("and %d more", len(names)-i))
			break
		}
		q = append(q, quoteValue(n))
	}
	return strings.Join(q, ", ")
}

// addLabel appends a label given as text (CSV, a JSON string's content) or,
// when raw is set, as a JSON value.
func (t *table) addLabel(task, text string, raw json.RawMessage) error {
	if task == manifest.TaskRegression {
		if raw != nil {
			if raw[0] != '"' && raw[0] != '-' && (raw[0] < '0' || raw[0] > '9') {
				return fmt.Errorf("want a number, got %s", jsonKind(raw))
			}
			text = string(raw)
			if raw[0] == '"' {
				if err := json.Unmarshal(raw, &text); err != nil {
					return err
				}
			}
		}
		v, err := number(text)
		if err != nil {
			return err
		}
		t.values = append(t.values, v)
		return nil
	}
	if raw != nil {
		label, err := parseLabel(raw)
		if err != nil {
			return err
		}
		if text, err = classOf(label); err != nil {
			return err
		}
	} else {
		text = strings.TrimSpace(text)
		switch {
		case text == "":
			return errors.New("is empty; want a class")
		case len(text) > MaxLabelBytes:
			return fmt.Errorf("is %d bytes, more than %d", len(text), MaxLabelBytes)
		}
	}
	t.classes = append(t.classes, text)
	return nil
}

func parseJSONL(r io.Reader, l layout) (table, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), MaxGoldenLine)
	t := table{}
	b := features{dt: l.dtype}
	line := 0
	for sc.Scan() {
		line++
		text := bytes.TrimSpace(sc.Bytes())
		if line == 1 {
			text = bytes.TrimPrefix(text, []byte("\ufeff"))
		}
		if len(text) == 0 {
			continue
		}
		if text[0] != '{' {
			return table{}, fmt.Errorf("line %d: want a JSON object", line)
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(text, &obj); err != nil {
			return table{}, fmt.Errorf("line %d: %w", line, err)
		}
		if t.rows == maxGoldenRows {
			return table{}, fmt.Errorf("has more than %d rows", maxGoldenRows)
		}
		t.rows++
		for _, name := range l.features {
			raw, ok := obj[name]
			if !ok {
				return table{}, fmt.Errorf("line %d: missing column %q", line, name)
			}
			if err := addJSONFeature(&b, raw); err != nil {
				return table{}, fmt.Errorf("line %d, column %q: %w", line, name, err)
			}
		}
		raw, ok := obj[l.label]
		if !ok {
			return table{}, fmt.Errorf("line %d: missing column %q", line, l.label)
		}
		if string(raw) == "null" {
			return table{}, fmt.Errorf("line %d, column %q: is null", line, l.label)
		}
		if err := t.addLabel(l.task, "", raw); err != nil {
			return table{}, fmt.Errorf("line %d, column %q: %w", line, l.label, err)
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return table{}, fmt.Errorf("line %d is longer than %d bytes", line+1, MaxGoldenLine)
		}
		return table{}, err
	}
	if t.rows == 0 {
		return table{}, errors.New("is empty; want one JSON object per line")
	}
	t.data = b.data()
	return t, nil
}

func addJSONFeature(b *features, raw json.RawMessage) error {
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return err
		}
		return b.add(s)
	case '{', '[', 't', 'f', 'n':
		return fmt.Errorf("want a number, got %s", jsonKind(raw))
	}
	return b.add(string(raw))
}

// Evaluate runs the model over the golden set and computes its metrics (see
// the package documentation). run runs one batch: a single input tensor of
// GoldenBatch rows at most (exactly the input's batch size when its batch
// dimension is static, the last batch padded by repeating its last row); it
// must not modify or keep the input's data, which is shared with the golden
// set. sig supplies the class labels of probability outputs. An error of run
// or of extracting predictions stops the evaluation and is returned with the
// rows it concerned. Safe for concurrent use.
func (g *GoldenSet) Evaluate(run func(inputs []oip.Tensor) ([]oip.Tensor, error), sig runtime.Signature) (Result, error) {
	s := newSeries(g.task, 1, g.rows, math.MaxInt32)
	for start := 0; start < g.rows; start += g.batch {
		n := min(g.batch, g.rows-start)
		in := oip.Tensor{Name: g.input, Datatype: g.dtype, Shape: []int64{int64(n), int64(g.width)}, Data: g.slice(start, n)}
		if g.static && n < g.batch {
			in.Shape[0], in.Data = int64(g.batch), g.padded(start, n)
		}
		outs, err := run([]oip.Tensor{in})
		if err != nil {
			return Result{}, fmt.Errorf("golden set rows %d-%d: run the model: %w", start+1, start+n, err)
		}
		preds, classes, err := ExtractPredictions(g.task, sig, outs, ExtractOptions{Output: g.output})
		if err != nil {
			return Result{}, fmt.Errorf("golden set rows %d-%d: %w", start+1, start+n, err)
		}
		if len(preds) != int(in.Shape[0]) {
			return Result{}, fmt.Errorf("golden set rows %d-%d: the model returned %d predictions for %d rows", start+1, start+n, len(preds), in.Shape[0])
		}
		if start == 0 && len(classes) > 0 {
			s.res.max = min(g.rows, max(1, maxGoldenScores/len(classes)))
		}
		for i := range n {
			var label string
			var value float64
			if g.task == manifest.TaskClassification {
				label = g.classes[start+i]
			} else {
				value = g.values[start+i]
			}
			s.add(0, g.task, &preds[i], classes, label, value)
		}
	}
	return s.snapshot(0, 0).result(), nil
}

// WarmupInputs returns the inputs of the first run Evaluate makes (the
// first batch of rows, padded to a static batch size), for warming a
// version up on real data. The data is shared with g: callers must not
// modify it.
func (g *GoldenSet) WarmupInputs() []oip.Tensor {
	n := min(g.batch, g.rows)
	in := oip.Tensor{Name: g.input, Datatype: g.dtype, Shape: []int64{int64(n), int64(g.width)}, Data: g.slice(0, n)}
	if g.static && n < g.batch {
		in.Shape[0], in.Data = int64(g.batch), g.padded(0, n)
	}
	return []oip.Tensor{in}
}

// slice returns the features of rows [start, start+n), sharing g's data.
func (g *GoldenSet) slice(start, n int) any {
	lo, hi := start*g.width, (start+n)*g.width
	switch d := g.data.(type) {
	case []float32:
		return d[lo:hi:hi]
	case []float64:
		return d[lo:hi:hi]
	case []int32:
		return d[lo:hi:hi]
	case []int64:
		return d[lo:hi:hi]
	}
	return nil
}

// padded returns rows [start, start+n) followed by copies of the last one,
// g.batch rows in all.
func (g *GoldenSet) padded(start, n int) any {
	switch d := g.slice(start, n).(type) {
	case []float32:
		return padRows(d, g.width, g.batch)
	case []float64:
		return padRows(d, g.width, g.batch)
	case []int32:
		return padRows(d, g.width, g.batch)
	case []int64:
		return padRows(d, g.width, g.batch)
	}
	return nil
}

func padRows[T any](rows []T, width, batch int) []T {
	out := make([]T, 0, width*batch)
	out = append(out, rows...)
	last := rows[len(rows)-width:]
	for len(out) < width*batch {
		out = append(out, last...)
	}
	return out
}
