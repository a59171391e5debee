package views

import (
	"encoding/json"
	"time"
)

// The JSON objects of docs/admin-api.md. No field has omitempty: a field
// without data is null, never absent; lists are never null.

// Model is an element of GET /v1/models.
type Model struct {
	Name              string   `json:"name"`
	Owner             *string  `json:"owner"`
	VersionsServing   []uint64 `json:"versions_serving"`
	Hosts             int      `json:"hosts"`
	RequestsPerSecond *float64 `json:"requests_per_second"`
	ErrorRate         *float64 `json:"error_rate"`
	LatestVersion     *uint64  `json:"latest_version"`
}

// Version is an element of GET /v1/models/{model}/versions.
type Version struct {
	Version   uint64         `json:"version"`
	ContentID *string        `json:"content_id"`
	Created   *time.Time     `json:"created"`
	Author    *string        `json:"author"`
	Message   *string        `json:"message"`
	Parents   []uint64       `json:"parents"`
	Source    *string        `json:"source"`
	State     *string        `json:"state"`
	Metrics   VersionMetrics `json:"metrics"`
}

// VersionMetrics are a version's metrics over the window.
type VersionMetrics struct {
	Requests     *uint64  `json:"requests"`
	ErrorRate    *float64 `json:"error_rate"`
	LatencyP50Ms *float64 `json:"latency_p50_ms"`
	LatencyP99Ms *float64 `json:"latency_p99_ms"`
	Accuracy     *float64 `json:"accuracy"`
	F1           *float64 `json:"f1"`
	MSE          *float64 `json:"mse"`
	GoldenScore  *float64 `json:"golden_score"`
	DriftScore   *float64 `json:"drift_score"`
	Hosts        *int     `json:"hosts"`
}

// VersionDiff is GET /v1/models/{model}/diff.
type VersionDiff struct {
	Model     string        `json:"model"`
	From      Version       `json:"from"`
	To        Version       `json:"to"`
	Records   []FieldChange `json:"records"`
	Signature []FieldChange `json:"signature"`
	Metrics   []MetricDelta `json:"metrics"`
}

// FieldChange is a field that differs between two versions.
type FieldChange struct {
	Field string          `json:"field"`
	From  json.RawMessage `json:"from"`
	To    json.RawMessage `json:"to"`
}

// MetricDelta is a metric of two versions and To − From.
type MetricDelta struct {
	Name  string   `json:"name"`
	From  *float64 `json:"from"`
	To    *float64 `json:"to"`
	Delta *float64 `json:"delta"`
}

// Drift is GET /v1/models/{model}/drift.
type Drift struct {
	Model     string       `json:"model"`
	Checks    []DriftCheck `json:"checks"`
	Incidents []Incident   `json:"incidents"`
}

// DriftCheck is the latest result of one test of one feature.
type DriftCheck struct {
	Time         time.Time `json:"time"`
	ModelVersion uint64    `json:"model_version"`
	Feature      string    `json:"feature"`
	Test         string    `json:"test"`
	Value        float64   `json:"value"`
	Threshold    float64   `json:"threshold"`
	Drifted      bool      `json:"drifted"`
	WindowStart  time.Time `json:"window_start"`
	WindowEnd    time.Time `json:"window_end"`
	Reference    string    `json:"reference"`
	Node         string    `json:"node"`
}

// Incident is an element of GET /v1/incidents.
type Incident struct {
	Model        string     `json:"model"`
	ModelVersion uint64     `json:"model_version"`
	Start        time.Time  `json:"start"`
	End          *time.Time `json:"end"`
	State        string     `json:"state"`
	Reasons      []string   `json:"reasons"`
	JobID        *string    `json:"job_id"`
}

// HistoryEvent is an element of GET /v1/models/{model}/history.
type HistoryEvent struct {
	Time    time.Time `json:"time"`
	Kind    string    `json:"kind"`
	Version *uint64   `json:"version"`
	Host    *string   `json:"host"`
	Actor   *string   `json:"actor"`
	JobID   *string   `json:"job_id"`
	Detail  string    `json:"detail"`
}

// Version sources and states beyond the registry's (registry.Source,
// registry.StateDeleted), incident states and history kinds.
const (
	// SourceAgent is the source of a version the fleet reports that has no
	// registry record (found in a model directory without the registry).
	SourceAgent = "agent"

	StateServing   = "serving"
	StateRejected  = "rejected"
	StateRetired   = "retired"
	StatePublished = "published"
	StateDeleted   = "deleted"

	StateOpen     = "open"
	StateResolved = "resolved"

	KindPublished        = "published"
	KindLoaded           = "loaded"
	KindRejected         = "rejected"
	KindSwapped          = "swapped"
	KindPinned           = "pinned"
	KindRolledBack       = "rolled_back"
	KindIncidentOpened   = "incident_opened"
	KindIncidentResolved = "incident_resolved"
	KindJobScheduled     = "job_scheduled"
	KindJobFinished      = "job_finished"
)
