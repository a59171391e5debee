package optimize

// Report is the outcome of one optimization: what was searched, what won,
// and the effect judged on held-out rows against the serving version. It is
// stored with the job (jobs.result), shown by `droverctl jobs show ID` and
// `droverctl optimize`, and read by the dashboards; its JSON field names
// are a contract (docs/optimize.md).
type Report struct {
	Model string `json:"model"`
	// Baseline is the version the candidates were judged against (the
	// serving version, or the latest one).
	Baseline string `json:"baseline"`
	// Metric is the score every number below is in; LowerIsBetter is true
	// for losses (log_loss, mse, mae).
	Metric        string `json:"metric"`
	LowerIsBetter bool   `json:"lower_is_better"`
	// Family and Params are the chosen candidate's.
	Family string             `json:"family"`
	Params map[string]float64 `json:"params"`
	// Grid is every point searched, with its cross-validated score and
	// cost.
	Grid   []GridPoint `json:"grid"`
	Folds  int         `json:"folds"`
	CVMean float64     `json:"cv_mean"`
	CVStd  float64     `json:"cv_std"`
	// Holdout scores the serving version (Old) and the chosen candidate
	// (New) on the same held-out rows, never used in the search.
	Holdout Holdout `json:"holdout"`
	// Improved: New beats Old by at least the configured margin, in the
	// metric's better direction.
	Improved bool `json:"improved"`
	// CI is a bootstrap confidence interval of New − Old on the held-out
	// rows.
	CI Interval `json:"ci"`
	// Traded says what the cost objective traded: empty when the best
	// scoring candidate was also the cheapest within cost_tolerance.
	Traded string `json:"traded,omitempty"`
	// Rows is the number of labelled rows used (search + holdout);
	// HoldoutRows of them were held out.
	Rows        int     `json:"rows"`
	HoldoutRows int     `json:"holdout_rows"`
	Seconds     float64 `json:"seconds"`
	// Published is the version the job published ("" when none), Reason
	// says why nothing was published.
	Published string `json:"published,omitempty"`
	Reason    string `json:"reason,omitempty"`
	DryRun    bool   `json:"dry_run,omitempty"`
}

// GridPoint is one candidate of the search.
type GridPoint struct {
	Family string             `json:"family"`
	Params map[string]float64 `json:"params"`
	Mean   float64            `json:"mean"`
	Std    float64            `json:"std"`
	// Error is why the point could not be scored ("" when it was).
	Error string `json:"error,omitempty"`
	// ONNXBytes and LatencyMicros are the candidate's cost: the size of
	// its exported graph and its measured inference latency per row
	// through ONNX Runtime. Zero when not measured (points outside the
	// cost tolerance are not exported).
	ONNXBytes     int     `json:"onnx_bytes,omitempty"`
	LatencyMicros float64 `json:"latency_us,omitempty"`
}

// Holdout is the held-out score of the serving version and the candidate.
type Holdout struct {
	Old float64 `json:"old"`
	New float64 `json:"new"`
}

// Interval is a confidence interval at Level (0.95).
type Interval struct {
	Low   float64 `json:"low"`
	High  float64 `json:"high"`
	Level float64 `json:"level"`
}
