package optimize

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"slices"
	"strconv"

	"github.com/drover-ml/drover/collector/forward"
	"github.com/drover-ml/drover/collector/jobs"
	"github.com/drover-ml/drover/collector/optimize/learn"
	"github.com/drover-ml/drover/collector/registry"
	"github.com/drover-ml/drover/shared/manifest"
)

// PatternCSV is the route of the CSV search (role publisher,
// docs/optimize.md): the body is a CSV, the answer the Report.
const PatternCSV = "POST /v1/models/{model}/optimize/csv"

// CSVRequest is a search on an uploaded CSV.
type CSVRequest struct {
	// Body is the CSV: a header row, the Label column and the model
	// input's features in its order; at most MaxCSVBytes.
	Body  io.Reader
	Label string
	// Family, when set, searches only that family (with the manifest's
	// grid for it, else its default grid); Folds, when > 0, overrides the
	// manifest's.
	Family string
	Folds  int
	// DryRun publishes nothing whatever the outcome.
	DryRun bool
}

// CSV runs the search of a job on an uploaded CSV against model's serving
// version (else its latest), holding out the last rows of the file as a
// job holds out the most recent samples, and returns the report. Unless
// DryRun, a candidate better by the margin is published (source
// optimize, parent the baseline); it is not rolled out (a publisher may
// not change the fleet). It blocks until the search ends or ctx is done.
func (o *Optimizer) CSV(ctx context.Context, model string, req CSVRequest) (Report, error) {
	if req.Family != "" && !slices.Contains(manifest.OptimizeFamilies, req.Family) {
		return Report{}, fmt.Errorf("%w: family %q: want one of %v", errCSV, req.Family, manifest.OptimizeFamilies)
	}
	if req.Folds != 0 && (req.Folds < 2 || req.Folds > 20) {
		return Report{}, fmt.Errorf("%w: folds %d: want 2 to 20", errCSV, req.Folds)
	}
	rep, _, err := o.run(ctx, request{model: model, csv: req.Body, label: req.Label, family: req.Family, folds: req.Folds, dryRun: req.DryRun})
	return rep, err
}

// Handler serves PatternCSV: POST /v1/models/{model}/optimize/csv
// ?label=COLUMN[&family=F][&folds=K][&dry_run=true] with a text/csv body
// of at most Options.MaxCSVBytes (413 beyond). 200 with the Report; 400 for a bad
// request, CSV or data (the report's reason, or {"error"}), 404 for an
// unknown model, 503 when a dependency fails.
func (o *Optimizer) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		model := r.PathValue("model")
		if !manifest.ValidName(model) {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("bad model name %q", model)})
			return
		}
		if ct := r.Header.Get("Content-Type"); ct != "" {
			if mt, _, err := mime.ParseMediaType(ct); err != nil || (mt != "text/csv" && mt != "text/plain" && mt != "application/octet-stream") {
				writeJSON(w, http.StatusUnsupportedMediaType, map[string]string{"error": fmt.Sprintf("content type %q: want text/csv", ct)})
				return
			}
		}
		q := r.URL.Query()
		req := CSVRequest{Label: q.Get("label"), Family: q.Get("family"), Body: http.MaxBytesReader(w, r.Body, o.o.MaxCSVBytes)}
		if req.Label == "" {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "the label query parameter is required: the CSV's label column"})
			return
		}
		if f := q.Get("folds"); f != "" {
			n, err := strconv.Atoi(f)
			if err != nil {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("folds %q: want an integer", f)})
				return
			}
			req.Folds = n
		}
		if d := q.Get("dry_run"); d != "" {
			b, err := strconv.ParseBool(d)
			if err != nil {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("dry_run %q: want true or false", d)})
				return
			}
			req.DryRun = b
		}
		// A commit forwarded to the model's owner carries the caller's
		// token.
		ctx := forward.WithCaller(r.Context(), r.Header.Get("Authorization"), "")
		rep, err := o.CSV(ctx, model, req)
		if err != nil {
			code := status(err)
			if code >= 500 {
				o.o.Logger.Warn("optimize: CSV search failed", "model", model, "err", err)
			}
			if rep.Model == "" {
				writeJSON(w, code, map[string]string{"error": err.Error()})
				return
			}
			writeJSON(w, code, struct {
				Error string `json:"error"`
				Report
			}{err.Error(), rep})
			return
		}
		writeJSON(w, http.StatusOK, rep)
	})
}

func status(err error) int {
	var mbe *http.MaxBytesError
	var remote *forward.Error
	switch {
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge
	case errors.As(err, &remote):
		return remote.Code
	case errors.Is(err, registry.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, errCSV), errors.Is(err, jobs.ErrPermanent), errors.Is(err, learn.ErrTimeBudget), errors.Is(err, registry.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	}
	return http.StatusServiceUnavailable
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error":"encode answer"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

// finite replaces the non-finite numbers of the report (a metric
// undefined on the rows) with 0, so that it encodes as JSON.
func (r *Report) finite() {
	fix := func(p *float64) {
		if math.IsNaN(*p) || math.IsInf(*p, 0) {
			*p = 0
		}
	}
	for _, p := range []*float64{&r.CVMean, &r.CVStd, &r.Holdout.Old, &r.Holdout.New, &r.CI.Low, &r.CI.High, &r.CI.Level, &r.Seconds} {
		fix(p)
	}
	for i := range r.Grid {
		fix(&r.Grid[i].Mean)
		fix(&r.Grid[i].Std)
		fix(&r.Grid[i].LatencyMicros)
	}
}
