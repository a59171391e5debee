// Package monitor watches how good each version is, from the serving path:
// it samples requests (by a hash of the request id), keeps sampled
// predictions for joining with labels that arrive later through the feedback
// call, computes windowed evaluation metrics, records input and output
// distributions for drift, ships sampled requests to the collector as
// training data, runs shadow copies off the request path, and gates new
// versions on their golden sets.
//
// Observe is on the request path: for a request that is not sampled and not
// shadowed it costs two hashes. Everything else is bounded: the sample
// store, the evaluator's windows, the shadow queue (full → dropped and
// counted; bounded in count and in bytes) and the telemetry queues.
package monitor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/drover-ml/drover/agent/evaluate"
	"github.com/drover-ml/drover/agent/telemetry"
	"github.com/drover-ml/drover/agent/versions"
	"github.com/drover-ml/drover/shared/manifest"
	"github.com/drover-ml/drover/shared/oip"
)

// Config configures sampling, the sample store and shadowing. A file is
// read over DefaultConfig: an omitted key keeps its default, an explicit
// value is taken literally (rate: 0 samples nothing) and Validate rejects
// the ones that make no sense (ttl: 0). Code that builds a Config may
// leave fields zero: New applies WithDefaults.
type Config struct {
	// Rate is the default share of requests sampled (0..1); default 0.05.
	Rate *float64 `yaml:"rate"`
	// StoreEntries, StoreBytes and TTL bound the samples kept for label
	// joining; defaults 100000, 64 MiB, 1h.
	StoreEntries int           `yaml:"store_entries"`
	StoreBytes   int64         `yaml:"store_bytes"`
	TTL          time.Duration `yaml:"ttl"`
	// Window is the evaluation window; default 1h.
	Window time.Duration `yaml:"window"`
	// MaxSampleBytes caps the inputs+outputs JSON shipped per sample;
	// larger samples are evaluated but not shipped. Default 64 KiB.
	MaxSampleBytes int `yaml:"max_sample_bytes"`
	// ShadowQueue bounds shadow copies waiting to run; default 256.
	ShadowQueue int `yaml:"shadow_queue"`
	// ShadowQueueBytes bounds the tensor bytes (inputs and primary
	// outputs) of the shadow copies waiting or running; a copy that would
	// exceed it is dropped and counted. Default 16 MiB.
	ShadowQueueBytes int64 `yaml:"shadow_queue_bytes"`
	// Gate holds the agent's default gate thresholds; a version's manifest
	// overrides them metric by metric.
	Gate *manifest.Gate `yaml:"gate"`
}

// DefaultConfig returns the defaults. Each call returns a fresh Rate
// pointer.
func DefaultConfig() Config {
	rate := 0.05
	return Config{
		Rate:           &rate,
		StoreEntries:   100000,
		StoreBytes:     64 << 20,
		TTL:            time.Hour,
		Window:         time.Hour,
		MaxSampleBytes: 64 << 10,
		ShadowQueue:    256,
		// 16 MiB: the copies of a few large requests, or of many small
		// ones, never 256 requests of max_request_bytes each.
		ShadowQueueBytes: 16 << 20,
	}
}

// WithDefaults returns c with its unset (nil, zero or negative) fields set
// from DefaultConfig, for Configs built in code.
func (c Config) WithDefaults() Config {
	d := DefaultConfig()
	if c.Rate == nil {
		c.Rate = d.Rate
	}
	if c.StoreEntries <= 0 {
		c.StoreEntries = d.StoreEntries
	}
	if c.StoreBytes <= 0 {
		c.StoreBytes = d.StoreBytes
	}
	if c.TTL <= 0 {
		c.TTL = d.TTL
	}
	if c.Window <= 0 {
		c.Window = d.Window
	}
	if c.MaxSampleBytes <= 0 {
		c.MaxSampleBytes = d.MaxSampleBytes
	}
	if c.ShadowQueue <= 0 {
		c.ShadowQueue = d.ShadowQueue
	}
	if c.ShadowQueueBytes <= 0 {
		c.ShadowQueueBytes = d.ShadowQueueBytes
	}
	return c
}

// Validate reports every invalid field, each prefixed with its path
// relative to the monitoring section. Zero is taken literally: rate 0 is
// valid (no sampling), a zero size or duration is an error.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if c.Rate == nil {
		bad("rate", "is required")
	} else if *c.Rate < 0 || *c.Rate > 1 {
		bad("rate", "must be in [0, 1], got %v", *c.Rate)
	}
	if c.StoreEntries < 1 {
		bad("store_entries", "must be >= 1, got %d", c.StoreEntries)
	}
	if c.StoreBytes < 1 {
		bad("store_bytes", "must be >= 1, got %d", c.StoreBytes)
	}
	if c.TTL <= 0 {
		bad("ttl", "must be > 0, got %s", c.TTL)
	}
	if c.Window <= 0 {
		bad("window", "must be > 0, got %s", c.Window)
	}
	if c.MaxSampleBytes < 1 {
		bad("max_sample_bytes", "must be >= 1, got %d", c.MaxSampleBytes)
	}
	if c.ShadowQueue < 1 {
		bad("shadow_queue", "must be >= 1, got %d", c.ShadowQueue)
	}
	if c.ShadowQueueBytes < 1 {
		bad("shadow_queue_bytes", "must be >= 1, got %d", c.ShadowQueueBytes)
	}
	if g := c.Gate; g != nil {
		for _, k := range slices.Sorted(maps.Keys(g.MaxRegression)) {
			if _, ok := manifest.Metrics[k]; !ok {
				bad("gate.max_regression."+k, "unknown metric")
			} else if v := g.MaxRegression[k]; v < 0 {
				bad("gate.max_regression."+k, "must be >= 0, got %v", v)
			}
		}
		for _, k := range slices.Sorted(maps.Keys(g.Min)) {
			if _, ok := manifest.Metrics[k]; !ok {
				bad("gate.min."+k, "unknown metric")
			}
		}
	}
	return errors.Join(errs...)
}

// ModelSettings are a model's monitoring settings.
type ModelSettings struct {
	// Task is classification or regression; default the manifest's golden
	// set task, else inferred from the outputs (class labels or an INT64
	// output mean classification).
	Task string `yaml:"task"`
	// Rate overrides the sampling rate for this model.
	Rate *float64 `yaml:"sample_rate"`
	// Output names the output predictions are read from.
	Output string `yaml:"output"`
}

// Monitor is safe for concurrent use.
type Monitor struct {
	cfg      Config
	tel      *telemetry.Telemetry
	set      *versions.Set
	log      *slog.Logger
	store    *evaluate.Store
	eval     *evaluate.Evaluator
	settings atomic.Pointer[map[string]ModelSettings]
	shadowQ  chan shadowJob
	// shadowBytes is the tensor bytes of the shadow copies queued or
	// running, bounded by cfg.ShadowQueueBytes.
	shadowBytes atomic.Int64
	plans       sync.Map // *versions.Version -> *plan
	golden      sync.Map // "model\x00version" -> evaluate.Result
	shadows     sync.Map // "model\x00version" -> *shadowStats
	// fwd takes the labels of ids this agent did not sample (nil: they
	// are only counted unknown).
	fwd atomic.Pointer[forwarder]
}

// forwarder boxes an evaluate.Forwarder for the atomic pointer.
type forwarder struct{ evaluate.Forwarder }

// SetForwarder makes Feedback hand the labels of ids this agent did not
// sample for the model (counted unknown) to f, so that they count
// fleet-wide; nil stops forwarding. Safe to call at any time.
func (m *Monitor) SetForwarder(f evaluate.Forwarder) {
	if f == nil {
		m.fwd.Store(nil)
		return
	}
	m.fwd.Store(&forwarder{f})
}

// New builds a monitor.
func New(cfg Config, settings map[string]ModelSettings, tel *telemetry.Telemetry, set *versions.Set, log *slog.Logger) *Monitor {
	cfg = cfg.WithDefaults()
	m := &Monitor{
		cfg: cfg, tel: tel, set: set, log: log,
		store:   evaluate.NewStore(evaluate.StoreOptions{MaxEntries: cfg.StoreEntries, MaxBytes: cfg.StoreBytes, TTL: cfg.TTL}),
		eval:    evaluate.NewEvaluator(evaluate.EvaluatorOptions{Window: cfg.Window}),
		shadowQ: make(chan shadowJob, cfg.ShadowQueue),
	}
	m.SetSettings(settings)
	tel.SetEvalSource(m.eachMetric)
	return m
}

// SetSettings replaces the per-model settings (config reload).
func (m *Monitor) SetSettings(s map[string]ModelSettings) {
	if s == nil {
		s = map[string]ModelSettings{}
	}
	m.settings.Store(&s)
}

func (m *Monitor) settingsFor(model string) ModelSettings { return (*m.settings.Load())[model] }

func (m *Monitor) rate(model string) float64 {
	if r := m.settingsFor(model).Rate; r != nil {
		return *r
	}
	return *m.cfg.Rate
}

// Task returns the version's task: the model's setting, else the manifest's
// golden set task, else inferred from its outputs.
func (m *Monitor) Task(v *versions.Version) string {
	if t := m.settingsFor(v.Model).Task; t != "" {
		return t
	}
	if v.Manifest != nil && v.Manifest.GoldenSet != nil {
		return v.Manifest.GoldenSet.Task
	}
	for _, o := range v.Signature.Outputs {
		if len(o.Classes) > 0 || o.Datatype == oip.INT64 || o.Datatype == oip.BYTES {
			return manifest.TaskClassification
		}
	}
	return manifest.TaskRegression
}

func key(model, version string) string { return model + "\x00" + version }

// eachMetric feeds the telemetry's evaluation gauge.
func (m *Monitor) eachMetric(yield func(model, version, source, metric, class string, value float64)) {
	m.eval.Each(func(model, version, metric, class string, value float64) {
		yield(model, version, "labels", metric, class, value)
	})
	m.golden.Range(func(k, v any) bool {
		model, version := splitKey(k.(string))
		res := v.(evaluate.Result)
		for metric, val := range res.Metrics {
			yield(model, version, "golden", metric, "", val)
		}
		return true
	})
	m.shadows.Range(func(k, v any) bool {
		model, version := splitKey(k.(string))
		st := v.(*shadowStats)
		if agree, mad, ok := st.values(); ok {
			if !math.IsNaN(agree) {
				yield(model, version, "shadow", "agreement", "", agree)
			}
			if !math.IsNaN(mad) {
				yield(model, version, "shadow", "mean_abs_diff", "", mad)
			}
		}
		return true
	})
}

func splitKey(k string) (string, string) {
	for i := 0; i < len(k); i++ {
		if k[i] == 0 {
			return k[:i], k[i+1:]
		}
	}
	return k, ""
}

// Forget drops what the monitor keeps for a version that was unloaded.
func (m *Monitor) Forget(model string, version int64) {
	vs := strconv.FormatInt(version, 10)
	m.eval.Forget(model, vs)
	m.golden.Delete(key(model, vs))
	m.plans.Range(func(k, _ any) bool {
		if v := k.(*versions.Version); v.Model == model && v.Number == version {
			m.plans.Delete(k)
		}
		return true
	})
}

// Observe records what the monitor needs from a successful inference:
// v answered req with resp; shadow is the version the router chose to copy
// the request to (0: none, see versions.Set.Route). It is called on the
// request path.
func (m *Monitor) Observe(v *versions.Version, shadow int64, req *oip.InferRequest, resp *oip.InferResponse) {
	m.maybeShadow(v, shadow, req, resp)
	if !evaluate.Sampled(req.ID, m.rate(v.Model)) {
		return
	}
	version := strconv.FormatInt(v.Number, 10)
	m.tel.RecordSample(v.Model, version)
	p := m.plan(v)
	p.observe(m.tel, req.Inputs, resp.Outputs)

	task := m.Task(v)
	preds, classes, err := evaluate.ExtractPredictions(task, v.Signature, resp.Outputs, evaluate.ExtractOptions{Output: m.settingsFor(v.Model).Output})
	if err == nil {
		now := time.Now()
		for i, pred := range preds {
			id := req.ID
			if len(preds) > 1 {
				id = req.ID + "#" + strconv.Itoa(i)
			}
			m.store.Put(id, evaluate.Sample{Model: v.Model, Version: version, Time: now, Pred: pred, Classes: classes, Task: task})
		}
	}
	in, out := tensorsJSON(req.Inputs), tensorsJSON(resp.Outputs)
	if len(in)+len(out) <= m.cfg.MaxSampleBytes {
		m.tel.Sample(v.Model, version, req.ID, in, out, time.Now())
	}
}

// tensorsJSON renders tensors as an OIP JSON outputs array (NaN and
// infinities as strings, BYTES as strings).
func tensorsJSON(ts []oip.Tensor) []byte {
	body, _, err := oip.EncodeRESTResponse(&oip.InferResponse{Outputs: ts}, nil)
	if err != nil {
		return nil
	}
	return body
}

// FeedbackResult counts what happened to the labels of one feedback call.
type FeedbackResult struct {
	Joined  int `json:"joined"`
	Unknown int `json:"unknown"`
	Expired int `json:"expired"`
}

// ErrBadFeedback wraps problems with the caller's labels (400).
var ErrBadFeedback = errors.New("bad feedback")

// Feedback joins labels (one {"id", "label"} or an array) to sampled
// predictions of model. Labels of the wrong type for the model's task fail
// the whole call (nothing is joined); unknown and expired ids are counted,
// not errors. Labels of unknown ids go to the forwarder (SetForwarder),
// if any, after they were counted.
func (m *Monitor) Feedback(model string, body []byte) (FeedbackResult, error) {
	var res FeedbackResult
	fbs, err := evaluate.ParseFeedback(body)
	if err != nil {
		return res, fmt.Errorf("%w: %v", ErrBadFeedback, err)
	}
	v, err := m.set.Acquire(model, 0)
	if err != nil {
		return res, err
	}
	task := m.Task(v)
	v.Release()
	type label struct {
		class string
		value float64
	}
	labels := make([]label, len(fbs))
	for i, f := range fbs {
		c, val, err := f.LabelFor(task)
		if err != nil {
			m.tel.RecordFeedback(model, "", telemetry.FeedbackInvalid)
			return res, fmt.Errorf("%w: %v", ErrBadFeedback, err)
		}
		labels[i] = label{c, val}
	}
	var unknown []evaluate.Feedback
	for i, f := range fbs {
		// Only an id this agent sampled for this model is taken: an id it
		// never sampled, or sampled for another model, changes nothing
		// and is counted unknown.
		s, st := m.store.TakeFor(f.ID, model)
		switch st {
		case evaluate.Joined:
			res.Joined++
			m.eval.Add(s.Model, s.Version, s.Task, s.Pred, s.Classes, labels[i].class, labels[i].value)
			m.tel.RecordFeedback(model, s.Version, telemetry.FeedbackJoined)
		case evaluate.Expired:
			res.Expired++
			m.tel.RecordFeedback(model, "", telemetry.FeedbackExpired)
		default:
			res.Unknown++
			m.tel.RecordFeedback(model, "", telemetry.FeedbackUnknown)
			unknown = append(unknown, f)
		}
	}
	if f := m.fwd.Load(); f != nil && len(unknown) > 0 {
		f.Forward(model, unknown)
	}
	return res, nil
}

// Metrics returns the windowed evaluation metrics of a version.
func (m *Monitor) Metrics(model string, version int64) evaluate.Result {
	return m.eval.Metrics(model, strconv.FormatInt(version, 10))
}

// Golden returns the golden-set result of a version, if it was gated.
func (m *Monitor) Golden(model string, version int64) (evaluate.Result, bool) {
	r, ok := m.golden.Load(key(model, strconv.FormatInt(version, 10)))
	if !ok {
		return evaluate.Result{}, false
	}
	return r.(evaluate.Result), true
}

// Gate is the version set's gate (versions.Config.Gate): it evaluates the
// candidate on its golden set and, when a version serves, that version on
// the same data, and rejects the candidate when it is worse than the gate
// allows. Golden data
// that does not fit the candidate's signature is a rejection.
func (m *Monitor) Gate(ctx context.Context, cand, cur *versions.Version) error {
	if cand.Manifest == nil || cand.Manifest.GoldenSet == nil {
		return nil
	}
	gs, err := evaluate.LoadGoldenSet(cand.Dir, cand.Manifest.GoldenSet, cand.Signature)
	if err != nil {
		return fmt.Errorf("golden set: %w", err)
	}
	run := func(v *versions.Version) func([]oip.Tensor) ([]oip.Tensor, error) {
		return func(in []oip.Tensor) ([]oip.Tensor, error) { return v.Infer(ctx, in, nil) }
	}
	candRes, err := gs.Evaluate(run(cand), cand.Signature)
	if err != nil {
		return fmt.Errorf("golden set on the candidate: %w", err)
	}
	m.golden.Store(key(cand.Model, strconv.FormatInt(cand.Number, 10)), candRes)
	var curRes evaluate.Result
	haveCur := false
	if cur != nil && cur.Signature.Equal(cand.Signature) {
		if r, err := gs.Evaluate(run(cur), cur.Signature); err == nil {
			curRes, haveCur = r, true
		} else {
			m.log.Warn("golden set could not be evaluated on the serving version; comparing with thresholds only", "model", cand.Model, "version", cur.Number, "err", err)
		}
	}
	d := evaluate.Gate(candRes, curRes, haveCur, cand.Manifest.Gate, m.cfg.Gate)
	for _, n := range d.Notes {
		m.log.Info("gate", "model", cand.Model, "version", cand.Number, "note", n)
	}
	if !d.Admit {
		return fmt.Errorf("worse than allowed on its golden set (%d rows): %s", gs.Len(), joinReasons(d.Reasons))
	}
	m.log.Info("gate admitted version", "model", cand.Model, "version", cand.Number, "golden_rows", gs.Len(), "metrics", candRes.Metrics)
	return nil
}

func joinReasons(rs []string) string {
	s := ""
	for i, r := range rs {
		if i > 0 {
			s += "; "
		}
		s += r
	}
	return s
}
