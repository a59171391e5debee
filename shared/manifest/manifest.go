// Package manifest defines drover.yaml, the optional manifest in a model
// version directory (<root>/<model>/<version>/drover.yaml). It is a contract
// between trainers, the re-optimizer that publishes versions, the agent and
// the collector; docs/manifest.md documents it. Change it only compatibly.
//
// Parse is strict: unknown fields, wrong types and invalid values are errors
// that name the field ("files[1].sha256: must be 64 lowercase hex digits").
package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

const (
	// FileName is the manifest's name inside a version directory.
	FileName = "drover.yaml"
	// ModelFile is the ONNX model's name inside a version directory.
	ModelFile = "model.onnx"
	// FormatONNX is the only model format today.
	FormatONNX = "onnx"
	// MaxSize bounds the manifest file; larger ones are rejected unread.
	MaxSize = 1 << 20
)

// Manifest is the parsed drover.yaml. Zero values mean "not given".
type Manifest struct {
	// Model is the model's name; it must match the model directory.
	Model string `yaml:"model"`
	// Version must match the version directory (a positive integer).
	Version int64 `yaml:"version"`
	// Format of the model file; "onnx" (the default when empty).
	Format string `yaml:"format,omitempty"`
	// Files lists the version's files with their sha256. When present, a
	// version is complete only if every file is there with that checksum.
	Files []File `yaml:"files,omitempty"`
	// Signature overrides or pins the model's inputs and outputs.
	Signature *Signature `yaml:"signature,omitempty"`
	// Lineage records where this version came from.
	Lineage Lineage `yaml:"lineage,omitempty"`
	// Training describes how the version was trained.
	Training *Training `yaml:"training,omitempty"`
	// GoldenSet is the labeled evaluation data shipped with the version.
	GoldenSet *GoldenSet `yaml:"golden_set,omitempty"`
	// Warmup says how to warm the version up before it serves.
	Warmup *Warmup `yaml:"warmup,omitempty"`
	// Features gives fixed histogram bins for drift detection.
	Features []Feature `yaml:"features,omitempty"`
	// Gate says how much worse than the serving version this one may be.
	Gate *Gate `yaml:"gate,omitempty"`
	// Optimize is the search space of the collector's built-in optimizer
	// (docs/optimize.md); absent, the optimizer detects the model's family
	// from its ONNX graph and searches that family's default grid.
	Optimize *Optimize `yaml:"optimize,omitempty"`
}

// Optimize is the search space and judging of the built-in optimizer.
// Zero values take the optimizer's defaults.
type Optimize struct {
	// Families are searched in order; each needs a name from
	// OptimizeFamilies and may give a grid (param: [values]); without a
	// grid the family's default grid is searched.
	Families []OptimizeFamily `yaml:"families,omitempty"`
	// Folds of the cross-validation (stratified for classification);
	// default 5, between 2 and 20.
	Folds int `yaml:"folds,omitempty"`
	// Metric is the score the search maximises (or, for a loss,
	// minimises), one of OptimizeMetrics; default accuracy for
	// classification, r2 for regression.
	Metric string `yaml:"metric,omitempty"`
	// Holdout is the share of the most recent rows held out to judge the
	// candidate against the serving version, in (0, 0.5]; default the
	// collector's jobs.builtin.holdout.
	Holdout float64 `yaml:"holdout,omitempty"`
	// TimeBudget bounds the search; a grid whose estimated time exceeds it
	// is refused before it starts. Default the collector's
	// jobs.builtin.time_budget.
	TimeBudget Duration `yaml:"time_budget,omitempty"`
	// IncludeTrainingData adds the version's training CSV (TrainingFile,
	// label column Label) to the labelled samples.
	IncludeTrainingData bool `yaml:"include_training_data,omitempty"`
	// Label is the label column of the training CSV; default "label".
	Label string `yaml:"label,omitempty"`
}

// OptimizeFamily is one model family of the search space.
type OptimizeFamily struct {
	Name string               `yaml:"name"`
	Grid map[string][]float64 `yaml:"grid,omitempty"`
}

// TrainingFile is the training CSV a version may carry for the optimizer
// (optimize.include_training_data): a header row, the label column
// (optimize.label) and the model input's features in its order.
const TrainingFile = "training.csv"

// OptimizeFamilies are the families the built-in optimizer trains.
var OptimizeFamilies = []string{"logistic_regression", "linear_regression", "ridge", "decision_tree", "random_forest", "gradient_boosting"}

// OptimizeMetrics are the optimizer's metrics, and whether higher is
// better.
var OptimizeMetrics = map[string]bool{
	"accuracy": true, "f1_macro": true, "auc": true, "r2": true,
	"log_loss": false, "mse": false, "mae": false,
}

// Duration is a time.Duration written as in Go ("90s", "10m") in YAML.
type Duration time.Duration

// UnmarshalYAML reads a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: %q: want a duration such as 90s or 10m", n.Line, s)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as a Go duration string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// File is one file of the version with its checksum.
type File struct {
	// Path is relative to the version directory, with forward slashes.
	Path string `yaml:"path"`
	// SHA256 is the lowercase hex sha256 of the file's content.
	SHA256 string `yaml:"sha256"`
	// Size in bytes; optional (0 = not checked).
	Size int64 `yaml:"size,omitempty"`
}

// Signature declares the model's inputs and outputs. Entries override what
// the runtime reads from the model (e.g. to give names to dynamic shapes).
type Signature struct {
	Inputs  []Tensor `yaml:"inputs,omitempty"`
	Outputs []Tensor `yaml:"outputs,omitempty"`
	// IntendedChange admits a signature that differs from the serving
	// version's; without it such a version is refused.
	IntendedChange bool `yaml:"intended_change,omitempty"`
}

// Tensor describes one input or output in Open Inference Protocol terms.
type Tensor struct {
	Name string `yaml:"name"`
	// Datatype is an OIP datatype: BOOL, UINT8..UINT64, INT8..INT64, FP16,
	// FP32, FP64 or BYTES.
	Datatype string `yaml:"datatype"`
	// Shape uses -1 for dynamic dimensions.
	Shape []int64 `yaml:"shape"`
}

// Lineage is the version record v = {f, t, a, c}: files (Files), time,
// author and change message, plus the parent it was derived from.
type Lineage struct {
	// Parent is the version this one was derived from (0 = none).
	Parent int64 `yaml:"parent,omitempty"`
	// Author is who or what published it (a person, a job).
	Author string `yaml:"author,omitempty"`
	// Created is when it was published (RFC 3339).
	Created time.Time `yaml:"created,omitempty"`
	// Message says what changed.
	Message string `yaml:"message,omitempty"`
	// Job is the id of the re-optimization job that produced it, if any.
	Job string `yaml:"job,omitempty"`
}

// Training describes the training run.
type Training struct {
	// Params are the hyper-parameters, as strings.
	Params map[string]string `yaml:"params,omitempty"`
	// DataWindow is the time range of the training data.
	DataWindow *Window `yaml:"data_window,omitempty"`
	// Metrics are offline metrics (e.g. f1: 0.93).
	Metrics map[string]float64 `yaml:"metrics,omitempty"`
}

// Window is a half-open time range [Start, End).
type Window struct {
	Start time.Time `yaml:"start"`
	End   time.Time `yaml:"end"`
}

// Task kinds for golden sets.
const (
	TaskClassification = "classification"
	TaskRegression     = "regression"
)

// GoldenSet points at labeled evaluation data inside the version directory.
type GoldenSet struct {
	// Path is relative to the version directory, conventionally eval/...
	Path string `yaml:"path"`
	// Format is csv or jsonl; default from Path's extension.
	Format string `yaml:"format,omitempty"`
	// Task is classification or regression.
	Task string `yaml:"task"`
	// Input is the model input the features feed; default the only input.
	Input string `yaml:"input,omitempty"`
	// Output is the model output compared with the label; default the first.
	Output string `yaml:"output,omitempty"`
	// Features are the feature columns, in the input's order.
	Features []string `yaml:"features"`
	// Label is the label column.
	Label string `yaml:"label"`
}

// Warmup configures the runs made before a version serves.
type Warmup struct {
	// Runs is the number of warm-up inferences (default chosen by the agent).
	Runs int `yaml:"runs,omitempty"`
	// Request is a file (relative path) holding an OIP v2 JSON infer request
	// to use instead of generated inputs.
	Request string `yaml:"request,omitempty"`
}

// Feature gives the fixed bins of one input feature or output, so that
// histograms from different hosts and times can be added.
type Feature struct {
	Name string `yaml:"name"`
	// Input or Output names the tensor (exactly one is set).
	Input  string `yaml:"input,omitempty"`
	Output string `yaml:"output,omitempty"`
	// Index is the position along the tensor's last dimension.
	Index int `yaml:"index,omitempty"`
	// Bins are strictly increasing bucket edges (numeric features).
	Bins []float64 `yaml:"bins,omitempty"`
	// Categories are the values of a categorical feature.
	Categories []string `yaml:"categories,omitempty"`
}

// Gate thresholds for admitting a version after its golden-set evaluation.
type Gate struct {
	// MaxRegression is how much worse than the serving version each metric
	// may be (absolute; "worse" is lower for accuracy-like metrics and
	// higher for error metrics such as mse).
	MaxRegression map[string]float64 `yaml:"max_regression,omitempty"`
	// Min are absolute floors (ceilings for error metrics).
	Min map[string]float64 `yaml:"min,omitempty"`
}

// Metrics the gate understands, and whether higher is better.
var Metrics = map[string]bool{
	"accuracy": true, "precision": true, "recall": true, "f1": true, "auc": true, "r2": true,
	"log_loss": false, "mse": false, "mae": false,
}

// Datatypes are the Open Inference Protocol datatypes.
var Datatypes = []string{"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES"}

// Parse decodes and validates a manifest. Unknown fields are errors.
func Parse(data []byte) (*Manifest, error) {
	if len(data) > MaxSize {
		return nil, fmt.Errorf("manifest is %d bytes, more than the %d allowed", len(data), MaxSize)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("manifest is empty")
		}
		return nil, fmt.Errorf("decode manifest: %w", err)
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("manifest has more than one YAML document")
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Load reads dir/drover.yaml. A missing manifest returns an error that
// satisfies errors.Is(err, fs.ErrNotExist).
func Load(dir string) (*Manifest, error) {
	p := filepath.Join(dir, FileName)
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	m, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return m, nil
}

// Marshal encodes m as YAML.
func (m *Manifest) Marshal() ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(m); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

var (
	sha256Re = regexp.MustCompile(`^[0-9a-f]{64}$`)
	nameRe   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)
)

// ValidName reports whether s can name a model (and so a directory).
func ValidName(s string) bool { return nameRe.MatchString(s) && !ReservedNames[s] }

// ReservedNames are words droverctl uses as subcommands where a model name
// may stand (`droverctl versions show|diff|delete|list ...`); no model may
// have one of them as its name.
var ReservedNames = map[string]bool{"show": true, "diff": true, "delete": true, "list": true}

type errs []error

func (e *errs) add(field, format string, args ...any) {
	*e = append(*e, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
}

// Validate checks every field and returns all problems joined, each prefixed
// with its field path.
func (m *Manifest) Validate() error {
	var e errs
	if m.Model == "" {
		e.add("model", "is required")
	} else if !ValidName(m.Model) {
		e.add("model", "%q must start with a letter or digit and use only letters, digits, '_', '.', '-' (at most 128), and not be one of show, diff, delete, list", m.Model)
	}
	if m.Version <= 0 {
		e.add("version", "must be a positive integer, got %d", m.Version)
	}
	if m.Format != "" && m.Format != FormatONNX {
		e.add("format", "%q is not supported (want %q)", m.Format, FormatONNX)
	}
	seen := map[string]bool{}
	for i, f := range m.Files {
		p := fmt.Sprintf("files[%d]", i)
		if err := checkRelPath(f.Path); err != nil {
			e.add(p+".path", "%v", err)
		} else if seen[f.Path] {
			e.add(p+".path", "%q is listed twice", f.Path)
		} else if f.Path == FileName {
			e.add(p+".path", "the manifest cannot list itself")
		}
		seen[f.Path] = true
		if !sha256Re.MatchString(f.SHA256) {
			e.add(p+".sha256", "must be 64 lowercase hex digits, got %q", f.SHA256)
		}
		if f.Size < 0 {
			e.add(p+".size", "must not be negative")
		}
	}
	if len(m.Files) > 0 && !seen[ModelFile] {
		e.add("files", "must include %s when files are listed", ModelFile)
	}
	if s := m.Signature; s != nil {
		validateTensors(&e, "signature.inputs", s.Inputs)
		validateTensors(&e, "signature.outputs", s.Outputs)
	}
	if m.Lineage.Parent < 0 {
		e.add("lineage.parent", "must be a positive version or absent")
	} else if m.Lineage.Parent != 0 && m.Version > 0 && m.Lineage.Parent >= m.Version {
		e.add("lineage.parent", "%d must be older than version %d", m.Lineage.Parent, m.Version)
	}
	if t := m.Training; t != nil {
		if w := t.DataWindow; w != nil && !w.End.After(w.Start) {
			e.add("training.data_window", "end %s must be after start %s", w.End.Format(time.RFC3339), w.Start.Format(time.RFC3339))
		}
	}
	if g := m.GoldenSet; g != nil {
		validateGolden(&e, g, seen, len(m.Files) > 0)
	}
	if w := m.Warmup; w != nil {
		if w.Runs < 0 || w.Runs > 10000 {
			e.add("warmup.runs", "must be between 0 and 10000, got %d", w.Runs)
		}
		if w.Request != "" {
			if err := checkRelPath(w.Request); err != nil {
				e.add("warmup.request", "%v", err)
			}
		}
	}
	names := map[string]bool{}
	for i, f := range m.Features {
		p := fmt.Sprintf("features[%d]", i)
		if f.Name == "" {
			e.add(p+".name", "is required")
		} else if names[f.Name] {
			e.add(p+".name", "%q is defined twice", f.Name)
		}
		names[f.Name] = true
		if (f.Input == "") == (f.Output == "") {
			e.add(p, "exactly one of input and output must be set")
		}
		if f.Index < 0 {
			e.add(p+".index", "must not be negative")
		}
		switch {
		case len(f.Bins) > 0 && len(f.Categories) > 0:
			e.add(p, "bins and categories are exclusive")
		case len(f.Bins) == 0 && len(f.Categories) == 0:
			e.add(p, "needs bins or categories")
		case len(f.Bins) == 1:
			e.add(p+".bins", "needs at least 2 edges")
		}
		for j := 1; j < len(f.Bins); j++ {
			if !(f.Bins[j] > f.Bins[j-1]) {
				e.add(fmt.Sprintf("%s.bins[%d]", p, j), "%v must be greater than the previous edge %v", f.Bins[j], f.Bins[j-1])
				break
			}
		}
		if len(f.Categories) > 0 {
			cs := slices.Clone(f.Categories)
			slices.Sort(cs)
			if len(slices.Compact(cs)) != len(f.Categories) {
				e.add(p+".categories", "has duplicates")
			}
		}
	}
	if g := m.Gate; g != nil {
		for _, k := range sortedKeys(g.MaxRegression) {
			if _, ok := Metrics[k]; !ok {
				e.add("gate.max_regression."+k, "unknown metric (known: %s)", strings.Join(sortedKeys(Metrics), ", "))
			} else if v := g.MaxRegression[k]; v < 0 {
				e.add("gate.max_regression."+k, "must not be negative, got %v", v)
			}
		}
		for _, k := range sortedKeys(g.Min) {
			if _, ok := Metrics[k]; !ok {
				e.add("gate.min."+k, "unknown metric (known: %s)", strings.Join(sortedKeys(Metrics), ", "))
			}
		}
	}
	if o := m.Optimize; o != nil {
		validateOptimize(&e, o)
	}
	return errors.Join(e...)
}

func validateOptimize(e *errs, o *Optimize) {
	seen := map[string]bool{}
	for i, f := range o.Families {
		p := fmt.Sprintf("optimize.families[%d]", i)
		switch {
		case !slices.Contains(OptimizeFamilies, f.Name):
			e.add(p+".name", "%q: want one of %s", f.Name, strings.Join(OptimizeFamilies, ", "))
		case seen[f.Name]:
			e.add(p+".name", "%q is listed twice", f.Name)
		}
		seen[f.Name] = true
		for _, k := range sortedKeys(f.Grid) {
			vs := f.Grid[k]
			if k == "" {
				e.add(p+".grid", "empty parameter name")
			}
			if len(vs) == 0 {
				e.add(p+".grid."+k, "needs at least one value")
			}
			for j, v := range vs {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					e.add(fmt.Sprintf("%s.grid.%s[%d]", p, k, j), "must be a finite number")
				}
			}
		}
	}
	if o.Folds != 0 && (o.Folds < 2 || o.Folds > 20) {
		e.add("optimize.folds", "must be between 2 and 20, got %d", o.Folds)
	}
	if o.Metric != "" {
		if _, ok := OptimizeMetrics[o.Metric]; !ok {
			e.add("optimize.metric", "%q: want one of %s", o.Metric, strings.Join(sortedKeys(OptimizeMetrics), ", "))
		}
	}
	if o.Holdout != 0 && !(o.Holdout > 0 && o.Holdout <= 0.5) {
		e.add("optimize.holdout", "must be in (0, 0.5], got %v", o.Holdout)
	}
	if o.TimeBudget < 0 {
		e.add("optimize.time_budget", "must not be negative, got %s", time.Duration(o.TimeBudget))
	}
	if o.Label != "" && strings.ContainsAny(o.Label, ",\"\r\n") {
		e.add("optimize.label", "%q: a CSV column name without comma, quote or line break", o.Label)
	}
}

func validateTensors(e *errs, field string, ts []Tensor) {
	names := map[string]bool{}
	for i, t := range ts {
		p := fmt.Sprintf("%s[%d]", field, i)
		if t.Name == "" {
			e.add(p+".name", "is required")
		} else if names[t.Name] {
			e.add(p+".name", "%q is listed twice", t.Name)
		}
		names[t.Name] = true
		if !slices.Contains(Datatypes, t.Datatype) {
			e.add(p+".datatype", "%q is not an OIP datatype (%s)", t.Datatype, strings.Join(Datatypes, ", "))
		}
		for j, d := range t.Shape {
			if d < -1 {
				e.add(fmt.Sprintf("%s.shape[%d]", p, j), "must be -1 (dynamic) or a size >= 0, got %d", d)
			}
		}
	}
}

func validateGolden(e *errs, g *GoldenSet, files map[string]bool, listed bool) {
	if err := checkRelPath(g.Path); err != nil {
		e.add("golden_set.path", "%v", err)
	} else if listed && !files[g.Path] {
		e.add("golden_set.path", "%q is not in files", g.Path)
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
		e.add("golden_set.format", "must be csv or jsonl (or inferred from a .csv/.jsonl path), got %q", g.Format)
	}
	if g.Task != TaskClassification && g.Task != TaskRegression {
		e.add("golden_set.task", "must be %q or %q, got %q", TaskClassification, TaskRegression, g.Task)
	}
	if len(g.Features) == 0 {
		e.add("golden_set.features", "must list at least one column")
	}
	cols := map[string]bool{}
	for i, f := range g.Features {
		if f == "" || cols[f] {
			e.add(fmt.Sprintf("golden_set.features[%d]", i), "must be a distinct, non-empty column name")
		}
		cols[f] = true
	}
	if g.Label == "" {
		e.add("golden_set.label", "is required")
	} else if cols[g.Label] {
		e.add("golden_set.label", "%q is also a feature column", g.Label)
	}
}

// checkRelPath accepts clean, relative, forward-slash paths inside the
// version directory.
func checkRelPath(p string) error {
	switch {
	case p == "":
		return errors.New("is required")
	case strings.Contains(p, "\\") || strings.ContainsRune(p, 0):
		return fmt.Errorf("%q must use forward slashes and no NUL", p)
	case !fs.ValidPath(p) || p == ".":
		return fmt.Errorf("%q must be a clean relative path inside the version directory", p)
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
