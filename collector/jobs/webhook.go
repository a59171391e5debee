package jobs

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/drover-ml/drover/shared/redact"
)

// Webhook headers.
const (
	// SignatureHeader authenticates a request to the receiver and a
	// callback: "t=<unix seconds>,v1=<hex HMAC-SHA256>" keyed with the
	// webhook secret over "<job id>.<t>.<body>" (Sign). A message whose t is
	// more than SignatureWindow from now is refused, and the job id in the
	// MAC ties it to one job: a captured message cannot be replayed later
	// or against another job.
	SignatureHeader = "X-Drover-Signature"
	// TimestampHeader repeats t for receivers written against the first
	// format. Deprecated: read t from SignatureHeader.
	TimestampHeader = "X-Drover-Timestamp"
	// JobIDHeader carries the job id.
	JobIDHeader = "X-Drover-Job-Id"
)

// SignatureWindow is how far a signed message's time may be from the
// receiver's clock, either way.
const SignatureWindow = 5 * time.Minute

// Errors of Callback; Handler maps them to HTTP statuses.
var (
	ErrUnknownJob   = errors.New("unknown job")                          // 404
	ErrBadSignature = errors.New("bad or missing signature")             // 401
	ErrBadCallback  = errors.New("bad callback")                         // 400
	ErrStale        = errors.New("job is not running that attempt")      // 409
	ErrNoWebhook    = errors.New("the jobs executor is not the webhook") // 404
)

// CallbackRequest is the body of POST /v1/jobs/{id}/status.
type CallbackRequest struct {
	// State is "succeeded" or "failed".
	State string `json:"state"`
	// ResultVersion is the version the job published, if it did.
	ResultVersion uint64 `json:"result_version,omitempty"`
	// Error says why the job failed.
	Error string `json:"error,omitempty"`
	// Attempt is the Spec's attempt that this reports on; a callback for
	// another attempt is rejected (a replay, or a late report).
	Attempt int `json:"attempt"`
}

// Sign returns the SignatureHeader value of a message about job id sent
// at t with body: "t=<unix seconds>,v1=<hex HMAC-SHA256(secret,
// id + "." + t + "." + body)>".
func Sign(secret []byte, id string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, id, ts, body))
}

func mac(secret []byte, id, ts string, body []byte) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(id))
	h.Write([]byte("."))
	h.Write([]byte(ts))
	h.Write([]byte("."))
	h.Write(body)
	return h.Sum(nil)
}

// Verify checks a SignatureHeader value for a message about job id with
// body: one of its v1 values must be the HMAC (compared in constant time)
// and its t within SignatureWindow of now. The error says which check
// failed (never the expected value).
func Verify(secret []byte, id string, body []byte, header string, now time.Time) error {
	var ts string
	var sigs [][]byte
	for _, kv := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			if b, err := hex.DecodeString(v); err == nil {
				sigs = append(sigs, b)
			}
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return errors.New(`want "t=<unix seconds>,v1=<hex HMAC-SHA256>"`)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > SignatureWindow || d < -SignatureWindow {
		return fmt.Errorf("signed at %s, more than %s from now", time.Unix(sec, 0).UTC().Format(time.RFC3339), SignatureWindow)
	}
	want := mac(secret, id, ts, body)
	for _, s := range sigs {
		if hmac.Equal(s, want) {
			return nil
		}
	}
	return errors.New("the HMAC does not match (another secret, job or body)")
}

// waiter is a webhook attempt waiting for its callback on this node.
type waiter struct {
	attempt int
	ch      chan CallbackRequest // buffered 1
}

// webhookExecutor POSTs the spec and waits for the callback.
type webhookExecutor struct {
	m      *Manager
	cfg    WebhookConfig
	key    []byte
	client *http.Client
}

func (e *webhookExecutor) Execute(ctx context.Context, spec Spec) outcome {
	w := &waiter{attempt: spec.Attempt, ch: make(chan CallbackRequest, 1)}
	e.m.mu.Lock()
	e.m.waiters[spec.ID] = w
	e.m.mu.Unlock()
	defer func() {
		e.m.mu.Lock()
		if e.m.waiters[spec.ID] == w {
			delete(e.m.waiters, spec.ID)
		}
		e.m.mu.Unlock()
	}()
	deadline := time.NewTimer(e.cfg.Timeout)
	defer deadline.Stop()

	body, _ := json.Marshal(spec)
	if o, ok := e.post(ctx, spec, body); !ok {
		return o
	}
	select {
	case r := <-w.ch:
		if r.State == StateSucceeded {
			return outcome{state: StateSucceeded, resultVersion: r.ResultVersion}
		}
		msg := r.Error
		if msg == "" {
			msg = "the receiver reported failure"
		}
		return outcome{state: StateFailed, exitCode: -1, err: "webhook: " + msg}
	case <-deadline.C:
		return outcome{state: StateTimedOut, exitCode: -1, err: fmt.Sprintf("webhook: no callback within %s", e.cfg.Timeout)}
	case <-ctx.Done():
		return outcome{state: StateFailed, exitCode: -1, err: "aborted: " + context.Cause(ctx).Error()}
	}
}

// post sends the spec; ok is true if the receiver accepted it (2xx).
func (e *webhookExecutor) post(ctx context.Context, spec Spec, body []byte) (outcome, bool) {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return outcome{state: StateFailed, exitCode: -1, err: fmt.Sprintf("webhook: %v", err)}, false
	}
	now := e.m.now()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(TimestampHeader, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(JobIDHeader, spec.ID)
	req.Header.Set(SignatureHeader, Sign(e.key, spec.ID, now, body))
	client := e.client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return outcome{state: StateFailed, exitCode: -1, err: fmt.Sprintf("webhook: POST %s: %v", redact.URL(e.cfg.URL), redact.Text(err.Error()))}, false
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return outcome{state: StateFailed, exitCode: int32(resp.StatusCode),
			err: fmt.Sprintf("webhook: POST %s: %s: %s", redact.URL(e.cfg.URL), resp.Status, strings.TrimSpace(string(snippet)))}, false
	}
	return outcome{}, true
}

// Callback records a webhook receiver's report on a job: body is a
// CallbackRequest, signature its SignatureHeader (Sign over id and body,
// within SignatureWindow). It is
// accepted only while the job is running the attempt the body names: a
// replay or a late report gets ErrStale. If this node runs the attempt, the
// attempt ends with the report; otherwise (the receiver reached another
// collector) Callback writes the outcome itself, and the node running the
// attempt sees the new row at its next renewal and stops waiting. Errors
// wrap ErrNoWebhook, ErrBadSignature, ErrBadCallback, ErrUnknownJob or
// ErrStale, or are ClickHouse errors (retry the callback).
func (m *Manager) Callback(ctx context.Context, id string, body []byte, signature string) error {
	if m.secret == nil {
		return ErrNoWebhook
	}
	if err := Verify(m.secret, id, body, signature, m.now()); err != nil {
		return fmt.Errorf("job %s callback: %w: %v", id, ErrBadSignature, err)
	}
	var r CallbackRequest
	if err := json.Unmarshal(body, &r); err != nil {
		return fmt.Errorf("job %s callback: %w: %v", id, ErrBadCallback, err)
	}
	if r.State != StateSucceeded && r.State != StateFailed {
		return fmt.Errorf("job %s callback: %w: state %q: want %q or %q", id, ErrBadCallback, r.State, StateSucceeded, StateFailed)
	}
	if r.Attempt < 1 {
		return fmt.Errorf("job %s callback: %w: attempt must be the spec's attempt (>= 1)", id, ErrBadCallback)
	}
	m.mu.Lock()
	w := m.waiters[id]
	m.mu.Unlock()
	if w != nil {
		if w.attempt != r.Attempt {
			return fmt.Errorf("job %s callback for attempt %d: %w (running attempt %d)", id, r.Attempt, ErrStale, w.attempt)
		}
		select {
		case w.ch <- r:
		default: // a duplicate of a report already delivered
		}
		return nil
	}
	row, ok, err := m.tbl.latest(ctx, id)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("job %s: %w", id, ErrUnknownJob)
	}
	if row.State != StateRunning || int(row.Attempt) != r.Attempt {
		return fmt.Errorf("job %s callback for attempt %d: %w (job is %s, attempt %d)", id, r.Attempt, ErrStale, row.State, row.Attempt)
	}
	o := outcome{state: StateSucceeded, resultVersion: r.ResultVersion}
	if r.State == StateFailed {
		o = outcome{state: StateFailed, exitCode: -1, err: "webhook: " + r.Error}
	}
	o = m.publishedResult(ctx, row.Model, id, o)
	_, err = m.finish(ctx, row, o, true)
	return err
}
