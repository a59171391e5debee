// Command optimize benchmarks the built-in optimizer's grid search
// (collector/optimize/learn, docs/optimize.md) against scikit-learn's
// GridSearchCV, in one run, on the same data, grid and folds:
//
//   - Drover: learn.Search with Procs = -procs (default: the number of
//     cores), accuracy, -folds stratified folds, timed by wall clock around
//     the search (the data already in memory).
//   - scikit-learn: GridSearchCV(n_jobs = -procs, refit=False, as Drover's
//     search does not refit) over Pipeline(StandardScaler,
//     LogisticRegression) for logistic_regression (Drover standardises its
//     linear families the same way) and RandomForestClassifier (or
//     DecisionTreeClassifier, GradientBoostingClassifier) for the tree
//     families, with the same grid (every parameter pinned, those the grid
//     leaves out at Drover's defaults) and the very same folds (Drover's,
//     passed as cv), run by gridsearch.py under /usr/bin/python3 (Debian's
//     python3-sklearn, installed with apt-get when missing). Its wall time is
//     that of GridSearchCV.fit alone (no interpreter start or import).
//
// The data sets are scikit-learn's copies of UCI data sets (CC BY 4.0),
// shipped in testdata/ with their licence notes.
//
// Targets per data set and family: Drover's wall time ≤ scikit-learn's
// (ratio ≤ 1) and Drover's best CV score ≥ scikit-learn's − 0.5 percentage
// points. The table is printed; with -strict a missed target makes the exit
// status non-zero. With -repeat N each side runs N times and the median wall
// time counts.
//
//	go run ./bench/optimize -datasets breast_cancer,wine,digits -families logistic_regression,random_forest
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/drover-ml/drover/bench/internal/stats"
	"github.com/drover-ml/drover/collector/optimize/learn"
	_ "github.com/drover-ml/drover/collector/optimize/learn/linear" // registers logistic_regression
	_ "github.com/drover-ml/drover/collector/optimize/learn/tree"   // registers random_forest, ...
)

// benchFamilies are the families gridsearch.py has a scikit-learn peer for
// (classification).
var benchFamilies = []string{"logistic_regression", "random_forest", "decision_tree", "gradient_boosting"}

// Targets of issue 15.
const (
	maxRatio    = 1.0
	maxScoreGap = 0.5 // percentage points below scikit-learn's best
)

type options struct {
	datasets, families []string
	folds, procs       int
	repeat             int
	seed               int64
	python             string
	strict, points     bool
}

func main() {
	var o options
	var ds, fams string
	flag.StringVar(&ds, "datasets", "breast_cancer,wine,digits", "comma-separated data sets: "+datasetNames())
	flag.StringVar(&fams, "families", "logistic_regression,random_forest", "comma-separated families: logistic_regression, random_forest, decision_tree, gradient_boosting (each searched on its default grid)")
	flag.IntVar(&o.folds, "folds", learn.DefaultFolds, "stratified cross-validation folds")
	flag.IntVar(&o.procs, "procs", runtime.NumCPU(), "Drover's Procs and scikit-learn's n_jobs")
	flag.IntVar(&o.repeat, "repeat", 1, "runs of each search per side; the median wall time counts")
	flag.Int64Var(&o.seed, "seed", 1, "seed of the folds and of every fit")
	flag.StringVar(&o.python, "python", "/usr/bin/python3", "the Python interpreter with Debian's python3-sklearn")
	flag.BoolVar(&o.strict, "strict", false, "exit non-zero when a target is missed")
	flag.BoolVar(&o.points, "points", false, "also print every grid point's mean CV score on both sides")
	flag.Parse()
	o.datasets, o.families = splitList(ds), splitList(fams)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, o, os.Stdout)
	if errors.Is(err, errTargets) && !o.strict {
		err = nil
	}
	if err != nil {
		slog.Error("bench/optimize", "err", err)
		os.Exit(1)
	}
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// row is one line of the table.
type row struct {
	dataset, family string
	points          int
	drover          *droverRun
	sk              *sklearnResult
}

// droverRun is Drover's side of one comparison.
type droverRun struct {
	walls  []time.Duration
	result *learn.SearchResult
}

// best returns the best candidate's mean score.
func (r *droverRun) best() float64 { return r.result.Results[r.result.Best].Mean }

// runDrover searches grid g of family on d: learn.Search with procs fits
// at once and k stratified folds, repeat times, each timed.
func runDrover(ctx context.Context, d *learn.Dataset, family string, g learn.Grid, k, procs, repeat int, seed int64) (*droverRun, error) {
	cands, err := learn.Candidates(family, d.Task, g)
	if err != nil {
		return nil, err
	}
	out := &droverRun{}
	for range repeat {
		start := time.Now()
		res, err := learn.Search(ctx, d, cands, learn.SearchOptions{Folds: k, Metric: learn.MetricAccuracy, Procs: procs, Seed: seed})
		wall := time.Since(start)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", family, err)
		}
		for _, r := range res.Results {
			if r.Err != nil {
				return nil, fmt.Errorf("%s %s: %w", family, r.Params, r.Err)
			}
		}
		out.walls = append(out.walls, wall)
		out.result = res
	}
	return out, nil
}

// benchGrid is the grid both sides search: the family's default grid
// (docs/optimize.md), e.g. C over 1e-3..1e3 for logistic regression.
func benchGrid(family string, t learn.Task) (learn.Grid, error) {
	f, ok := learn.Lookup(family)
	if !ok {
		return nil, fmt.Errorf("unknown family %q (known: %s)", family, strings.Join(learn.FamilyNames(), ", "))
	}
	return f.DefaultGrid(t), nil
}

func run(ctx context.Context, o options, w io.Writer) error {
	if o.folds < 2 || o.procs < 1 || o.repeat < 1 {
		return fmt.Errorf("-folds must be ≥ 2, -procs and -repeat ≥ 1 (got %d, %d, %d)", o.folds, o.procs, o.repeat)
	}
	if len(o.datasets) == 0 || len(o.families) == 0 {
		return errors.New("-datasets and -families must name at least one each")
	}
	for _, name := range o.datasets {
		if _, ok := lookupDataset(name); !ok {
			return fmt.Errorf("unknown data set %q (known: %s)", name, datasetNames())
		}
	}
	for _, f := range o.families {
		if !slices.Contains(benchFamilies, f) {
			return fmt.Errorf("family %q: the benchmark compares %s", f, strings.Join(benchFamilies, ", "))
		}
	}
	if err := ensureSklearn(ctx, o.python); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "bench-optimize-")
	if err != nil {
		return fmt.Errorf("temp dir: %w", err)
	}
	defer os.RemoveAll(dir)

	loadBefore := loadAvg()
	began := time.Now()
	var rows []row
	for _, name := range o.datasets {
		ds, _ := lookupDataset(name)
		d, err := ds.load()
		if err != nil {
			return err
		}
		folds, err := learn.Folds(d, o.folds, o.seed)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		for _, fam := range o.families {
			g, err := benchGrid(fam, d.Task)
			if err != nil {
				return err
			}
			slog.Info("searching", "dataset", name, "rows", d.Rows(), "features", d.Features(), "classes", d.Classes, "family", fam, "points", len(learn.Points(g)))
			dr, err := runDrover(ctx, d, fam, g, o.folds, o.procs, o.repeat, o.seed)
			if err != nil {
				return fmt.Errorf("%s: drover: %w", name, err)
			}
			spec, err := newSpec(d, fam, g, folds, o.procs, o.repeat, o.seed)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			sk, err := runSklearn(ctx, o.python, dir, spec)
			if err != nil {
				return fmt.Errorf("%s %s: scikit-learn: %w", name, fam, err)
			}
			rows = append(rows, row{dataset: name, family: fam, points: len(learn.Points(g)), drover: dr, sk: sk})
		}
	}
	loadAfter := loadAvg()

	cores := runtime.NumCPU()
	fmt.Fprintf(w, "bench/optimize: %d folds (stratified, the same folds on both sides), Procs = n_jobs = %d, %d core(s), GOMAXPROCS %d, repeat %d (median wall), seed %d\n",
		o.folds, o.procs, cores, runtime.GOMAXPROCS(0), o.repeat, o.seed)
	if len(rows) > 0 {
		fmt.Fprintf(w, "peer: scikit-learn %s, numpy %s, Python %s (%s); %s\n", rows[0].sk.Sklearn, rows[0].sk.Numpy, rows[0].sk.Python, o.python, runtime.Version())
	}
	fmt.Fprintf(w, "load average (1, 5, 15 min): before %s, after %s; %s in all\n\n", loadBefore, loadAfter, time.Since(began).Round(time.Millisecond))
	missed := writeTable(w, rows, o.points)
	if missed > 0 {
		return fmt.Errorf("%w: %d of %d rows", errTargets, missed, len(rows))
	}
	return nil
}

// writeTable prints the comparison and returns the rows that miss a
// target.
func writeTable(w io.Writer, rows []row, points bool) int {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "data set\tfamily\tgrid\tDrover s\tsklearn s\tratio\tDrover CV\tsklearn CV\tΔ pp\ttargets\t")
	missed := 0
	for _, r := range rows {
		dw := stats.Median(r.drover.walls).Seconds()
		sw := stats.Median(r.sk.WallS)
		ratio := dw / sw
		db, sb := r.drover.best(), r.sk.BestScore
		gap := 100 * (db - sb)
		verdict := "ok"
		var miss []string
		if ratio > maxRatio {
			miss = append(miss, "time")
		}
		if gap < -maxScoreGap {
			miss = append(miss, "score")
		}
		if len(miss) > 0 {
			verdict = "MISSED " + strings.Join(miss, "+")
			missed++
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.3f\t%.3f\t%.2f\t%.4f\t%.4f\t%+.2f\t%s\t\n", r.dataset, r.family, r.points, dw, sw, ratio, db, sb, gap, verdict)
	}
	tw.Flush()
	fmt.Fprintf(w, "\ntargets: ratio (Drover/sklearn wall) ≤ %.1f; Drover CV ≥ sklearn CV − %.1f pp (accuracy)\n", maxRatio, maxScoreGap)
	fmt.Fprintln(w, "best points:")
	for _, r := range rows {
		best := r.drover.result.Results[r.drover.result.Best]
		fmt.Fprintf(w, "  %s %s: Drover %s (±%.4f); sklearn %s\n", r.dataset, r.family, best.Params, best.Std, formatParams(r.sk.BestParams))
		if !points {
			continue
		}
		// Both sides enumerate the grid in the same order: parameters by
		// name, the last varying fastest.
		for i, c := range r.drover.result.Results {
			sk := math.NaN()
			if i < len(r.sk.Means) {
				sk = r.sk.Means[i]
			}
			fmt.Fprintf(w, "    %-40s Drover %.4f  sklearn %.4f  %+.2f pp\n", c.Params, c.Mean, sk, 100*(c.Mean-sk))
		}
	}
	return missed
}

// loadAvg returns /proc/loadavg's three averages, or "unknown".
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
