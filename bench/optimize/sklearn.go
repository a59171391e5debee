package main

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/drover-ml/drover/collector/optimize/learn"
)

// gridsearchPy runs GridSearchCV on a spec written by the benchmark.
//
//go:embed gridsearch.py
var gridsearchPy []byte

// sklearnSpec is what gridsearch.py reads.
type sklearnSpec struct {
	Family    string           `json:"family"`
	ParamGrid map[string][]any `json:"param_grid"`
	X         [][]float64      `json:"X"`
	Y         []int            `json:"y"`
	Folds     [][2][]int       `json:"folds"`
	NJobs     int              `json:"n_jobs"`
	Seed      int64            `json:"seed"`
	Repeat    int              `json:"repeat"`
}

// sklearnResult is what gridsearch.py prints.
type sklearnResult struct {
	WallS      []float64      `json:"wall_s"`
	BestScore  float64        `json:"best_score"`
	BestParams map[string]any `json:"best_params"`
	Means      []float64      `json:"means"`
	Sklearn    string         `json:"sklearn"`
	Numpy      string         `json:"numpy"`
	Python     string         `json:"python"`
}

// sklearnGrid translates a Drover grid into scikit-learn's param_grid for
// the estimator gridsearch.py builds for the family. Every parameter the
// family takes is pinned: those the grid leaves out at Drover's default, so
// both sides train with the same settings whatever scikit-learn's defaults
// are. Values with a special meaning map to scikit-learn's spelling:
// max_depth 0 (unlimited) is None, a forest's max_features 0 is "sqrt";
// integer parameters are ints.
func sklearnGrid(family string, task learn.Task, g learn.Grid) (map[string][]any, error) {
	f, ok := learn.Lookup(family)
	if !ok {
		return nil, fmt.Errorf("unknown family %q", family)
	}
	full := learn.Grid{}
	for k, v := range f.Params(task) {
		full[k] = []float64{v}
	}
	for k, vs := range g {
		if _, ok := full[k]; !ok {
			return nil, fmt.Errorf("family %s: unknown parameter %q", family, k)
		}
		full[k] = vs
	}
	prefix := ""
	if family == "logistic_regression" {
		prefix = "logisticregression__"
	}
	out := make(map[string][]any, len(full))
	for k, vs := range full {
		conv, err := sklearnValue(family, k)
		if err != nil {
			return nil, err
		}
		vals := make([]any, len(vs))
		for i, v := range vs {
			vals[i] = conv(v)
		}
		out[prefix+k] = vals
	}
	return out, nil
}

// sklearnValue returns how parameter name's values are written for
// scikit-learn.
func sklearnValue(family, name string) (func(float64) any, error) {
	num := func(v float64) any { return v }
	integer := func(v float64) any { return int64(v) }
	switch {
	case family == "logistic_regression" && name == "C":
		return num, nil
	case name == "max_iter", name == "n_estimators", name == "min_samples_leaf", name == "min_samples_split":
		return integer, nil
	case name == "max_depth":
		return func(v float64) any {
			if v == 0 {
				return nil // unlimited
			}
			return int64(v)
		}, nil
	case name == "max_features":
		return func(v float64) any {
			if v == 0 && family == "random_forest" {
				return "sqrt" // classification's default
			}
			return v // a fraction of the features, as Drover's
		}, nil
	case name == "learning_rate", name == "subsample":
		return num, nil
	}
	return nil, fmt.Errorf("family %s: no scikit-learn spelling for parameter %q", family, name)
}

// python finds or installs scikit-learn for the interpreter py: when
// `py -c "import sklearn"` fails it runs `apt-get install -y
// python3-sklearn` (Debian's package, used only by this benchmark) and says
// so.
func ensureSklearn(ctx context.Context, py string) error {
	check := exec.CommandContext(ctx, py, "-c", "import sklearn")
	if err := check.Run(); err == nil {
		return nil
	}
	slog.Info("scikit-learn not importable; installing Debian's python3-sklearn", "python", py, "cmd", "apt-get install -y python3-sklearn")
	inst := exec.CommandContext(ctx, "apt-get", "install", "-y", "python3-sklearn")
	inst.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	out, err := inst.CombinedOutput()
	if err != nil {
		return fmt.Errorf("apt-get install -y python3-sklearn: %w: %s", err, tail(out))
	}
	if out, err := exec.CommandContext(ctx, py, "-c", "import sklearn").CombinedOutput(); err != nil {
		return fmt.Errorf("%s still cannot import sklearn after apt-get install: %w: %s", py, err, tail(out))
	}
	return nil
}

// runSklearn runs GridSearchCV through gridsearch.py in dir with the
// interpreter py.
func runSklearn(ctx context.Context, py, dir string, spec sklearnSpec) (*sklearnResult, error) {
	script := filepath.Join(dir, "gridsearch.py")
	if err := os.WriteFile(script, gridsearchPy, 0o644); err != nil {
		return nil, fmt.Errorf("write %s: %w", script, err)
	}
	b, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("encode the spec: %w", err)
	}
	specPath := filepath.Join(dir, "spec.json")
	if err := os.WriteFile(specPath, b, 0o644); err != nil {
		return nil, fmt.Errorf("write %s: %w", specPath, err)
	}
	cmd := exec.CommandContext(ctx, py, script, specPath)
	// Convergence warnings (lbfgs at max_iter on the weakest penalties)
	// would flood stderr from every worker; Drover stops there silently too.
	cmd.Env = append(os.Environ(), "PYTHONWARNINGS=ignore")
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s %s: %w: %s", py, script, err, tail(stderr.Bytes()))
	}
	var res sklearnResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		return nil, fmt.Errorf("decode gridsearch.py's output: %w: %s", err, tail(stdout.Bytes()))
	}
	if len(res.WallS) != spec.Repeat {
		return nil, fmt.Errorf("gridsearch.py: %d wall times for %d repeats", len(res.WallS), spec.Repeat)
	}
	return &res, nil
}

// newSpec builds the spec of one comparison: the rows of d, its folds and
// the grid in scikit-learn's spelling.
func newSpec(d *learn.Dataset, family string, g learn.Grid, folds []learn.Fold, procs, repeat int, seed int64) (sklearnSpec, error) {
	pg, err := sklearnGrid(family, d.Task, g)
	if err != nil {
		return sklearnSpec{}, err
	}
	n := d.Rows()
	x := make([][]float64, n)
	y := make([]int, n)
	for i := range n {
		x[i] = d.X.RawRowView(i)
		y[i] = int(d.Y[i])
	}
	fs := make([][2][]int, len(folds))
	for i, f := range folds {
		fs[i] = [2][]int{f.Train, f.Test}
	}
	return sklearnSpec{Family: family, ParamGrid: pg, X: x, Y: y, Folds: fs, NJobs: procs, Seed: seed, Repeat: repeat}, nil
}

func tail(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 2000 {
		s = "…" + s[len(s)-2000:]
	}
	if s == "" {
		return "(no output)"
	}
	return s
}

// formatParams writes scikit-learn's best parameters sorted by name,
// without the pipeline prefix.
func formatParams(p map[string]any) string {
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		v := p[k]
		if v == nil {
			v = "None"
		}
		parts[i] = fmt.Sprintf("%s=%v", strings.TrimPrefix(k, "logisticregression__"), v)
	}
	return strings.Join(parts, " ")
}

var errTargets = errors.New("a target is missed")
