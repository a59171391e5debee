package jobs

import (
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// Job states, as stored in jobs.state.
const (
	StateQueued    = "queued"
	StateRunning   = "running"
	StateSucceeded = "succeeded"
	StateFailed    = "failed"
	StateTimedOut  = "timed_out"
	// StateCancelled: an operator cancelled the job (POST
	// /v1/jobs/{id}/cancel); it runs again only if retried.
	StateCancelled = "cancelled"
)

// States lists every job state, in the order of a job's life.
var States = []string{StateQueued, StateRunning, StateSucceeded, StateFailed, StateTimedOut, StateCancelled}

// Terminal reports whether state is final: succeeded, failed, timed_out or
// cancelled. A final job runs again only when retried.
func Terminal(state string) bool {
	return state == StateSucceeded || state == StateFailed || state == StateTimedOut || state == StateCancelled
}

// Incident is a confirmed drift incident: the model version that drifted,
// when the incident started and why. It has the fields of drift.Incident, so
// a caller converts one with jobs.Incident(inc).
type Incident struct {
	Model   string
	Version string
	Start   time.Time
	Reasons []string
}

// JobID returns the id of the job for an incident: "job-" and the first 24
// hex digits of sha256("model\x00version\x00start"), start written in
// RFC 3339 with nanoseconds after being converted to UTC and truncated to
// milliseconds (the precision jobs.incident_start keeps). Every node computes
// the same id for the same incident, and the id recomputed from a stored row
// equals the original.
func JobID(model, version string, incidentStart time.Time) string {
	start := incidentStart.UTC().Truncate(time.Millisecond).Format(time.RFC3339Nano)
	sum := sha256.Sum256([]byte(model + "\x00" + version + "\x00" + start))
	return "job-" + hex.EncodeToString(sum[:12])
}

// Window is a half-open time range [Start, End).
type Window struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// Spec is what an executor receives, JSON-encoded: on the command's stdin,
// or as the webhook's request body. It is fixed when the job is scheduled;
// only Attempt (and CallbackURL) change from one attempt to the next.
type Spec struct {
	ID            string    `json:"id"`
	Model         string    `json:"model"`
	Version       string    `json:"version"`
	IncidentStart time.Time `json:"incident_start"`
	Reasons       []string  `json:"reasons"`
	// ModelStore is the root of the model store, where the job publishes
	// <root>/<model>/<version>/.
	ModelStore string `json:"model_store"`
	// ClickHouseDSN is where the job reads its training data (samples).
	ClickHouseDSN string `json:"clickhouse_dsn"`
	// DataWindow is the data the job should train on: the data_window
	// before the moment the job was scheduled.
	DataWindow Window `json:"data_window"`
	// Attempt is 1 for the first run, 2 for the first retry, and so on.
	Attempt int `json:"attempt"`
	// CallbackURL is where a webhook receiver reports the outcome; empty
	// for the command executor.
	CallbackURL string `json:"callback_url,omitempty"`
	// PublishURL is the admin API of the collector running the attempt:
	// the job publishes its result there through the registry
	// (docs/registry.md: PUT /v1/blobs/sha256/{digest} then POST
	// /v1/models/{model}/commit, or the one-request POST
	// /v1/models/{model}/versions), with lineage.job set to ID. Empty when
	// the collector was started without one.
	PublishURL string `json:"publish_url,omitempty"`
	// PublishToken is a bearer token with role publisher for Model's
	// publish routes only, valid until the attempt's timeout ends
	// (auth.IssueJobToken). Like CallbackURL it is set for each attempt
	// and never stored in ClickHouse.
	PublishToken string `json:"publish_token,omitempty"`
}
