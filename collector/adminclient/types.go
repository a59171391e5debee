package adminclient

import (
	"encoding/json"
	"time"
)

// The structs below are the admin API's objects as docs/admin-api.md fixes
// them. A pointer field is one the API sends as null while it has no data
// (a version nobody has served has no latency); lists are never null in a
// well-formed answer but decode from null to nil.

// Cluster is GET /v1/cluster: the cluster as the answering collector sees it.
type Cluster struct {
	// Node is the answering collector's name.
	Node string `json:"node"`
	// Members are sorted by name.
	Members []Member `json:"members"`
}

// Member is a collector of the cluster.
type Member struct {
	Name string `json:"name"`
	// Addr is the member's gossip address, ip:port.
	Addr string `json:"addr"`
	// State is alive, suspect, dead or left.
	State string `json:"state"`
	// Admin is the member's admin API address (host:port); "" when it
	// advertises none.
	Admin string `json:"admin,omitempty"`
	// Models are the models this member owns.
	Models []string `json:"models"`
}

// Model is one element of GET /v1/models: a model the fleet reports.
type Model struct {
	Name string `json:"name"`
	// Owner is the collector that owns the model (drift checks, jobs);
	// null without a cluster.
	Owner *string `json:"owner"`
	// VersionsServing are the versions hosts serve now, ascending.
	VersionsServing []uint64 `json:"versions_serving"`
	// Hosts is the number of hosts reporting the model now.
	Hosts int `json:"hosts"`
	// RequestsPerSecond and ErrorRate are over the last 5 minutes; null
	// without traffic.
	RequestsPerSecond *float64 `json:"requests_per_second"`
	ErrorRate         *float64 `json:"error_rate"`
	// LatestVersion is the highest version published; null when none is.
	LatestVersion *uint64 `json:"latest_version"`
}

// Version is one element of GET /v1/models/{model}/versions: a version's
// record and its metrics over the requested window.
type Version struct {
	Version uint64 `json:"version"`
	// ContentID is the sha256 of the version's manifest.
	ContentID *string    `json:"content_id"`
	Created   *time.Time `json:"created"`
	Author    *string    `json:"author"`
	Message   *string    `json:"message"`
	// Parents are the versions this one derives from ([] for none).
	Parents []uint64 `json:"parents"`
	// Source is who made it: publish, optimize, merge, agent (found in a
	// model directory without the registry).
	Source *string `json:"source"`
	// State is serving, canary, published, rejected or retired.
	State   *string        `json:"state"`
	Metrics VersionMetrics `json:"metrics"`
}

// VersionMetrics are a version's metrics over a window; each is null when
// there is no data for it.
type VersionMetrics struct {
	Requests     *uint64  `json:"requests"`
	ErrorRate    *float64 `json:"error_rate"`
	LatencyP50Ms *float64 `json:"latency_p50_ms"`
	LatencyP99Ms *float64 `json:"latency_p99_ms"`
	// Accuracy and F1 are live, from labels, for classifiers; MSE for
	// regressors.
	Accuracy *float64 `json:"accuracy"`
	F1       *float64 `json:"f1"`
	MSE      *float64 `json:"mse"`
	// GoldenScore is the golden-set score of the last evaluation.
	GoldenScore *float64 `json:"golden_score"`
	// DriftScore is the highest drift statistic of the window, relative to
	// its threshold (1 = at the threshold).
	DriftScore *float64 `json:"drift_score"`
	// Hosts is the number of hosts that served the version in the window.
	Hosts *int `json:"hosts"`
}

// VersionDiff is GET /v1/models/{model}/diff?from=N1&to=N2.
type VersionDiff struct {
	Model string  `json:"model"`
	From  Version `json:"from"`
	To    Version `json:"to"`
	// Records are the record fields that differ (author, message, ...).
	Records []FieldChange `json:"records"`
	// Signature are the inputs and outputs that differ, one per changed
	// property, like "inputs.x.shape".
	Signature []FieldChange `json:"signature"`
	// Metrics are every metric of VersionMetrics, with its delta.
	Metrics []MetricDelta `json:"metrics"`
}

// FieldChange is a field whose value differs between two versions; From
// and To are JSON values (null where the field is absent).
type FieldChange struct {
	Field string          `json:"field"`
	From  json.RawMessage `json:"from"`
	To    json.RawMessage `json:"to"`
}

// MetricDelta is a metric of two versions and To - From (null when either
// is null).
type MetricDelta struct {
	Name  string   `json:"name"`
	From  *float64 `json:"from"`
	To    *float64 `json:"to"`
	Delta *float64 `json:"delta"`
}

// Drift is GET /v1/models/{model}/drift.
type Drift struct {
	Model string `json:"model"`
	// Checks are the latest check per feature and test.
	Checks []DriftCheck `json:"checks"`
	// Incidents are the model's open incidents.
	Incidents []Incident `json:"incidents"`
}

// DriftCheck is one drift statistic of one feature (or "" for the model's
// own metrics) at one time.
type DriftCheck struct {
	Time         time.Time `json:"time"`
	ModelVersion uint64    `json:"model_version"`
	Feature      string    `json:"feature"`
	// Test is psi, js, ks, wasserstein, chi2, metric, error_rate or p99.
	Test        string    `json:"test"`
	Value       float64   `json:"value"`
	Threshold   float64   `json:"threshold"`
	Drifted     bool      `json:"drifted"`
	WindowStart time.Time `json:"window_start"`
	WindowEnd   time.Time `json:"window_end"`
	// Reference is what the window was compared with.
	Reference string `json:"reference"`
	// Node is the collector that ran the check.
	Node string `json:"node"`
}

// Incident is one element of GET /v1/incidents: a confirmed drift.
type Incident struct {
	Model        string    `json:"model"`
	ModelVersion uint64    `json:"model_version"`
	Start        time.Time `json:"start"`
	// End is null while the incident is open.
	End *time.Time `json:"end"`
	// State is open or resolved.
	State   string   `json:"state"`
	Reasons []string `json:"reasons"`
	// JobID is the re-optimization job of the incident; null when none
	// was scheduled.
	JobID *string `json:"job_id"`
}

// Job is a re-optimization job: one element of GET /v1/jobs, or
// GET /v1/jobs/{id} with Spec, Attempts, OutputTail and Report filled in.
type Job struct {
	ID            string    `json:"id"`
	Model         string    `json:"model"`
	ModelVersion  uint64    `json:"model_version"`
	IncidentStart time.Time `json:"incident_start"`
	// State is queued, running, succeeded, failed, timed_out or cancelled.
	State      string     `json:"state"`
	Attempt    uint32     `json:"attempt"`
	LeaseOwner *string    `json:"lease_owner"`
	LeaseUntil *time.Time `json:"lease_until"`
	Created    time.Time  `json:"created"`
	Updated    time.Time  `json:"updated"`
	Started    *time.Time `json:"started"`
	Finished   *time.Time `json:"finished"`
	ExitCode   *int32     `json:"exit_code"`
	// ResultVersion is the version the job published; null until then.
	ResultVersion *uint64 `json:"result_version"`
	Error         *string `json:"error"`
	// Spec is what the executor receives, without credentials; null in
	// lists.
	Spec json.RawMessage `json:"spec"`
	// Attempts are the job's attempts, oldest first; null in lists.
	Attempts []JobAttempt `json:"attempts"`
	// OutputTail is the end of the last attempt's output; null in lists
	// and until there is output.
	OutputTail *string `json:"output_tail"`
	// Report is the optimization report once it exists; null before and
	// in lists.
	Report json.RawMessage `json:"report"`
}

// JobAttempt is one run of a job.
type JobAttempt struct {
	Attempt  uint32     `json:"attempt"`
	Node     string     `json:"node"`
	Started  time.Time  `json:"started"`
	Finished *time.Time `json:"finished"`
	ExitCode *int32     `json:"exit_code"`
	Error    *string    `json:"error"`
}

// HistoryEvent is one element of GET /v1/models/{model}/history, oldest
// first.
type HistoryEvent struct {
	Time time.Time `json:"time"`
	// Kind is published, loaded, rejected, swapped, pinned, rolled_back,
	// incident_opened, incident_resolved, job_scheduled or job_finished.
	Kind    string  `json:"kind"`
	Version *uint64 `json:"version"`
	// Host is the agent's host for loaded, rejected, swapped and pinned.
	Host *string `json:"host"`
	// Actor is the token name or component that caused the event.
	Actor *string `json:"actor"`
	// JobID links job events and incidents to their job.
	JobID  *string `json:"job_id"`
	Detail string  `json:"detail"`
}

// Token roles.
const (
	RoleAdmin     = "admin"
	RoleReader    = "reader"
	RolePublisher = "publisher"
	RoleAgent     = "agent"
	RoleClient    = "client"
)

// Roles lists the token roles, most powerful first.
var Roles = []string{RoleAdmin, RoleReader, RolePublisher, RoleAgent, RoleClient}

// TokenRequest is the body of POST /v1/tokens.
type TokenRequest struct {
	Name string `json:"name"`
	Role string `json:"role"`
}

// Token is a token as GET /v1/tokens and DELETE /v1/tokens/{name} return
// it: never its secret.
type Token struct {
	Name      string     `json:"name"`
	Role      string     `json:"role"`
	Created   time.Time  `json:"created"`
	CreatedBy *string    `json:"created_by"`
	LastUsed  *time.Time `json:"last_used"`
	// Revoked is null while the token is valid.
	Revoked *time.Time `json:"revoked"`
}

// NewToken is the answer to POST /v1/tokens: the only time the secret is
// shown.
type NewToken struct {
	Name    string    `json:"name"`
	Role    string    `json:"role"`
	Token   string    `json:"token"`
	Created time.Time `json:"created"`
}
