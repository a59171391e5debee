package labels

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/drover-ml/drover/collector/auth"
	"github.com/drover-ml/drover/shared/feedback"
	"github.com/drover-ml/drover/shared/manifest"
)

// Pattern is the feedback route on the admin API (role client; agents
// forward with their own token, role agent).
const Pattern = "POST /v2/models/{model}/feedback"

// MaxBodyBytes bounds a feedback body, as on the agent.
const MaxBodyBytes = 8 << 20

// DefaultLookback is how far back Handler looks for the sampled request of
// a label when it answers (HandlerOptions.Lookback).
const DefaultLookback = 24 * time.Hour

// Result is the answer to a feedback call: what happened to its labels.
// Every label of a call that answers 200 is stored; Joined counts those
// whose request id names a sampled request stored now, Unsampled the
// others (a request that was not sampled, or whose sample has not reached
// ClickHouse yet: such a label still joins when its sample arrives, since
// the join is made at read time).
type Result struct {
	Stored    int `json:"stored"`
	Joined    int `json:"joined"`
	Unsampled int `json:"unsampled"`
}

// HandlerOptions configure Handler.
type HandlerOptions struct {
	// Registerer receives drover_collector_labels_total{source,status}
	// (status joined or unsampled, as in Result); nil: not registered.
	Registerer prometheus.Registerer
	// Lookback bounds the look-up of samples for Result (default
	// DefaultLookback).
	Lookback time.Duration
	// Now is the clock (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
}

// Handler serves Pattern: it decodes the body with feedback.Parse (the
// agent's format: one {"id", "label"} or an array of at most
// feedback.MaxFeedback), checks the model name, stores every label and
// answers 200 with a Result. Bad input (a bad model name, a body over
// MaxBodyBytes, any bad element) is 400 (413 for the size) and stores
// nothing; ClickHouse down is 503. The caller's role decides the source
// column: a token of role agent is a forwarding agent (SourceAgent), any
// other a client (SourceCollector).
func (s *Store) Handler(opts HandlerOptions) http.Handler {
	if opts.Lookback <= 0 {
		opts.Lookback = DefaultLookback
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	counter := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "drover_collector_labels_total",
		Help: "Labels received on the collector's feedback endpoint, by source (collector, agent) and status (joined: its sampled request was stored when it arrived; unsampled: not).",
	}, []string{"source", "status"})
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(counter)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		model := r.PathValue("model")
		if !manifest.ValidName(model) {
			auth.WriteError(w, http.StatusBadRequest, fmt.Sprintf("model name %q is not valid", model))
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				auth.WriteError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("feedback body over %d bytes", MaxBodyBytes))
				return
			}
			auth.WriteError(w, http.StatusBadRequest, "read feedback body: "+err.Error())
			return
		}
		fbs, err := feedback.Parse(body)
		if err != nil {
			auth.WriteError(w, http.StatusBadRequest, err.Error())
			return
		}
		source, sender := SourceCollector, ""
		if p, ok := auth.FromContext(r.Context()); ok {
			sender = p.Name
			if p.Role == auth.Agent {
				source = SourceAgent
			}
		}
		now := opts.Now()
		ls := make([]Label, len(fbs))
		ids := make([]string, len(fbs))
		for i, f := range fbs {
			text, err := labelJSON(f.Label)
			if err != nil {
				auth.WriteError(w, http.StatusBadRequest, fmt.Sprintf("feedback[%d].label: %v", i, err))
				return
			}
			ls[i] = Label{Time: now, Model: model, RequestID: f.ID, Label: text, Source: source, Sender: sender}
			ids[i] = f.ID
		}
		if err := s.Insert(r.Context(), ls); err != nil {
			opts.Logger.Warn("feedback not stored", "model", model, "labels", len(ls), "err", err)
			auth.WriteError(w, http.StatusServiceUnavailable, "labels not stored (ClickHouse unavailable); retry")
			return
		}
		res := Result{Stored: len(ls)}
		sampled, err := s.Sampled(r.Context(), model, ids, now.Add(-opts.Lookback))
		if err != nil {
			// Stored; only the answer's split is unknown: count them
			// unsampled rather than fail a call whose labels are kept.
			opts.Logger.Warn("feedback stored, sample look-up failed", "model", model, "err", err)
			sampled = map[string]bool{}
		}
		for _, id := range ids {
			if sampled[id] {
				res.Joined++
			} else {
				res.Unsampled++
			}
		}
		counter.WithLabelValues(source, "joined").Add(float64(res.Joined))
		counter.WithLabelValues(source, "unsampled").Add(float64(res.Unsampled))
		auth.Note(r.Context(), model, fmt.Sprintf("%d labels", len(ls)))
		b, _ := json.Marshal(res) // cannot fail
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	})
}
