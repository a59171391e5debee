package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// WorkloadConfig says where the workload sends its requests and labels,
// how fast, and when it injects drift.
type WorkloadConfig struct {
	// Model is the model's name (ModelName).
	Model string
	// Agents are the agents' OIP REST base URLs (http://127.0.0.1:8080);
	// requests go to them in turn.
	Agents []string
	// Collector is the admin API's base URL; every label is also posted
	// to its POST /v2/models/{m}/feedback with CollectorToken (role client
	// or agent), so the fleet-wide join (drift's metric, the canary
	// analysis, the optimizer's training data) has it. Empty: labels go to
	// the agents only.
	Collector      string
	CollectorToken string
	// Rate is requests per second over all agents; Concurrency how many
	// are in flight at most.
	Rate        float64
	Concurrency int
	// DriftAfter is when, from Run's start, the rows start to drift (0: at
	// once; negative: never).
	DriftAfter time.Duration
	// SizeFactor is the drift's covariate shift (DefaultSizeFactor).
	SizeFactor float64
	// LabelEvery is how often labels are posted, in batches.
	LabelEvery time.Duration
	// Seed orders the rows.
	Seed uint64
	// Client sends every request (http.DefaultClient when nil).
	Client *http.Client
	Logger *slog.Logger
}

// Response is one answered request as the workload saw it.
type Response struct {
	Time    time.Time
	Agent   int
	Version string
	Drifted bool
	Correct bool
}

// Workload sends the data set's rows through the agents' Open Inference
// Protocol REST API, posts each row's true label as feedback, and from
// DriftAfter on sends drifted rows. Its methods are safe for concurrent
// use; Run may be called once.
type Workload struct {
	cfg   WorkloadConfig
	data  *Dataset
	drift *Drift
	runID string

	mu        sync.Mutex
	responses []Response
	driftAt   time.Time
	errs      int
	lastErr   error
	pending   map[int][]feedback // agent -> labels not yet posted
}

type feedback struct {
	ID    string `json:"id"`
	Label int64  `json:"label"`
}

// NewWorkload returns a workload over d.
func NewWorkload(cfg WorkloadConfig, d *Dataset) (*Workload, error) {
	if len(cfg.Agents) == 0 {
		return nil, errors.New("workload: no agent")
	}
	if !(cfg.Rate > 0) {
		return nil, fmt.Errorf("workload: rate %v must be > 0", cfg.Rate)
	}
	if cfg.Model == "" {
		cfg.Model = ModelName
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 8
	}
	if cfg.SizeFactor == 0 {
		cfg.SizeFactor = DefaultSizeFactor
	}
	if cfg.LabelEvery <= 0 {
		cfg.LabelEvery = time.Second
	}
	if cfg.Client == nil {
		cfg.Client = http.DefaultClient
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	dr, err := NewDrift(d, cfg.SizeFactor)
	if err != nil {
		return nil, err
	}
	return &Workload{cfg: cfg, data: d, drift: dr, pending: map[int][]feedback{},
		runID: strconv.FormatInt(time.Now().UnixMilli(), 36)}, nil
}

// DriftAt returns when the workload started to send drifted rows (zero
// before).
func (w *Workload) DriftAt() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.driftAt
}

// Responses returns the answered requests from since on.
func (w *Workload) Responses(since time.Time) []Response {
	w.mu.Lock()
	defer w.mu.Unlock()
	i := len(w.responses)
	for i > 0 && !w.responses[i-1].Time.Before(since) {
		i--
	}
	return append([]Response(nil), w.responses[i:]...)
}

// Errors returns the number of failed requests and label posts, and the
// last error.
func (w *Workload) Errors() (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.errs, w.lastErr
}

// Run sends requests until ctx is done, then posts the labels still
// queued (with a short deadline of its own) and returns nil. Failed
// requests are counted (Errors), not fatal: an agent swapping a version
// or restarting must not stop the demo.
func (w *Workload) Run(ctx context.Context) error {
	start := time.Now()
	order := rand.New(rand.NewPCG(w.cfg.Seed, 0x64656d6f)).Perm(w.data.Rows())
	sem := make(chan struct{}, w.cfg.Concurrency)
	var wg sync.WaitGroup               // the requests in flight; Add and Wait in this goroutine only
	requestsDone := make(chan struct{}) // closed once every request has answered

	labelDone := make(chan struct{})
	labelCtx, stopLabels := context.WithCancel(context.WithoutCancel(ctx))
	go func() {
		defer close(labelDone)
		t := time.NewTicker(w.cfg.LabelEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				fctx, cancel := context.WithTimeout(labelCtx, 5*time.Second)
				<-requestsDone
				// Quietly: on Ctrl-C the agents stop at the same time.
				w.flushLabels(fctx, true)
				cancel()
				return
			case <-t.C:
				w.flushLabels(labelCtx, false)
			}
		}
	}()
	defer func() {
		// A Wait concurrent with the loop's Add (as the label goroutine
		// did) is a race: the requests are awaited here, after the loop.
		wg.Wait()
		close(requestsDone)
		<-labelDone
		stopLabels()
	}()

	tick := time.NewTicker(time.Duration(float64(time.Second) / w.cfg.Rate))
	defer tick.Stop()
	for seq := 0; ; seq++ {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		drifted := w.cfg.DriftAfter >= 0 && time.Since(start) >= w.cfg.DriftAfter
		if drifted {
			w.mu.Lock()
			if w.driftAt.IsZero() {
				w.driftAt = time.Now()
			}
			w.mu.Unlock()
		}
		row := order[seq%len(order)]
		agent := seq % len(w.cfg.Agents)
		select {
		case <-ctx.Done():
			return nil
		case sem <- struct{}{}:
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			w.send(ctx, agent, fmt.Sprintf("demo-%s-%d", w.runID, seq), row, drifted)
		}()
	}
}

// send makes one request and records its answer and its label.
func (w *Workload) send(ctx context.Context, agent int, id string, row int, drifted bool) {
	x := w.data.X[row]
	if drifted {
		x = w.drift.Apply(x)
	}
	version, label, err := Infer(ctx, w.cfg.Client, w.cfg.Agents[agent], w.cfg.Model, id, x)
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		if ctx.Err() == nil {
			w.errs++
			w.lastErr = err
		}
		return
	}
	w.responses = append(w.responses, Response{Time: time.Now(), Agent: agent, Version: version, Drifted: drifted,
		Correct: label == w.data.Y[row]})
	w.pending[agent] = append(w.pending[agent], feedback{ID: id, Label: w.data.Y[row]})
}

// flushLabels posts the queued labels: each agent's to that agent (which
// joins them with its samples: its own accuracy gauges), all of them to
// the collector (the fleet-wide join). Failures are counted (Errors) and,
// unless quiet, logged.
func (w *Workload) flushLabels(ctx context.Context, quiet bool) {
	w.mu.Lock()
	pending := w.pending
	w.pending = map[int][]feedback{}
	w.mu.Unlock()
	var all []feedback
	for agent, fb := range pending {
		all = append(all, fb...)
		if err := postFeedback(ctx, w.cfg.Client, w.cfg.Agents[agent], w.cfg.Model, "", fb); err != nil {
			w.fail(err, quiet)
		}
	}
	if w.cfg.Collector != "" && len(all) > 0 {
		if err := postFeedback(ctx, w.cfg.Client, w.cfg.Collector, w.cfg.Model, w.cfg.CollectorToken, all); err != nil {
			w.fail(err, quiet)
		}
	}
}

func (w *Workload) fail(err error, quiet bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.errs++
	w.lastErr = err
	if !quiet {
		w.cfg.Logger.Warn("demo workload", "err", err)
	}
}

// Infer sends row x to the agent at base as an OIP v2 REST request with
// id id, and returns the version that answered and the predicted label.
func Infer(ctx context.Context, c *http.Client, base, model, id string, x []float64) (version string, label int64, err error) {
	data := make([]float32, len(x))
	for i, v := range x {
		data[i] = float32(v)
	}
	body, err := json.Marshal(map[string]any{"id": id, "inputs": []map[string]any{{
		"name": Input, "shape": []int{1, len(x)}, "datatype": "FP32", "data": data}},
		"outputs": []map[string]any{{"name": LabelOutput}}})
	if err != nil {
		return "", 0, fmt.Errorf("infer %s: %w", id, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(base, "/")+"/v2/models/"+model+"/infer", bytes.NewReader(body))
	if err != nil {
		return "", 0, fmt.Errorf("infer %s: %w", id, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return "", 0, fmt.Errorf("infer %s at %s: %w", id, base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", 0, fmt.Errorf("infer %s at %s: %w", id, base, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", 0, fmt.Errorf("infer %s at %s: %s: %s", id, base, resp.Status, bytes.TrimSpace(b))
	}
	var out struct {
		ModelVersion string `json:"model_version"`
		Outputs      []struct {
			Name string          `json:"name"`
			Data json.RawMessage `json:"data"`
		} `json:"outputs"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return "", 0, fmt.Errorf("infer %s at %s: the answer: %w", id, base, err)
	}
	for _, o := range out.Outputs {
		if o.Name != LabelOutput {
			continue
		}
		var d []int64
		if err := json.Unmarshal(o.Data, &d); err != nil || len(d) != 1 {
			return "", 0, fmt.Errorf("infer %s at %s: output %s is %s, want one label", id, base, LabelOutput, o.Data)
		}
		return out.ModelVersion, d[0], nil
	}
	return "", 0, fmt.Errorf("infer %s at %s: no output %s in %s", id, base, LabelOutput, b)
}

// postFeedback posts labels to base's POST /v2/models/{m}/feedback (an
// agent's or a collector's), with token as bearer when not empty.
func postFeedback(ctx context.Context, c *http.Client, base, model, token string, fb []feedback) error {
	body, err := json.Marshal(fb)
	if err != nil {
		return fmt.Errorf("labels for %s: %w", base, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(base, "/")+"/v2/models/"+model+"/feedback", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("labels for %s: %w", base, err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("post %d labels to %s: %w", len(fb), base, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("post %d labels to %s: %s: %s", len(fb), base, resp.Status, bytes.TrimSpace(b))
	}
	return nil
}

// LiveAccuracy is the share of correct answers among rs that match keep
// (all when keep is nil), and how many matched.
func LiveAccuracy(rs []Response, keep func(Response) bool) (acc float64, n int) {
	right := 0
	for _, r := range rs {
		if keep != nil && !keep(r) {
			continue
		}
		n++
		if r.Correct {
			right++
		}
	}
	if n == 0 {
		return 0, 0
	}
	return float64(right) / float64(n), n
}
