package adminclient

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"
)

// OptimizeRequest is the body of POST /v1/models/{model}/optimize.
type OptimizeRequest struct {
	// Since is a Go duration: the manual incident starts that long ago.
	// Empty: the collector's default (24h).
	Since string `json:"since,omitempty"`
}

// OptimizeStarted is the 202 answer of POST /v1/models/{model}/optimize:
// the job of the manual incident.
type OptimizeStarted struct {
	ID            string    `json:"id"`
	Model         string    `json:"model"`
	Version       string    `json:"version"`
	IncidentStart time.Time `json:"incident_start"`
	Reasons       []string  `json:"reasons"`
	Created       bool      `json:"created"`
}

// Report is the built-in optimizer's report (collector/optimize.Report,
// whose JSON field names are a contract; docs/jobs.md). droverctl decodes
// it here, so that it needs none of the optimizer's packages.
type Report struct {
	Model         string             `json:"model"`
	Baseline      string             `json:"baseline"`
	Metric        string             `json:"metric"`
	LowerIsBetter bool               `json:"lower_is_better"`
	Family        string             `json:"family"`
	Params        map[string]float64 `json:"params"`
	Grid          []ReportGridPoint  `json:"grid"`
	Folds         int                `json:"folds"`
	CVMean        float64            `json:"cv_mean"`
	CVStd         float64            `json:"cv_std"`
	Holdout       struct {
		Old float64 `json:"old"`
		New float64 `json:"new"`
	} `json:"holdout"`
	Improved bool `json:"improved"`
	CI       struct {
		Low   float64 `json:"low"`
		High  float64 `json:"high"`
		Level float64 `json:"level"`
	} `json:"ci"`
	Traded      string  `json:"traded,omitempty"`
	Rows        int     `json:"rows"`
	HoldoutRows int     `json:"holdout_rows"`
	Seconds     float64 `json:"seconds"`
	Published   string  `json:"published,omitempty"`
	Reason      string  `json:"reason,omitempty"`
	DryRun      bool    `json:"dry_run,omitempty"`
}

// ReportGridPoint is one candidate of a Report's search.
type ReportGridPoint struct {
	Family        string             `json:"family"`
	Params        map[string]float64 `json:"params"`
	Mean          float64            `json:"mean"`
	Std           float64            `json:"std"`
	Error         string             `json:"error,omitempty"`
	ONNXBytes     int                `json:"onnx_bytes,omitempty"`
	LatencyMicros float64            `json:"latency_us,omitempty"`
}

// Optimize is POST /v1/models/{model}/optimize: a manual incident of model
// and its job (202).
func (c *Client) Optimize(ctx context.Context, model string, req OptimizeRequest) (*OptimizeStarted, *Meta, error) {
	var v OptimizeStarted
	m, err := c.do(ctx, http.MethodPost, "/v1/models/"+url.PathEscape(model)+"/optimize", nil, req, &v)
	return &v, m, err
}

// OptimizeCSVOptions are the query parameters of POST
// /v1/models/{model}/optimize/csv.
type OptimizeCSVOptions struct {
	// Label is the label column (required).
	Label string
	// Family limits the search to one family; "" searches the default ones.
	Family string
	// Folds is the number of cross-validation folds; 0 is the collector's
	// default.
	Folds int
	// DryRun publishes nothing.
	DryRun bool
}

func (o OptimizeCSVOptions) query() url.Values {
	q := url.Values{"label": {o.Label}}
	if o.Family != "" {
		q.Set("family", o.Family)
	}
	if o.Folds != 0 {
		q.Set("folds", strconv.Itoa(o.Folds))
	}
	if o.DryRun {
		q.Set("dry_run", "true")
	}
	return q
}

// OptimizeCSV is POST /v1/models/{model}/optimize/csv: it streams the CSV
// file at path (header row; the label column and the model's inputs) as
// the body, and returns the report (200) once the search is over. The file
// is sent with its length and never read whole; it is opened again for
// the next collector only when a connection could not be made.
func (c *Client) OptimizeCSV(ctx context.Context, model, path string, opts OptimizeCSVOptions) (*Report, *Meta, error) {
	target := "/v1/models/" + url.PathEscape(model) + "/optimize/csv?" + opts.query().Encode()
	fail := func(err error) (*Report, *Meta, error) {
		return nil, nil, fmt.Errorf("POST %s: %w", target, err)
	}
	if c.err != nil {
		return fail(c.err)
	}
	var attempts []Attempt
	for _, base := range c.urls {
		f, err := os.Open(path)
		if err != nil {
			return fail(err)
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return fail(err)
		}
		if !st.Mode().IsRegular() {
			f.Close()
			return fail(fmt.Errorf("%s: not a regular file", path))
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+target, io.NopCloser(f))
		if err != nil {
			f.Close()
			return fail(err)
		}
		req.ContentLength = st.Size()
		if st.Size() == 0 {
			req.Body = http.NoBody
		}
		req.Header.Set("Content-Type", "text/csv")
		req.Header.Set("Accept", "application/json")
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		resp, err := c.stream.Do(req)
		f.Close()
		if err != nil {
			if ctx.Err() != nil {
				return fail(ctx.Err())
			}
			attempts = append(attempts, Attempt{URL: base, Err: unwrapURLError(err)})
			if !failoverSafe(http.MethodPost, err) {
				return nil, nil, &UnreachableError{Method: http.MethodPost, Path: target, Attempts: attempts, Stopped: true}
			}
			continue
		}
		raw, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
		resp.Body.Close()
		if err != nil {
			return fail(fmt.Errorf("read answer from %s: %w", base, err))
		}
		meta := &Meta{URL: base, Status: resp.StatusCode, Raw: raw}
		if resp.StatusCode >= 300 {
			return nil, meta, newAPIError(http.MethodPost, base+target, resp, raw)
		}
		var r Report
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil, meta, fmt.Errorf("POST %s%s: decode answer: %w", base, target, err)
		}
		return &r, meta, nil
	}
	return nil, nil, &UnreachableError{Method: http.MethodPost, Path: target, Attempts: attempts}
}
