package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/drover-ml/drover/collector/auth"
	"github.com/drover-ml/drover/collector/store"
)

// JobJSON is a job as the admin API answers it (docs/admin-api.md, GET
// /v1/jobs): the job's current row in snake_case. Every field is present;
// one without data is null. Spec, Attempts and OutputTail are null in
// lists and filled in by GET /v1/jobs/{id} where they exist; Report is
// filled wherever the job has one.
type JobJSON struct {
	ID            string    `json:"id"`
	Model         string    `json:"model"`
	ModelVersion  uint64    `json:"model_version"`
	IncidentStart time.Time `json:"incident_start"`
	State         string    `json:"state"`
	Attempt       uint32    `json:"attempt"`
	// LeaseOwner and LeaseUntil: the collector that runs (or will retry)
	// the job and until when; null once the job is final.
	LeaseOwner    *string    `json:"lease_owner"`
	LeaseUntil    *time.Time `json:"lease_until"`
	Created       time.Time  `json:"created"`
	Updated       time.Time  `json:"updated"`
	Started       *time.Time `json:"started"`
	Finished      *time.Time `json:"finished"`
	ExitCode      *int32     `json:"exit_code"`
	ResultVersion *uint64    `json:"result_version"`
	Error         *string    `json:"error"`
	// Spec is what the executor receives, with the password of
	// clickhouse_dsn replaced by REDACTED.
	Spec       json.RawMessage `json:"spec"`
	Attempts   []AttemptJSON   `json:"attempts"`
	OutputTail *string         `json:"output_tail"`
	// Report is the built-in optimizer's report (jobs.report); null for
	// other executors and unfinished jobs.
	Report json.RawMessage `json:"report"`
}

// AttemptJSON is one attempt of a job, reconstructed from the job's rows.
type AttemptJSON struct {
	Attempt  uint32     `json:"attempt"`
	Node     string     `json:"node"`
	Started  time.Time  `json:"started"`
	Finished *time.Time `json:"finished"`
	ExitCode *int32     `json:"exit_code"`
	Error    *string    `json:"error"`
}

// outputTailMax bounds output_tail (bytes, cut at a line start).
const outputTailMax = 8 << 10

// APIOptions are the dependencies of an API.
type APIOptions struct {
	// Conn reaches ClickHouse (migrated); Database holds the jobs table
	// (default "drover").
	Conn     driver.Conn
	Database string
	// Node is this collector's name, written as the lease owner of the
	// rows that retry and cancel insert. Required.
	Node string
	// Manager, when this collector runs jobs, starts a retried job of a
	// model it owns at once and kills a cancelled attempt running here at
	// once (other collectors notice within their resume interval and
	// lease renewal), and serves the webhook callback. Nil: the collector
	// runs no jobs; the reads, retry and cancel still work on the table.
	Manager *Manager
	// Now is the clock of the rows written; default time.Now.
	Now func() time.Time
	// Logger; default slog.Default().
	Logger *slog.Logger
	// RecordIncident, if set, records a manual incident (POST
	// /v1/models/{model}/optimize) where drift incidents are kept, opened
	// at the given time; a failure is logged.
	RecordIncident func(ctx context.Context, inc Incident, opened time.Time) error
}

// API serves the jobs endpoints of the admin API. Safe for concurrent use.
type API struct {
	tbl  *table
	node string
	m    *Manager
	now  func() time.Time
	log  *slog.Logger

	record func(ctx context.Context, inc Incident, opened time.Time) error
}

// NewAPI returns the jobs API.
func NewAPI(opts APIOptions) (*API, error) {
	if opts.Conn == nil {
		return nil, errors.New("jobs api: no ClickHouse connection")
	}
	if opts.Node == "" {
		return nil, errors.New("jobs api: no node name")
	}
	if opts.Database == "" {
		opts.Database = "drover"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &API{tbl: newTable(opts.Conn, opts.Database), node: opts.Node, m: opts.Manager, now: opts.Now, log: opts.Logger,
		record: opts.RecordIncident}, nil
}

// Errors of Retry and Cancel.
var (
	// ErrRefused: the job's state does not allow the change (409).
	ErrRefused = errors.New("refused in the job's current state")
)

// Handlers returns the jobs endpoints by ServeMux pattern, for the admin
// server to register behind its route table:
//
//	GET  /v1/jobs?model=&state=   the jobs, newest first (array of JobJSON)
//	GET  /v1/jobs/{id}            one job with spec, attempts, output tail
//	POST /v1/jobs/{id}/retry      queue a final job again (409 otherwise)
//	POST /v1/jobs/{id}/cancel     cancel a queued or running job (409 otherwise)
//	POST /v1/jobs/{id}/status     the webhook callback (only with a Manager)
//	POST /v1/models/{model}/optimize  a manual incident and its job (202; 409 without a Manager)
//
// Errors are JSON {"error": "..."}: 400 bad filter, 404 unknown job, 409
// refused, 503 ClickHouse cannot be read.
func (a *API) Handlers() map[string]http.Handler {
	hs := map[string]http.Handler{
		"GET /v1/jobs":              http.HandlerFunc(a.list),
		"GET /v1/jobs/{id}":         http.HandlerFunc(a.show),
		"POST /v1/jobs/{id}/retry":  http.HandlerFunc(a.retry),
		"POST /v1/jobs/{id}/cancel": http.HandlerFunc(a.cancel),
		PatternOptimize:             http.HandlerFunc(a.optimize),
	}
	if a.m != nil {
		hs["POST /v1/jobs/{id}/status"] = http.HandlerFunc(a.m.callback)
	}
	return hs
}

func (a *API) list(w http.ResponseWriter, r *http.Request) {
	model, state := r.URL.Query().Get("model"), r.URL.Query().Get("state")
	if state != "" && !slices.Contains(States, state) {
		auth.WriteError(w, http.StatusBadRequest, fmt.Sprintf("state %q: want one of %s", state, strings.Join(States, ", ")))
		return
	}
	rows, err := a.tbl.list(r.Context(), model, state)
	if err != nil {
		auth.WriteError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	out := make([]JobJSON, 0, len(rows))
	for _, row := range rows {
		out = append(out, jobJSON(row))
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) show(w http.ResponseWriter, r *http.Request) {
	j, err := a.Job(r.Context(), r.PathValue("id"))
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, j)
}

// Job returns the job with its spec (credentials redacted), attempts (the
// finished ones of job_attempts, and the running one) and the output tail
// of the last attempt that left output; an unknown job is an error wrapping
// ErrUnknownJob.
func (a *API) Job(ctx context.Context, id string) (JobJSON, error) {
	cur, ok, err := a.tbl.latest(ctx, id)
	if err != nil {
		return JobJSON{}, err
	}
	if !ok {
		return JobJSON{}, fmt.Errorf("job %s: %w", id, ErrUnknownJob)
	}
	done, err := a.tbl.attempts(ctx, id)
	if err != nil {
		return JobJSON{}, err
	}
	j := jobJSON(cur)
	j.Spec = redactSpec(cur.Spec)
	j.Attempts = []AttemptJSON{}
	var tail string
	for _, at := range done {
		finished, code := at.Finished.UTC(), at.ExitCode
		aj := AttemptJSON{Attempt: at.Attempt, Node: at.Node, Started: at.Started.UTC(), Finished: &finished, ExitCode: &code}
		if at.Error != "" {
			e := at.Error
			aj.Error = &e
		}
		j.Attempts = append(j.Attempts, aj)
		if at.Output != "" {
			tail = at.Output
		}
	}
	if cur.State == StateRunning && cur.Started != nil {
		j.Attempts = append(j.Attempts, AttemptJSON{Attempt: cur.Attempt, Node: cur.LeaseOwner, Started: cur.Started.UTC()})
	}
	if tail != "" {
		tail = tailOf(tail, outputTailMax)
		j.OutputTail = &tail
	}
	return j, nil
}

// tailOf returns the end of s, at most max bytes, from a line start.
func tailOf(s string, max int) string {
	if len(s) <= max {
		return s
	}
	s = s[len(s)-max:]
	if i := strings.IndexByte(s, '\n'); i >= 0 && i < len(s)-1 {
		s = s[i+1:]
	}
	return s
}

func (a *API) retry(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	auth.Note(r.Context(), id, "")
	j, err := a.Retry(r.Context(), id)
	if err != nil {
		writeErr(w, err)
		return
	}
	auth.Note(r.Context(), "", fmt.Sprintf("queued for attempt %d", j.Attempt))
	writeJSON(w, http.StatusOK, j)
}

func (a *API) cancel(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	auth.Note(r.Context(), id, "")
	by := "unknown"
	if p, ok := auth.FromContext(r.Context()); ok {
		by = p.Name
	}
	j, err := a.Cancel(r.Context(), id, by)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, j)
}

// Retry queues a final job (succeeded, failed, timed_out, cancelled) for
// another attempt and returns it. The model's owner runs it: at once when
// that is this collector, else at its next resume. A job that is queued
// or running is refused (ErrRefused), an unknown one ErrUnknownJob.
func (a *API) Retry(ctx context.Context, id string) (JobJSON, error) {
	cur, ok, err := a.tbl.latest(ctx, id)
	if err != nil {
		return JobJSON{}, err
	}
	if !ok {
		return JobJSON{}, fmt.Errorf("job %s: %w", id, ErrUnknownJob)
	}
	if !Terminal(cur.State) {
		return JobJSON{}, fmt.Errorf("%w: job %s is %s; cancel it first", ErrRefused, id, cur.State)
	}
	now := ms(a.now())
	next := cur
	next.State, next.Attempt, next.LeaseOwner, next.LeaseUntil = StateQueued, cur.Attempt+1, a.node, nil
	next.Updated, next.Started, next.Finished = now, nil, nil
	next.ExitCode, next.ResultVersion, next.Error = 0, 0, ""
	next.RowVersion = rowVersion(logical(cur.RowVersion)+1, a.node, false)
	if err := a.tbl.insert(ctx, next); err != nil {
		return JobJSON{}, err
	}
	a.log.Info("job queued again by request", "job", id, "model", cur.Model, "attempt", next.Attempt)
	if a.m != nil && a.m.owns(cur.Model) {
		a.m.enqueue(id, cur.Model, time.Time{})
	}
	return jobJSON(next), nil
}

// errCancelled stops an attempt whose job was cancelled.
var errCancelled = errors.New("job cancelled")

// Cancel makes a queued or running job final (cancelled) and returns it;
// by (a token name) is recorded in its error. The running attempt is
// killed: at once when it runs here, else when its collector next renews
// the lease (within a third of jobs.lease). A final job is refused
// (ErrRefused), an unknown one ErrUnknownJob.
func (a *API) Cancel(ctx context.Context, id, by string) (JobJSON, error) {
	cur, ok, err := a.tbl.latest(ctx, id)
	if err != nil {
		return JobJSON{}, err
	}
	if !ok {
		return JobJSON{}, fmt.Errorf("job %s: %w", id, ErrUnknownJob)
	}
	if Terminal(cur.State) {
		return JobJSON{}, fmt.Errorf("%w: job %s is %s; only a queued or running job can be cancelled", ErrRefused, id, cur.State)
	}
	now := ms(a.now())
	next := cur
	next.State, next.LeaseOwner, next.LeaseUntil = StateCancelled, a.node, nil
	next.Updated, next.Finished = now, &now
	next.ExitCode, next.ResultVersion, next.Error = -1, 0, "cancelled by "+by
	// A row that is not running ranks above a lease renewal of the same
	// logical version, so the cancel wins over a concurrent renewal.
	next.RowVersion = rowVersion(logical(cur.RowVersion)+1, a.node, false)
	if err := a.tbl.insert(ctx, next); err != nil {
		return JobJSON{}, err
	}
	if cur.State == StateRunning {
		recordAttempt(ctx, a.tbl, a.log, cur, now, StateCancelled, -1, next.Error, "")
	}
	a.log.Info("job cancelled by request", "job", id, "model", cur.Model, "was", cur.State, "by", by)
	if a.m != nil {
		a.m.stopLocal(id, errCancelled)
	}
	return jobJSON(next), nil
}

// jobJSON converts a row; Spec, Attempts and OutputTail stay null.
func jobJSON(r store.JobRow) JobJSON {
	v, _ := strconv.ParseUint(r.ModelVersion, 10, 64) // versions are positive integers
	j := JobJSON{
		ID: r.ID, Model: r.Model, ModelVersion: v, IncidentStart: r.IncidentStart.UTC(),
		State: r.State, Attempt: r.Attempt, Created: r.Created.UTC(), Updated: r.Updated.UTC(),
		Started: utcp(r.Started), Finished: utcp(r.Finished),
	}
	if !Terminal(r.State) {
		if r.LeaseOwner != "" {
			owner := r.LeaseOwner
			j.LeaseOwner = &owner
		}
		j.LeaseUntil = utcp(r.LeaseUntil)
	}
	if r.Finished != nil {
		code := r.ExitCode
		j.ExitCode = &code
	}
	if r.ResultVersion != 0 {
		rv := r.ResultVersion
		j.ResultVersion = &rv
	}
	if e, _ := splitError(r.Error); e != "" {
		j.Error = &e
	}
	if r.Report != "" && json.Valid([]byte(r.Report)) {
		j.Report = json.RawMessage(r.Report)
	}
	return j
}

func utcp(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// splitError splits a row's error into the reason and the output tails
// that finish appended to it ("--- stdout ---" and "--- stderr ---"
// sections).
func splitError(s string) (reason, output string) {
	i := -1
	for _, marker := range []string{"--- stdout", "--- stderr"} {
		k := -1
		if strings.HasPrefix(s, marker) {
			k = 0
		} else if n := strings.Index(s, "\n"+marker); n >= 0 {
			k = n + 1
		}
		if k >= 0 && (i < 0 || k < i) {
			i = k
		}
	}
	if i < 0 {
		return strings.TrimSpace(s), ""
	}
	return strings.TrimSpace(s[:i]), s[i:]
}

// redactSpec returns the spec with the password of clickhouse_dsn replaced
// by REDACTED (a DSN that cannot be parsed is replaced whole), and without
// the callback URL and publish token; null for an empty or unreadable spec.
func redactSpec(spec string) json.RawMessage {
	if spec == "" {
		return nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(spec), &m); err != nil {
		return nil
	}
	if raw, ok := m["clickhouse_dsn"]; ok {
		var dsn string
		if json.Unmarshal(raw, &dsn) == nil && dsn != "" {
			m["clickhouse_dsn"], _ = json.Marshal(RedactDSN(dsn))
		}
	}
	delete(m, "callback_url")
	delete(m, "publish_token") // never stored; removed should a forged row carry one
	b, err := json.Marshal(m)
	if err != nil {
		return nil
	}
	return b
}

// RedactDSN returns dsn with its password replaced by REDACTED; a DSN that
// does not parse as a URL is replaced whole.
func RedactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme == "" || u.Opaque != "" || !strings.Contains(dsn, "://") {
		return "REDACTED"
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "REDACTED")
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "REDACTED")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

func writeErr(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrUnknownJob):
		auth.WriteError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, ErrRefused):
		auth.WriteError(w, http.StatusConflict, strings.TrimPrefix(err.Error(), ErrRefused.Error()+": "))
	default:
		auth.WriteError(w, http.StatusServiceUnavailable, err.Error())
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		auth.WriteError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// callback serves POST /v1/jobs/{id}/status: a webhook receiver's report
// (Callback), authenticated by its signature.
func (m *Manager) callback(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		auth.WriteError(w, http.StatusBadRequest, "read body: "+err.Error())
		return
	}
	err = m.Callback(r.Context(), r.PathValue("id"), body, r.Header.Get(SignatureHeader))
	switch {
	case err == nil:
		w.WriteHeader(http.StatusNoContent)
	case errors.Is(err, ErrBadSignature):
		auth.WriteError(w, http.StatusUnauthorized, err.Error())
	case errors.Is(err, ErrBadCallback):
		auth.WriteError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, ErrUnknownJob), errors.Is(err, ErrNoWebhook):
		auth.WriteError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, ErrStale):
		auth.WriteError(w, http.StatusConflict, err.Error())
	default:
		auth.WriteError(w, http.StatusServiceUnavailable, "record callback: "+err.Error())
	}
}
