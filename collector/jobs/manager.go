package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/cenkalti/backoff/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/drover-ml/drover/collector/store"
	"github.com/drover-ml/drover/shared/manifest"
)

// Event kinds, the values of Event.Kind.
const (
	EventQueued    = "job.queued"     // Schedule created the job
	EventStarted   = "job.started"    // this node won the claim and started an attempt
	EventRetry     = "job.retry"      // an attempt failed or timed out; the job is queued again
	EventSucceeded = "job.succeeded"  // the job finished and published ResultVersion (0: none found)
	EventFailed    = "job.failed"     // the last attempt failed or timed out: retries are exhausted
	EventLeaseLost = "job.lease_lost" // this node stopped an attempt: it could not renew, or another row superseded its own
)

// Event is something that happened to a job on this node, for OnEvent.
type Event struct {
	Time          time.Time
	Kind          string
	JobID         string
	Model         string
	Version       string
	Attempt       int    // the job's attempt after the event (job.retry: the next one)
	State         string // the job's state after the event
	ResultVersion uint64
	Err           string // why the attempt failed; empty otherwise
}

// Options are a Manager's dependencies.
type Options struct {
	// Conn reaches ClickHouse, whose Database has been migrated
	// (store.Migrate). The Manager does not close it.
	Conn driver.Conn
	// Database is the ClickHouse database; default "drover".
	Database string
	// Node is this collector's name in the cluster (lease_owner). Every
	// node must have a distinct name. Required.
	Node string
	// Config is the validated jobs configuration.
	Config Config
	// Owns reports whether this node owns a model (the ring); Resume takes
	// over only the jobs of owned models. Default: every model.
	Owns func(model string) bool
	// Now is the clock for timestamps and lease expiry; default time.Now.
	// Waits use real timers.
	Now func() time.Time
	// Logger; default slog.Default(). The caller names the component and
	// the node in it (log.With("component", "jobs")): the Manager adds
	// neither.
	Logger *slog.Logger
	// OnEvent, if set, is called for every Event, synchronously from the
	// Manager's goroutines: it must be quick and must not call back into
	// the Manager.
	OnEvent func(Event)
	// Registerer, if set, receives the Manager's metrics (docs/jobs.md).
	Registerer prometheus.Registerer
	// PublishURL is this collector's admin API as a command or webhook
	// job reaches it (Spec.PublishURL); JobTokenKey signs the attempts'
	// publish tokens (auth.JobTokenKey). Either empty: attempts get no
	// publish URL and token.
	PublishURL  string
	JobTokenKey []byte
	// Executor runs the jobs of Config.Executor "builtin" (required then,
	// ignored otherwise).
	Executor Executor
}

// Manager schedules jobs for incidents and runs the ones this node wins.
// All methods are safe for concurrent use. Jobs run only while Run runs;
// Schedule and Resume may be called before Run (the jobs wait for it).
type Manager struct {
	cfg     Config
	node    string
	tbl     *table
	owns    func(string) bool
	now     func() time.Time
	log     *slog.Logger
	onEvent func(Event)
	exec    executor
	secret  []byte             // webhook key; nil for the command executor
	refused prometheus.Counter // incidents refused for max_open_per_model; nil: not counted
	pub     publishing         // publish URL and token key for command and webhook attempts

	started atomic.Bool
	wake    chan struct{}
	wg      sync.WaitGroup

	mu       sync.Mutex
	pending  []*pendingJob // in arrival order
	queued   map[string]*pendingJob
	active   map[string]string // job id → model, claiming or executing here
	perModel map[string]int
	waiters  map[string]*waiter                 // webhook attempts waiting for their callback
	aborts   map[string]context.CancelCauseFunc // job id → stops its attempt running here
}

type pendingJob struct {
	id, model string
	notBefore time.Time
}

// New returns a Manager. It validates Config and reads the webhook secret.
func New(opts Options) (*Manager, error) {
	if opts.Conn == nil {
		return nil, errors.New("jobs: no ClickHouse connection")
	}
	if opts.Node == "" || strings.ContainsAny(opts.Node, " \t\r\n") {
		return nil, fmt.Errorf("jobs: node name %q: must be non-empty without white space", opts.Node)
	}
	if err := opts.Config.Validate(); err != nil {
		return nil, fmt.Errorf("jobs config: %w", err)
	}
	if opts.Database == "" {
		opts.Database = "drover"
	}
	m := &Manager{
		cfg: opts.Config, node: opts.Node, tbl: newTable(opts.Conn, opts.Database),
		owns: opts.Owns, now: opts.Now, log: opts.Logger, onEvent: opts.OnEvent,
		wake:   make(chan struct{}, 1),
		queued: map[string]*pendingJob{}, active: map[string]string{}, perModel: map[string]int{},
		waiters: map[string]*waiter{}, aborts: map[string]context.CancelCauseFunc{},
	}
	if m.owns == nil {
		m.owns = func(string) bool { return true }
	}
	m.pub = publishing{url: strings.TrimRight(opts.PublishURL, "/"), key: opts.JobTokenKey}
	if m.now == nil {
		m.now = time.Now
	}
	if m.log == nil {
		m.log = slog.Default()
	}
	if opts.Registerer != nil {
		m.refused = prometheus.NewCounter(prometheus.CounterOpts{Name: "drover_collector_jobs_refused_total",
			Help: "Drift incidents that got no job because their model had jobs.max_open_per_model jobs queued or running."})
		if err := opts.Registerer.Register(m.refused); err != nil {
			return nil, fmt.Errorf("jobs: register metrics: %w", err)
		}
	}
	switch m.cfg.Executor {
	case ExecutorCommand:
		e, err := newCommandExecutor(m.cfg.Command)
		if err != nil {
			return nil, err
		}
		m.exec = e
	case ExecutorWebhook:
		key, err := m.cfg.Webhook.secret()
		if err != nil {
			return nil, err
		}
		m.secret = key
		m.exec = &webhookExecutor{m: m, cfg: m.cfg.Webhook, key: key}
	case ExecutorBuiltin:
		if opts.Executor == nil {
			return nil, errors.New("jobs: executor builtin: no Executor given")
		}
		m.exec = inProcess{opts.Executor}
	default:
		return nil, fmt.Errorf("jobs: executor %q runs no jobs: no Manager is needed", m.cfg.Executor)
	}
	return m, nil
}

// Run dispatches queued jobs within the concurrency limits and calls Resume
// every ResumeInterval, until ctx is cancelled. It then kills the attempts
// that run here and returns once they are gone, writing nothing for them:
// their leases lapse and the model's owner takes them over. Run may be
// called once.
func (m *Manager) Run(ctx context.Context) error {
	if !m.started.CompareAndSwap(false, true) {
		return errors.New("jobs: Run called twice")
	}
	defer m.wg.Wait()
	if err := m.Resume(ctx); err != nil && ctx.Err() == nil {
		m.log.Warn("resume jobs", "err", err)
	}
	resume := time.NewTicker(m.cfg.ResumeInterval)
	defer resume.Stop()
	timer := time.NewTimer(time.Minute)
	defer timer.Stop()
	for {
		wait := time.Minute
		if next := m.dispatch(ctx); !next.IsZero() {
			wait = max(next.Sub(m.now()), 10*time.Millisecond)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case <-m.wake:
		case <-timer.C:
		case <-resume.C:
			if err := m.Resume(ctx); err != nil && ctx.Err() == nil {
				m.log.Warn("resume jobs", "err", err)
			}
		}
	}
}

// Schedule creates the job for an incident unless it exists. An incident
// without model, version or start is an error wrapping ErrBadIncident; a
// new incident of a model with Config.MaxOpenPerModel jobs queued or
// running is an error wrapping ErrTooManyJobs (logged, counted). It returns the
// job's id (JobID) and whether this call created it. created is false when
// the table already has a row for the id, in any state, or when another
// node inserted its own first row at the same moment and won the tie (the
// smaller node name wins; see docs/jobs.md). It blocks for Config.Settle
// after its insert to see such a row. A created job runs once Run
// dispatches it.
func (m *Manager) Schedule(ctx context.Context, inc Incident) (id string, created bool, err error) {
	if inc.Model == "" || inc.Version == "" || inc.Start.IsZero() {
		return "", false, fmt.Errorf("schedule job: %w: it needs model, version and start, got %q %q %s", ErrBadIncident, inc.Model, inc.Version, inc.Start)
	}
	if err := checkIncidentFields(inc.Model, inc.Version, inc.Reasons); err != nil {
		return "", false, fmt.Errorf("schedule job: %w: %v", ErrBadIncident, err)
	}
	id = JobID(inc.Model, inc.Version, inc.Start)
	m.mu.Lock()
	_, q := m.queued[id]
	_, a := m.active[id]
	m.mu.Unlock()
	if q || a {
		return id, false, nil
	}
	if _, ok, err := m.tbl.latest(ctx, id); err != nil || ok {
		return id, false, err
	}
	// A cap on open jobs per model: incidents of many versions of one model
	// (real, or invented by a sender) do not start a job each.
	open, err := m.tbl.openOf(ctx, inc.Model)
	if err != nil {
		return id, false, err
	}
	if open >= uint64(m.cfg.MaxOpenPerModel) {
		if m.refused != nil {
			m.refused.Inc()
		}
		m.log.Warn("no job for drift incident: the model has max_open_per_model jobs open", "job", id, "model", inc.Model,
			"version", inc.Version, "start", inc.Start, "open", open, "max_open_per_model", m.cfg.MaxOpenPerModel)
		return id, false, fmt.Errorf("schedule job %s: %w: %d queued or running, max_open_per_model %d", id, ErrTooManyJobs, open, m.cfg.MaxOpenPerModel)
	}
	now := m.now()
	spec := Spec{
		ID: id, Model: inc.Model, Version: inc.Version, IncidentStart: ms(inc.Start), Reasons: inc.Reasons,
		// ModelStore and ClickHouseDSN are not stored: execute takes them
		// from the configuration (no credential in the jobs table).
		DataWindow: Window{Start: ms(now.Add(-m.cfg.DataWindow)), End: ms(now)}, Attempt: 1,
	}
	if spec.Reasons == nil {
		spec.Reasons = []string{}
	}
	js, err := json.Marshal(spec)
	if err != nil {
		return id, false, fmt.Errorf("encode spec of %s: %w", id, err)
	}
	row := store.JobRow{
		ID: id, Model: inc.Model, ModelVersion: inc.Version, IncidentStart: ms(inc.Start),
		State: StateQueued, Attempt: 1, LeaseOwner: m.node, Created: ms(now), Updated: ms(now),
		Spec: string(js), RowVersion: rowVersion(1, m.node, false),
	}
	if err := m.tbl.insert(ctx, row); err != nil {
		return id, false, err
	}
	if err := sleep(ctx, m.cfg.Settle); err != nil {
		return id, false, err
	}
	rows, err := m.tbl.since(ctx, id, 1)
	if err != nil {
		return id, false, err
	}
	// The first rows of all nodes that inserted one at the same moment:
	// the first in rowOrder is the job's creator. (A later row may already
	// be another node's claim: Resume found the job queued.)
	// A merge may already have replaced the first rows with a claim: then
	// nothing shows another creator.
	firsts := slices.DeleteFunc(rows, func(r store.JobRow) bool { return logical(r.RowVersion) != 1 })
	if len(firsts) > 0 && !same(firsts[0], row) {
		m.log.Info("job scheduled by another node", "job", id, "model", inc.Model, "winner", winner(firsts))
		return id, false, nil
	}
	m.enqueue(id, inc.Model, time.Time{})
	m.emit(EventQueued, row, "")
	return id, true, nil
}

// Resume finds the queued and running jobs of the models this node owns and
// queues them here. A job whose lease is alive (lease_until, plus
// MaxClockSkew when another node holds it) waits until it lapses: Resume
// never starts an attempt of a job whose lease is alive, and the claim that
// follows checks the table again. Run calls it at start and every
// ResumeInterval; a node that just became a model's owner may call it too.
func (m *Manager) Resume(ctx context.Context) error {
	rows, err := m.tbl.open(ctx)
	if err != nil {
		return err
	}
	for _, r := range rows {
		if !m.owns(r.Model) {
			continue
		}
		var at time.Time
		if r.LeaseUntil != nil && r.LeaseOwner != "" {
			at = *r.LeaseUntil
			if r.LeaseOwner != m.node {
				at = at.Add(m.cfg.MaxClockSkew)
			}
		}
		if m.enqueue(r.ID, r.Model, at) {
			m.log.Info("resuming job", "job", r.ID, "model", r.Model, "state", r.State, "lease_owner", r.LeaseOwner, "not_before", at)
		}
	}
	return nil
}

// Job returns the job's current row, or an error wrapping ErrUnknownJob.
func (m *Manager) Job(ctx context.Context, id string) (store.JobRow, error) {
	row, ok, err := m.tbl.latest(ctx, id)
	if err != nil {
		return store.JobRow{}, err
	}
	if !ok {
		return store.JobRow{}, fmt.Errorf("job %s: %w", id, ErrUnknownJob)
	}
	return row, nil
}

// stopLocal stops the attempt of job id that runs on this node, if one
// does, with cause; it reports whether one did. The attempt writes no
// outcome (execute sees the cause).
func (m *Manager) stopLocal(id string, cause error) bool {
	m.mu.Lock()
	abort := m.aborts[id]
	m.mu.Unlock()
	if abort == nil {
		return false
	}
	abort(cause)
	return true
}

// enqueue adds a job to the local queue unless it is queued or active here.
func (m *Manager) enqueue(id, model string, notBefore time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.queued[id]; ok {
		return false
	}
	if _, ok := m.active[id]; ok {
		return false
	}
	p := &pendingJob{id: id, model: model, notBefore: notBefore}
	m.pending = append(m.pending, p)
	m.queued[id] = p
	m.poke()
	return true
}

func (m *Manager) poke() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// dispatch starts the queued jobs that are due, within the limits. A model
// at its limit is skipped, never blocking the jobs of other models. It
// returns when the next not-yet-due job becomes due (zero: none).
func (m *Manager) dispatch(ctx context.Context) time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	var next time.Time
	kept := m.pending[:0]
	for _, p := range m.pending {
		switch {
		case ctx.Err() != nil || len(m.active) >= m.cfg.MaxConcurrent || m.perModel[p.model] >= m.cfg.MaxPerModel:
			kept = append(kept, p)
		case p.notBefore.After(now):
			if next.IsZero() || p.notBefore.Before(next) {
				next = p.notBefore
			}
			kept = append(kept, p)
		default:
			delete(m.queued, p.id)
			m.active[p.id] = p.model
			m.perModel[p.model]++
			m.wg.Add(1)
			go m.runJob(ctx, p)
		}
	}
	clear(m.pending[len(kept):])
	m.pending = kept
	return next
}

// runJob claims and runs one job, then frees its slot and, if the job is
// to run again later here, queues it again.
func (m *Manager) runJob(ctx context.Context, p *pendingJob) {
	defer m.wg.Done()
	retryAt := m.attempt(ctx, p)
	m.mu.Lock()
	delete(m.active, p.id)
	if m.perModel[p.model]--; m.perModel[p.model] <= 0 {
		delete(m.perModel, p.model)
	}
	m.mu.Unlock()
	if !retryAt.IsZero() && ctx.Err() == nil {
		m.enqueue(p.id, p.model, retryAt)
	}
	m.poke()
}

// retryDelay is how long a job waits here after a ClickHouse error.
func (m *Manager) retryDelay() time.Duration { return min(m.cfg.Lease/3, 5*time.Second) }

func (m *Manager) attempt(ctx context.Context, p *pendingJob) (retryAt time.Time) {
	row, won, retryAt, err := m.claim(ctx, p.id)
	if err != nil {
		if ctx.Err() == nil {
			m.log.Warn("claim job", "job", p.id, "model", p.model, "err", err)
		}
		if retryAt.IsZero() {
			retryAt = m.now().Add(m.retryDelay())
		}
		return retryAt
	}
	if !won {
		return retryAt
	}
	return m.execute(ctx, row)
}

// claim takes the job for this node: it reads the job's row, inserts a
// running row one version higher with this node's lease, waits Settle and
// reads the rows again. It won if its row comes first in rowOrder; it then
// confirms with one more row (so a later, slower claimant sees a higher
// version than its own) and returns that row. retryAt, when not zero, is
// when to try again here (a live lease, or a claim that was too slow).
func (m *Manager) claim(ctx context.Context, id string) (row store.JobRow, won bool, retryAt time.Time, err error) {
	start := time.Now()
	cur, ok, err := m.tbl.latest(ctx, id)
	if err != nil || !ok || Terminal(cur.State) {
		return store.JobRow{}, false, time.Time{}, err
	}
	now := m.now()
	if cur.LeaseUntil != nil && cur.LeaseOwner != "" {
		until := *cur.LeaseUntil
		if cur.LeaseOwner != m.node {
			until = until.Add(m.cfg.MaxClockSkew)
		}
		if now.Before(until) {
			return store.JobRow{}, false, until, nil
		}
	}
	c := cur
	c.State, c.LeaseOwner, c.LeaseUntil = StateRunning, m.node, ptr(ms(now.Add(m.cfg.Lease)))
	c.Updated, c.Started, c.Finished = ms(now), ptr(ms(now)), nil
	c.ExitCode, c.ResultVersion, c.Error, c.Report = 0, 0, "", ""
	c.RowVersion = rowVersion(logical(cur.RowVersion)+1, m.node, true)
	if cur.State == StateRunning {
		m.log.Warn("taking over job whose lease lapsed", "job", id, "model", cur.Model, "previous_owner", cur.LeaseOwner, "lease_until", cur.LeaseUntil)
	}
	if err := m.tbl.insert(ctx, c); err != nil {
		return store.JobRow{}, false, *c.LeaseUntil, err
	}
	if took := time.Since(start); took > m.cfg.Settle {
		// Another node may have read the job before this insert landed
		// and may not see it at its own re-check: abandon; the lease
		// lapses and the job is claimed again.
		m.log.Warn("claim took longer than settle; abandoning it until the lease lapses", "job", id, "took", took, "settle", m.cfg.Settle)
		return store.JobRow{}, false, *c.LeaseUntil, nil
	}
	if err := sleep(ctx, m.cfg.Settle); err != nil {
		return store.JobRow{}, false, time.Time{}, err
	}
	rows, err := m.tbl.since(ctx, id, logical(c.RowVersion))
	if err != nil {
		return store.JobRow{}, false, *c.LeaseUntil, err
	}
	if len(rows) == 0 || !same(rows[0], c) {
		m.log.Info("another node claimed the job", "job", id, "model", c.Model, "winner", winner(rows))
		return store.JobRow{}, false, time.Time{}, nil
	}
	conf := c
	conf.RowVersion = rowVersion(logical(c.RowVersion)+1, m.node, true)
	conf.LeaseUntil, conf.Updated = ptr(ms(m.now().Add(m.cfg.Lease))), ms(m.now())
	if err := m.tbl.insert(ctx, conf); err != nil {
		return store.JobRow{}, false, *conf.LeaseUntil, err
	}
	return conf, true, time.Time{}, nil
}

func winner(rows []store.JobRow) string {
	if len(rows) == 0 {
		return ""
	}
	return fmt.Sprintf("%s (row %d, %s)", rows[0].LeaseOwner, rows[0].RowVersion, rows[0].State)
}

var (
	errLeaseLost  = errors.New("lease could not be renewed before it lapsed")
	errSuperseded = errors.New("another row superseded this node's (a callback or another node)")
)

// held is the row of a running attempt, shared by the attempt and the
// goroutine that renews its lease.
type held struct {
	mu     sync.Mutex
	row    store.JobRow
	unsure *store.JobRow // a renewal whose insert failed but may have landed
}

func (h *held) get() store.JobRow {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.row
}

// execute runs one attempt of a claimed job while renewing its lease, then
// writes its outcome. It returns when to run the job again here (a retry),
// or zero.
func (m *Manager) execute(ctx context.Context, row store.JobRow) time.Time {
	spec, err := m.runSpec(row)
	if err != nil {
		// A spec that does not check out will not get better: fail the job.
		next, _ := m.finish(ctx, row, outcome{state: StateFailed, exitCode: -1, err: err.Error()}, false)
		return next
	}
	if m.cfg.Executor == ExecutorWebhook {
		spec.CallbackURL = strings.TrimRight(m.cfg.Webhook.CallbackURL, "/") + "/v1/jobs/" + spec.ID + "/status"
	}
	if err := m.withPublish(&spec); err != nil {
		next, _ := m.finish(ctx, row, outcome{state: StateFailed, exitCode: -1, err: err.Error()}, false)
		return next
	}
	m.emit(EventStarted, row, "")
	m.log.Info("job attempt started", "job", row.ID, "model", row.Model, "attempt", row.Attempt)

	h := &held{row: row}
	execCtx, abort := context.WithCancelCause(ctx)
	defer abort(nil)
	m.mu.Lock()
	m.aborts[row.ID] = abort
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.aborts, row.ID)
		m.mu.Unlock()
	}()
	renewCtx, stopRenew := context.WithCancel(ctx)
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		m.renew(renewCtx, h, abort)
	}()
	out := m.exec.Execute(execCtx, spec)
	stopRenew()
	<-renewed
	if ctx.Err() != nil {
		return time.Time{} // stopping: the lease lapses, the owner takes over
	}
	if cause := context.Cause(execCtx); cause != nil {
		cur := h.get()
		m.log.Warn("job attempt stopped", "job", row.ID, "model", row.Model, "attempt", row.Attempt, "err", cause)
		m.emit(EventLeaseLost, cur, cause.Error())
		return time.Time{}
	}
	out = m.publishedResult(ctx, row.Model, row.ID, out)
	next, err := m.finish(ctx, h.get(), out, true)
	if err != nil {
		m.log.Error("record job outcome; the job runs again once its lease lapses", "job", row.ID, "err", err)
		return *h.get().LeaseUntil
	}
	return next
}

// renew extends the lease every Lease/3 until ctx ends. Before each renewal
// it reads the job: if a row other than its own is now first, it aborts the
// attempt (errSuperseded). Each read and insert must finish by the current
// lease_until minus Lease/6; when a renewal cannot land by then (ClickHouse
// slow or unreachable) it aborts the attempt (errLeaseLost), so that the
// attempt is killed before the lease lapses and another node may claim it.
func (m *Manager) renew(ctx context.Context, h *held, abort context.CancelCauseFunc) {
	t := time.NewTicker(m.cfg.Lease / 3)
	defer t.Stop()
	margin := m.cfg.Lease / 6
	logged := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		h.mu.Lock()
		cur, unsure := h.row, h.unsure
		h.mu.Unlock()
		deadline := time.Now().Add(cur.LeaseUntil.Sub(m.now()) - margin)
		err := func() error {
			ctx, cancel := context.WithDeadline(ctx, deadline)
			defer cancel()
			latest, ok, err := m.tbl.latest(ctx, cur.ID)
			if err != nil {
				return err
			}
			if ok && unsure != nil && same(latest, *unsure) {
				cur = *unsure
			}
			if ok && !same(latest, cur) {
				abort(fmt.Errorf("%w: now %s", errSuperseded, winner([]store.JobRow{latest})))
				return errSuperseded
			}
			next := cur
			now := m.now()
			next.RowVersion = rowVersion(logical(cur.RowVersion)+1, m.node, true)
			next.LeaseUntil, next.Updated = ptr(ms(now.Add(m.cfg.Lease))), ms(now)
			if err := m.tbl.insert(ctx, next); err != nil {
				h.mu.Lock()
				h.row, h.unsure = cur, &next
				h.mu.Unlock()
				return err
			}
			h.mu.Lock()
			h.row, h.unsure = next, nil
			h.mu.Unlock()
			return nil
		}()
		if ctx.Err() != nil || errors.Is(err, errSuperseded) {
			return
		}
		if err == nil {
			logged = false
			continue
		}
		if !time.Now().Add(m.cfg.Lease / 3).Before(deadline) {
			abort(fmt.Errorf("%w: %v", errLeaseLost, err))
			return
		}
		if !logged {
			m.log.Warn("renew job lease", "job", cur.ID, "lease_until", cur.LeaseUntil, "err", err)
			logged = true
		}
	}
}

// finish writes the row that follows cur for an attempt's outcome: succeeded;
// queued for a retry (attempt+1, lease_until = when it may run) while
// retries are left; else the attempt's state (failed or timed_out). With
// check, it first makes sure cur is still the job's row. It returns the
// retry time, or zero.
func (m *Manager) finish(ctx context.Context, cur store.JobRow, out outcome, check bool) (time.Time, error) {
	if check {
		latest, ok, err := m.tbl.latest(ctx, cur.ID)
		if err == nil && ok && !same(latest, cur) {
			m.log.Info("job row changed during the attempt; discarding its outcome", "job", cur.ID, "now", winner([]store.JobRow{latest}))
			return time.Time{}, nil
		}
	}
	now := m.now()
	next := cur
	next.RowVersion = rowVersion(logical(cur.RowVersion)+1, m.node, false)
	next.Updated, next.Finished = ms(now), ptr(ms(now))
	next.ExitCode, next.ResultVersion = out.exitCode, out.resultVersion
	next.Error = out.err
	next.Report = out.report
	if out.log != "" {
		if next.Error != "" {
			next.Error += "\n"
		}
		next.Error += out.log
	}
	var retryAt time.Time
	kind := EventFailed
	switch {
	case out.state == StateSucceeded:
		next.State, next.LeaseUntil = StateSucceeded, nil
		kind = EventSucceeded
	case int(cur.Attempt) <= m.cfg.Retries && !out.permanent:
		retryAt = ms(now.Add(m.backoff(int(cur.Attempt))))
		next.State, next.Attempt, next.LeaseUntil = StateQueued, cur.Attempt+1, ptr(retryAt)
		kind = EventRetry
	default:
		next.State, next.LeaseUntil = out.state, nil
		if next.State != StateTimedOut {
			next.State = StateFailed
		}
	}
	if err := m.tbl.insert(ctx, next); err != nil {
		return time.Time{}, err
	}
	m.emit(kind, next, out.err)
	switch kind {
	case EventSucceeded:
		m.log.Info("job succeeded", "job", next.ID, "model", next.Model, "attempt", cur.Attempt, "result_version", next.ResultVersion)
	case EventRetry:
		m.log.Warn("job attempt failed; retrying", "job", next.ID, "model", next.Model, "attempt", cur.Attempt, "retry_at", retryAt, "err", out.err)
	default:
		m.log.Error("job failed; retries exhausted", "job", next.ID, "model", next.Model, "attempts", cur.Attempt, "state", next.State, "err", out.err)
	}
	m.recordAttempt(ctx, cur, now, out.state, out.exitCode, out.err, out.log)
	return retryAt, nil
}

// recordAttempt writes the attempt that cur ran (job_attempts) once it
// ended at finished. It is history for the admin API: a failure is logged,
// never the job's.
func (m *Manager) recordAttempt(ctx context.Context, cur store.JobRow, finished time.Time, state string, exitCode int32, errText, output string) {
	recordAttempt(ctx, m.tbl, m.log, cur, finished, state, exitCode, errText, output)
}

func recordAttempt(ctx context.Context, tbl *table, log *slog.Logger, cur store.JobRow, finished time.Time, state string, exitCode int32, errText, output string) {
	if cur.Started == nil {
		return
	}
	a := attemptRow{ID: cur.ID, Attempt: cur.Attempt, Node: cur.LeaseOwner, Started: *cur.Started, Finished: finished,
		State: state, ExitCode: exitCode, Error: errText, Output: output}
	if err := tbl.insertAttempt(ctx, a); err != nil {
		log.Warn("record job attempt", "job", cur.ID, "attempt", cur.Attempt, "err", err)
	}
}

// backoff is the wait before attempt+1: Backoff·2^(attempt-1), capped at
// MaxBackoff. It has no jitter: the schedule is the documented one, and
// the retry time is written into the job's row, which every node reads.
func (m *Manager) backoff(attempt int) time.Duration {
	b := &backoff.ExponentialBackOff{InitialInterval: m.cfg.Backoff, Multiplier: 2, MaxInterval: m.cfg.MaxBackoff}
	b.Reset()
	d := b.NextBackOff()
	for i := 1; i < attempt && d < m.cfg.MaxBackoff; i++ {
		d = b.NextBackOff()
	}
	return min(d, m.cfg.MaxBackoff)
}

func (m *Manager) emit(kind string, row store.JobRow, errText string) {
	if m.onEvent == nil {
		return
	}
	m.onEvent(Event{
		Time: m.now(), Kind: kind, JobID: row.ID, Model: row.Model, Version: row.ModelVersion,
		Attempt: int(row.Attempt), State: row.State, ResultVersion: row.ResultVersion, Err: errText,
	})
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Limits on the fields of an incident that reach a job (and its command
// line or webhook body).
const (
	maxReasons      = 32
	maxReasonBytes  = 512
	maxVersionBytes = 64
)

// checkIncidentFields checks what an incident contributes to a job: a
// model name by the manifest's rules, a version of digits (the agent's
// version directories), and a bounded list of printable reasons.
func checkIncidentFields(model, version string, reasons []string) error {
	if !manifest.ValidName(model) {
		return fmt.Errorf("model name %q", model)
	}
	if version == "" || len(version) > maxVersionBytes || strings.Trim(version, "0123456789") != "" {
		return fmt.Errorf("version %q: want a decimal number", version)
	}
	if len(reasons) > maxReasons {
		return fmt.Errorf("%d reasons, more than %d", len(reasons), maxReasons)
	}
	for _, r := range reasons {
		if len(r) > maxReasonBytes || !utf8.ValidString(r) || strings.ContainsFunc(r, unicode.IsControl) {
			return fmt.Errorf("reason %.40q: at most %d bytes of printable UTF-8", r, maxReasonBytes)
		}
	}
	return nil
}

// runSpec rebuilds the Spec an attempt executes from the configuration and
// the checked fields of the row: the job row is data anyone with write
// access to ClickHouse could have written, so nothing in it is executed as
// is. The id must be the one its model, version and incident start give
// (JobID), the model, version and reasons must pass checkIncidentFields,
// the data window must be a window; the model store and the ClickHouse
// DSN come from the configuration only.
func (m *Manager) runSpec(row store.JobRow) (Spec, error) {
	var stored Spec
	if err := json.Unmarshal([]byte(row.Spec), &stored); err != nil {
		return Spec{}, fmt.Errorf("decode spec: %v", err)
	}
	if stored.ID != row.ID || stored.Model != row.Model || stored.Version != row.ModelVersion || JobID(stored.Model, stored.Version, stored.IncidentStart) != row.ID {
		return Spec{}, fmt.Errorf("spec of %s: its id, model, version and incident start do not match the job", row.ID)
	}
	if err := checkIncidentFields(stored.Model, stored.Version, stored.Reasons); err != nil {
		return Spec{}, fmt.Errorf("spec of %s: %v", row.ID, err)
	}
	w := stored.DataWindow
	if w.Start.IsZero() || !w.End.After(w.Start) {
		return Spec{}, fmt.Errorf("spec of %s: data window %s to %s", row.ID, w.Start, w.End)
	}
	reasons := stored.Reasons
	if reasons == nil {
		reasons = []string{}
	}
	spec := Spec{
		ID: row.ID, Model: stored.Model, Version: stored.Version, IncidentStart: stored.IncidentStart, Reasons: reasons,
		ModelStore: m.cfg.ModelStore, ClickHouseDSN: m.cfg.ClickHouseDSN,
		DataWindow: Window{Start: w.Start, End: w.End}, Attempt: int(row.Attempt),
	}
	return spec, nil
}
