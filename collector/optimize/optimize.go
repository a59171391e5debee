package optimize

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/drover-ml/drover/collector/auth"
	"github.com/drover-ml/drover/collector/fleet"
	"github.com/drover-ml/drover/collector/jobs"
	"github.com/drover-ml/drover/collector/labels"
	"github.com/drover-ml/drover/collector/optimize/export"
	"github.com/drover-ml/drover/collector/optimize/learn"
	"github.com/drover-ml/drover/collector/registry"
	"github.com/drover-ml/drover/shared/manifest"
	"github.com/drover-ml/drover/shared/onnx"

	// The families register themselves with package learn.
	_ "github.com/drover-ml/drover/collector/optimize/learn/linear"
	_ "github.com/drover-ml/drover/collector/optimize/learn/tree"
)

// Fleet is what the optimizer needs of fleet control (*fleet.Fleet): the
// model's desired state, and the canary rollout of a published version.
type Fleet interface {
	Desired(ctx context.Context, model string) (fleet.State, error)
	Change(ctx context.Context, model, change string, req fleet.Request) (fleet.State, error)
}

// Options are an Optimizer's dependencies.
type Options struct {
	// Registry reads the serving version's files and stages the new
	// version's. Required.
	Registry *registry.Registry
	// Commit allocates the new version on the model's ring owner (a
	// registry.Forwarder's Commit); nil commits here (Registry.Commit).
	Commit registry.CommitFunc
	// Fleet rolls a published version out as a canary; nil publishes
	// without a rollout.
	Fleet Fleet
	// Labels reads the labelled samples. Required for jobs.
	Labels *labels.Store
	// Config is the validated jobs.builtin section.
	Config jobs.BuiltinConfig
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger; default slog.Default().
	Logger *slog.Logger
	// TempDir holds the models handed to ONNX Runtime for a moment;
	// default os.TempDir().
	TempDir string
	// MaxCSVBytes bounds an uploaded CSV; default MaxCSVBytes.
	MaxCSVBytes int64
}

// Optimizer is the built-in optimizer: the executor "builtin" of the job
// system (Execute) and the CSV search of the admin API (CSV, Handler).
// Safe for concurrent use; each search uses up to Config.MaxProcs cores.
type Optimizer struct {
	o Options
}

// New returns an Optimizer. Config must be valid.
func New(o Options) (*Optimizer, error) {
	if o.Registry == nil {
		return nil, errors.New("optimize: no registry")
	}
	if err := o.Config.Validate(); err != nil {
		return nil, fmt.Errorf("optimize: jobs.builtin: %w", err)
	}
	if o.Commit == nil {
		o.Commit = o.Registry.Commit
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxCSVBytes <= 0 {
		o.MaxCSVBytes = MaxCSVBytes
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Optimizer{o: o}, nil
}

// Constants of the judging and the rollout (docs/optimize.md).
const (
	// CanaryShare is the percentage of requests a published version
	// receives as an automatic canary.
	CanaryShare = 20
	// Author is the author of the versions the optimizer publishes.
	Author = "drover-optimize"
	// maxCostCandidates bounds the candidates within cost_tolerance
	// that are exported and measured (the closest to the best score).
	maxCostCandidates = 8
	// maxModelBytes bounds the serving model the optimizer reads.
	maxModelBytes = 512 << 20
	// minCSVRows is the fewest rows an uploaded CSV may have.
	minCSVRows = 20
)

// request is one optimization: a job's or an uploaded CSV's.
type request struct {
	model string
	// version is the version to judge against when the fleet has no
	// serving version of the model (a job: the version that drifted);
	// 0: the latest.
	version uint64
	// Labelled samples since..until, or the CSV csv with the label
	// column label.
	since, until time.Time
	csv          io.Reader
	label        string
	// family and folds override the manifest's (CSV mode).
	family string
	folds  int
	dryRun bool
	// rollout: roll a published version out as a canary.
	rollout bool
	// incident and job are the lineage of a published version.
	incident, job string
}

// permanent marks errors that retrying cannot cure.
func permanent(format string, args ...any) error {
	return jobs.Permanent(fmt.Errorf(format, args...))
}

// baseline is the version the candidates are judged against.
type baseline struct {
	v        registry.Version
	model    []byte
	proto    *onnx.ModelProto
	manifest *manifest.Manifest // nil without one
	sig      *export.Signature
}

func (o *Optimizer) readFile(ctx context.Context, model string, version uint64, path string, limit int64) ([]byte, error) {
	rd, _, err := o.o.Registry.OpenFile(ctx, model, version, path)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	b, err := io.ReadAll(io.LimitReader(rd, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s v%d %s: %w", model, version, path, err)
	}
	if int64(len(b)) > limit {
		return nil, permanent("%s v%d %s is larger than %d bytes", model, version, path, limit)
	}
	return b, nil
}

// loadBaseline finds the version to judge against: the fleet's serving
// version of the model, else req.version, else the latest active one.
func (o *Optimizer) loadBaseline(ctx context.Context, req request) (*baseline, error) {
	v := uint64(0)
	if o.o.Fleet != nil {
		st, err := o.o.Fleet.Desired(ctx, req.model)
		if err != nil {
			return nil, fmt.Errorf("read the desired state of %s: %w", req.model, err)
		}
		v = st.Serving
	}
	if v == 0 {
		v = req.version
	}
	if v == 0 {
		vs, err := o.o.Registry.Versions(ctx, req.model)
		if err != nil {
			return nil, fmt.Errorf("list the versions of %s: %w", req.model, err)
		}
		for _, x := range vs {
			if x.State == registry.StateActive && x.Version > v {
				v = x.Version
			}
		}
		if v == 0 {
			return nil, fmt.Errorf("%s has no version: %w", req.model, registry.ErrNotFound)
		}
	}
	rec, err := o.o.Registry.Version(ctx, req.model, v)
	if err != nil {
		return nil, err
	}
	b := &baseline{v: rec}
	if b.model, err = o.readFile(ctx, req.model, v, manifest.ModelFile, maxModelBytes); err != nil {
		return nil, err
	}
	if _, ok := rec.File(manifest.FileName); ok {
		y, err := o.readFile(ctx, req.model, v, manifest.FileName, manifest.MaxSize)
		if err != nil {
			return nil, err
		}
		if b.manifest, err = manifest.Parse(y); err != nil {
			return nil, permanent("%s v%d %s: %v", req.model, v, manifest.FileName, err)
		}
	}
	if b.proto, err = onnx.Unmarshal(b.model); err != nil {
		return nil, permanent("%s v%d: %s is not an ONNX model: %v", req.model, v, manifest.ModelFile, err)
	}
	if b.sig, err = export.ReadSignature(b.proto); err != nil {
		return nil, permanent("%s v%d: %v", req.model, v, err)
	}
	return b, nil
}

// settings are the search's, from the manifest, the request and the
// configuration.
type settings struct {
	folds      int
	metric     string
	holdout    float64
	timeBudget time.Duration
	cands      []learn.Candidate
	withCSV    bool
	csvLabel   string
}

func (o *Optimizer) settings(req request, b *baseline) (settings, error) {
	s := settings{folds: learn.DefaultFolds, metric: learn.DefaultMetric(b.sig.Task), holdout: o.o.Config.Holdout,
		timeBudget: o.o.Config.TimeBudget, csvLabel: "label"}
	var fams []manifest.OptimizeFamily
	if m := b.manifest; m != nil && m.Optimize != nil {
		opt := m.Optimize
		fams = opt.Families
		if opt.Folds > 0 {
			s.folds = opt.Folds
		}
		if opt.Metric != "" {
			s.metric = opt.Metric
		}
		if opt.Holdout > 0 {
			s.holdout = opt.Holdout
		}
		if opt.TimeBudget > 0 {
			s.timeBudget = time.Duration(opt.TimeBudget)
		}
		s.withCSV = opt.IncludeTrainingData
		if opt.Label != "" {
			s.csvLabel = opt.Label
		}
	}
	if req.folds > 0 {
		s.folds = req.folds
	}
	if err := learn.CheckMetric(s.metric, b.sig.Task); err != nil {
		return s, permanent("optimize.metric: %v", err)
	}
	if len(fams) == 0 {
		name, err := export.DetectFamily(b.proto)
		if err != nil && req.family == "" {
			return s, permanent("%s v%d declares no optimize: families and its family cannot be detected: %v", req.model, b.v.Version, err)
		}
		if err == nil {
			fams = []manifest.OptimizeFamily{{Name: name}}
		}
	}
	if req.family != "" {
		i := slices.IndexFunc(fams, func(f manifest.OptimizeFamily) bool { return f.Name == req.family })
		if i >= 0 {
			fams = fams[i : i+1]
		} else {
			fams = []manifest.OptimizeFamily{{Name: req.family}}
		}
	}
	for _, f := range fams {
		var g learn.Grid
		if len(f.Grid) > 0 {
			g = learn.Grid(f.Grid)
		}
		cs, err := learn.Candidates(f.Name, b.sig.Task, g)
		if err != nil {
			return s, permanent("search space: %v", err)
		}
		s.cands = append(s.cands, cs...)
	}
	return s, nil
}

// rows reads the request's rows: the labelled samples, or the CSV.
func (o *Optimizer) rows(ctx context.Context, req request, b *baseline) (*table, error) {
	if req.csv != nil {
		t, err := decodeCSV(req.csv, req.label, b.sig.Features)
		if err != nil {
			return nil, err
		}
		if t.rows() < minCSVRows {
			return nil, permanent("%w: %d rows, at least %d are needed", errCSV, t.rows(), minCSVRows)
		}
		return t, nil
	}
	if o.o.Labels == nil {
		return nil, errors.New("optimize: no labels store")
	}
	js, err := o.o.Labels.Labelled(ctx, req.model, req.since, req.until)
	if err != nil {
		return nil, err
	}
	if len(js) < o.o.Config.MinRows {
		// Not permanent: labels may still arrive before the retry.
		return nil, fmt.Errorf("%d labelled rows since %s, min_rows is %d", len(js), req.since.UTC().Format(time.RFC3339), o.o.Config.MinRows)
	}
	t, err := fromLabelled(js, b.sig.Input, b.sig.Features)
	if err != nil {
		return nil, permanent("%v", err)
	}
	return t, nil
}

// trainingCSV reads the baseline's training.csv.
func (o *Optimizer) trainingCSV(ctx context.Context, b *baseline, label string) (*table, error) {
	if _, ok := b.v.File(manifest.TrainingFile); !ok {
		return nil, permanent("optimize.include_training_data: %s v%d has no %s", b.v.Model, b.v.Version, manifest.TrainingFile)
	}
	data, err := o.readFile(ctx, b.v.Model, b.v.Version, manifest.TrainingFile, MaxCSVBytes)
	if err != nil {
		return nil, err
	}
	t, err := decodeCSV(bytes.NewReader(data), label, b.sig.Features)
	if err != nil {
		return nil, permanent("%s v%d %s: %v", b.v.Model, b.v.Version, manifest.TrainingFile, err)
	}
	return t, nil
}

// candidate is a trained, exported candidate with its cost.
type candidate struct {
	result int // index into the search's results
	model  learn.Model
	onnx   []byte
	micros float64
}

// run is one optimization. It returns the report (also on most failures,
// with what was known and the reason) and the version it published (0:
// none).
func (o *Optimizer) run(ctx context.Context, req request) (Report, uint64, error) {
	start := time.Now()
	rep := Report{Model: req.model, Params: map[string]float64{}, Grid: []GridPoint{}, DryRun: req.dryRun}
	v, err := o.search(ctx, req, &rep)
	if err != nil {
		rep.Reason = err.Error()
	}
	rep.Seconds = math.Round(time.Since(start).Seconds()*1000) / 1000
	rep.finite()
	return rep, v, err
}

func (o *Optimizer) search(ctx context.Context, req request, rep *Report) (uint64, error) {
	fail := func(err error) (uint64, error) { return 0, err }
	b, err := o.loadBaseline(ctx, req)
	if err != nil {
		return fail(err)
	}
	rep.Baseline = strconv.FormatUint(b.v.Version, 10)
	s, err := o.settings(req, b)
	rep.Metric, rep.LowerIsBetter, rep.Folds = s.metric, learn.LowerIsBetter(s.metric), s.folds
	if err != nil {
		return fail(err)
	}
	all, err := o.rows(ctx, req, b)
	if err != nil {
		return fail(err)
	}
	n := all.rows()
	nHold := int(math.Ceil(float64(n) * s.holdout))
	if n-nHold < 2*s.folds {
		return fail(permanent("%d rows: too few for %d folds and a %.0f%% holdout", n, s.folds, 100*s.holdout))
	}
	train, hold := all.slice(0, n-nHold), all.slice(n-nHold, n)
	if s.withCSV && req.csv == nil {
		extra, err := o.trainingCSV(ctx, b, s.csvLabel)
		if err != nil {
			return fail(err)
		}
		joined := &table{}
		for i := range extra.rows() {
			joined.add(extra.x[i], extra.labels[i])
		}
		for i := range train.rows() {
			joined.add(train.x[i], train.labels[i])
		}
		train = joined
	}
	rep.Rows, rep.HoldoutRows = train.rows()+hold.rows(), hold.rows()
	k := b.sig.Classes()
	trainD, err := train.dataset(b.sig.Task, k, b.sig.EncodeLabels)
	if err != nil {
		return fail(permanent("labels do not fit the model: %v", err))
	}
	holdD, err := hold.dataset(b.sig.Task, k, b.sig.EncodeLabels)
	if err != nil {
		return fail(permanent("labels do not fit the model: %v", err))
	}
	if err := learn.Validate(trainD); err != nil {
		return fail(permanent("training rows: %v", err))
	}
	if err := validateFeatures(holdD); err != nil {
		return fail(permanent("held-out rows: %v", err))
	}

	o.o.Logger.Info("optimize: searching", "model", req.model, "baseline", b.v.Version, "candidates", len(s.cands),
		"folds", s.folds, "metric", s.metric, "rows", train.rows(), "holdout_rows", hold.rows())
	res, err := learn.Search(ctx, trainD, s.cands, learn.SearchOptions{Folds: s.folds, Metric: s.metric,
		Procs: o.o.Config.MaxProcs, Seed: o.o.Config.Seed, TimeBudget: s.timeBudget})
	if err != nil {
		if ctx.Err() != nil {
			return fail(context.Cause(ctx))
		}
		if errors.Is(err, learn.ErrTimeBudget) {
			return fail(permanent("%v (time_budget %s, %d candidates × %d folds on %d rows)", err, s.timeBudget, len(s.cands), s.folds, train.rows()))
		}
		return fail(permanent("%v", err))
	}
	for _, r := range res.Results {
		gp := GridPoint{Family: r.Family.Name(), Params: params(r.Params), Mean: r.Mean, Std: r.Std}
		if r.Err != nil {
			gp.Mean, gp.Std, gp.Error = 0, 0, r.Err.Error()
		}
		rep.Grid = append(rep.Grid, gp)
	}

	// The cost objective: the candidates within cost_tolerance of the
	// best, exported and measured; the smallest graph wins (then the
	// fastest, then the better score).
	best := res.Results[res.Best]
	var near []int
	for i, r := range res.Results {
		if r.Err == nil && math.Abs(r.Mean-best.Mean) <= o.o.Config.CostTolerance+1e-12 {
			near = append(near, i)
		}
	}
	slices.SortStableFunc(near, func(a, c int) int {
		return cmpFloat(math.Abs(res.Results[a].Mean-best.Mean), math.Abs(res.Results[c].Mean-best.Mean))
	})
	near = near[:min(len(near), maxCostCandidates)]
	var cands []candidate
	for _, i := range near {
		c, err := o.export(ctx, trainD, hold, b.sig, res.Results[i], i)
		if err != nil {
			if ctx.Err() != nil {
				return fail(context.Cause(ctx))
			}
			return fail(permanent("export %s %s: %v", res.Results[i].Family.Name(), res.Results[i].Params, err))
		}
		rep.Grid[i].ONNXBytes, rep.Grid[i].LatencyMicros = len(c.onnx), math.Round(c.micros*1000)/1000
		cands = append(cands, c)
	}
	chosen := slices.MinFunc(cands, func(a, c candidate) int {
		if d := len(a.onnx) - len(c.onnx); d != 0 {
			return d
		}
		if d := cmpFloat(a.micros, c.micros); d != 0 {
			return d
		}
		return a.result - c.result
	})
	win := res.Results[chosen.result]
	rep.Family, rep.Params, rep.CVMean, rep.CVStd = win.Family.Name(), params(win.Params), win.Mean, win.Std
	if chosen.result != res.Best {
		bc := cands[slices.IndexFunc(cands, func(c candidate) bool { return c.result == res.Best })]
		rep.Traded = fmt.Sprintf("chose %s %s (cv %s %.4g, %d bytes, %.3g µs/row) over the best-scoring %s %s (cv %.4g, %d bytes, %.3g µs/row): within cost_tolerance %g",
			win.Family.Name(), win.Params, s.metric, win.Mean, len(chosen.onnx), chosen.micros,
			best.Family.Name(), best.Params, best.Mean, len(bc.onnx), bc.micros, o.o.Config.CostTolerance)
	}

	// The effect, judged on the held-out rows: the export through ONNX
	// Runtime (what would serve) against the serving version.
	newPreds, err := o.predictChecked(ctx, b.sig, chosen, hold.x)
	if err != nil {
		return fail(err)
	}
	oldPreds, err := o.predict(ctx, b.model, b.sig, hold.x)
	if err != nil {
		return fail(permanent("score the serving v%d: %v", b.v.Version, err))
	}
	oldScore, err := learn.Score(s.metric, holdD, oldPreds)
	if err != nil {
		return fail(permanent("score the serving v%d on the held-out rows: %v", b.v.Version, err))
	}
	newScore, err := learn.Score(s.metric, holdD, newPreds)
	if err != nil {
		return fail(permanent("score the candidate on the held-out rows: %v", err))
	}
	rep.Holdout = Holdout{Old: oldScore, New: newScore}
	if ci, err := learn.Bootstrap(s.metric, holdD, oldPreds, newPreds, 0, o.o.Config.Seed); err == nil {
		rep.CI = Interval{Low: ci.Low, High: ci.High, Level: ci.Level}
	} else {
		o.o.Logger.Info("optimize: no bootstrap interval", "model", req.model, "err", err)
	}
	gain := newScore - oldScore
	if rep.LowerIsBetter {
		gain = -gain
	}
	rep.Improved = gain > 0 && gain >= o.o.Config.Margin
	if !rep.Improved {
		rep.Reason = fmt.Sprintf("the candidate (%s %s) scores %s %.4g on the %d held-out rows, the serving v%d %.4g: not better by the margin %g; nothing published",
			win.Family.Name(), win.Params, s.metric, newScore, hold.rows(), b.v.Version, oldScore, o.o.Config.Margin)
		return 0, nil
	}
	if req.dryRun {
		rep.Reason = "dry run: nothing published"
		return 0, nil
	}
	v, err := o.publish(ctx, req, b, rep, chosen.onnx)
	if err != nil {
		return fail(err)
	}
	rep.Published = strconv.FormatUint(v, 10)
	if !req.rollout || o.o.Fleet == nil {
		rep.Reason = fmt.Sprintf("published v%d; not rolled out", v)
		return v, nil
	}
	note, err := o.rollout(ctx, req, b, v, rep)
	if err != nil {
		// Published; the retry finds the same version and rolls it out.
		return v, fmt.Errorf("published v%d; canary rollout: %w", v, err)
	}
	rep.Reason = note
	return v, nil
}

// validateFeatures checks the held-out rows' features (their classes may
// be fewer than the model's).
func validateFeatures(d *learn.Dataset) error {
	r, c := d.X.Dims()
	for i := range r {
		for j := range c {
			if v := d.X.At(i, j); math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("row %d: feature %d is %v; every feature must be a finite number", i, j, v)
			}
		}
	}
	return nil
}

func params(p learn.Params) map[string]float64 {
	out := make(map[string]float64, len(p))
	for k, v := range p {
		out[k] = v
	}
	return out
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// export refits result r on all the training rows, builds its ONNX graph
// with the serving signature and measures its latency on the held-out
// rows through ONNX Runtime.
func (o *Optimizer) export(ctx context.Context, d *learn.Dataset, hold *table, sig *export.Signature, r learn.CandidateResult, i int) (candidate, error) {
	m, err := r.Family.Fit(ctx, d, r.Params, o.o.Config.Seed)
	if err != nil {
		return candidate{}, err
	}
	e, ok := m.(export.Exportable)
	if !ok {
		return candidate{}, fmt.Errorf("family %s's model (%T) cannot be exported", r.Family.Name(), m)
	}
	proto, err := export.Build(e, sig, Author)
	if err != nil {
		return candidate{}, err
	}
	data, err := onnx.Marshal(proto)
	if err != nil {
		return candidate{}, err
	}
	sess, err := loadONNX(ctx, o.o.TempDir, data, sig)
	if err != nil {
		return candidate{}, err
	}
	defer sess.Close()
	us, err := sess.latency(ctx, hold.x)
	if err != nil {
		return candidate{}, err
	}
	return candidate{result: i, model: m, onnx: data, micros: us}, nil
}

// predictChecked runs the chosen export through ONNX Runtime on x and
// checks its answers equal the trained model's.
func (o *Optimizer) predictChecked(ctx context.Context, sig *export.Signature, c candidate, x [][]float64) ([][]float64, error) {
	sess, err := loadONNX(ctx, o.o.TempDir, c.onnx, sig)
	if err != nil {
		return nil, permanent("load the export: %v", err)
	}
	defer sess.Close()
	preds, labels, err := sess.predict(ctx, x)
	if err != nil {
		return nil, permanent("run the export: %v", err)
	}
	if err := checkAgreement(sig, c.model, x, preds, labels); err != nil {
		return nil, permanent("the export does not answer as the trained model: %v; nothing published", err)
	}
	return preds, nil
}

func (o *Optimizer) predict(ctx context.Context, model []byte, sig *export.Signature, x [][]float64) ([][]float64, error) {
	sess, err := loadONNX(ctx, o.o.TempDir, model, sig)
	if err != nil {
		return nil, err
	}
	defer sess.Close()
	preds, _, err := sess.predict(ctx, x)
	return preds, err
}

// IncidentRef is how a published version's record names the incident it
// answers: "<version>@<start>", the drifted version and the incident's
// start (RFC 3339, UTC, milliseconds), which with the model give the job
// id (jobs.JobID).
func IncidentRef(version string, start time.Time) string {
	return version + "@" + start.UTC().Truncate(time.Millisecond).Format("2006-01-02T15:04:05.000Z07:00")
}

// publish stages the export and its drover.yaml and commits them as a new
// version (source optimize, parent the baseline, the request's incident
// and job) on the model's owner.
func (o *Optimizer) publish(ctx context.Context, req request, b *baseline, rep *Report, model []byte) (uint64, error) {
	m := &manifest.Manifest{Training: &manifest.Training{
		Params: map[string]string{"family": rep.Family},
		Metrics: map[string]float64{
			"cv_" + rep.Metric: rep.CVMean, "holdout_" + rep.Metric: rep.Holdout.New, "serving_holdout_" + rep.Metric: rep.Holdout.Old,
		},
	}}
	for k, v := range rep.Params {
		m.Training.Params[k] = strconv.FormatFloat(v, 'g', -1, 64)
	}
	if req.csv == nil && req.until.After(req.since) {
		m.Training.DataWindow = &manifest.Window{Start: req.since.UTC(), End: req.until.UTC()}
	}
	if bm := b.manifest; bm != nil {
		// What still holds for the new version: the same signature and
		// inputs (features' bins), gate and search space.
		m.Signature, m.Features, m.Gate, m.Optimize = bm.Signature, bm.Features, bm.Gate, bm.Optimize
	}
	yml, err := m.Marshal()
	if err != nil {
		return 0, fmt.Errorf("write drover.yaml: %w", err)
	}
	var files []registry.FileInfo
	for _, f := range []struct {
		path string
		data []byte
	}{{manifest.ModelFile, model}, {manifest.FileName, yml}} {
		sum := sha256.Sum256(f.data)
		fi, err := o.o.Registry.Stage(ctx, registry.Upload{Path: f.path, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(f.data)), Body: bytes.NewReader(f.data)})
		if err != nil {
			return 0, fmt.Errorf("publish %s: %w", req.model, err)
		}
		files = append(files, fi)
	}
	msg := fmt.Sprintf("optimize: %s %s; held-out %s %.4g (serving v%d: %.4g) on %d rows",
		rep.Family, learn.Params(rep.Params), rep.Metric, rep.Holdout.New, b.v.Version, rep.Holdout.Old, rep.HoldoutRows)
	if req.job != "" {
		msg += "; job " + req.job
	}
	v, created, err := o.o.Commit(ctx, registry.Commit{Model: req.model, Files: files, Meta: registry.Meta{
		Author: Author, Message: msg, Parents: []uint64{b.v.Version}, Source: registry.SourceOptimize,
		Incident: req.incident, Job: req.job,
	}})
	if err != nil {
		return 0, fmt.Errorf("publish %s: %w", req.model, err)
	}
	o.o.Logger.Info("optimize: version published", "model", req.model, "version", v.Version, "created", created, "parent", b.v.Version,
		"job", req.job, "metric", rep.Metric, "old", rep.Holdout.Old, "new", rep.Holdout.New)
	return v.Version, nil
}

// rollout sends version v out as an automatic canary unless the model is
// pinned, the fleet serves no version of it, or a canary is under way; it
// returns what it did.
func (o *Optimizer) rollout(ctx context.Context, req request, b *baseline, v uint64, rep *Report) (string, error) {
	st, err := o.o.Fleet.Desired(ctx, req.model)
	if err != nil {
		return "", err
	}
	switch {
	case st.Pinned:
		return fmt.Sprintf("published v%d; not rolled out: %s is pinned at v%d", v, req.model, st.Serving), nil
	case st.Serving == 0:
		return fmt.Sprintf("published v%d; not rolled out: the fleet serves no version of %s (roll one out first)", v, req.model), nil
	case st.Serving == v || st.Canary != nil && st.Canary.Version == v:
		return fmt.Sprintf("published v%d; already rolled out", v), nil
	case st.Canary != nil:
		// A canary under way (a person's, or this optimizer's own from an
		// earlier job) is decided by its analysis or its owner first; a
		// rollout would replace it before it was judged.
		return fmt.Sprintf("published v%d; not rolled out: v%d is a canary of %s (roll v%d out once it is decided)", v, st.Canary.Version, req.model, v), nil
	}
	who := auth.Principal{Name: Author, Role: auth.Publisher}
	if req.job != "" {
		who.Name = Author + "/" + req.job
	}
	_, err = o.o.Fleet.Change(auth.WithPrincipal(ctx, who), req.model, fleet.ChangeRollout, fleet.Request{
		Version: v, Canary: &fleet.CanaryRequest{Share: CanaryShare, Auto: true},
		Reason: fmt.Sprintf("optimize: %s %.4g → %.4g on %d held-out rows (serving v%d)", rep.Metric, rep.Holdout.Old, rep.Holdout.New, rep.HoldoutRows, b.v.Version),
	})
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("published v%d; canary %d%% with automatic analysis", v, CanaryShare), nil
}
