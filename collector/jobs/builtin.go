package jobs

import (
	"context"
	"errors"
)

// Executor runs one attempt of a job inside the collector: the built-in
// optimizer (collector/optimize) is one. The Manager calls Execute while it
// holds the job's lease; ctx is cancelled when the lease is lost, the job
// is cancelled or the collector stops, and Execute must then return soon
// (its Result is discarded). Execute must be safe for concurrent use: the
// Manager runs up to max_concurrent jobs at once.
type Executor interface {
	Execute(ctx context.Context, spec Spec) Result
}

// Result is the outcome of one attempt of an Executor.
type Result struct {
	// Version is the version the attempt published; 0 for none.
	Version uint64
	// Report is stored with the job (jobs.report) and answered by GET
	// /v1/jobs/{id} as its report: JSON, or nil for none.
	Report []byte
	// Err is nil when the attempt succeeded; else its text is the job's
	// error and the attempt is retried while retries are left.
	Err error
}

// ErrPermanent marks an Executor's error that retrying cannot cure (the
// data or the model is unusable as it is): the job fails at once, without
// the retries left. Permanent wraps an error so.
var ErrPermanent = errors.New("permanent failure")

// Permanent returns err marked with ErrPermanent; its text is err's.
func Permanent(err error) error { return permanentError{err} }

type permanentError struct{ err error }

func (p permanentError) Error() string        { return p.err.Error() }
func (p permanentError) Unwrap() error        { return p.err }
func (p permanentError) Is(target error) bool { return target == ErrPermanent }

// inProcess adapts an Executor to the Manager's executor.
type inProcess struct{ e Executor }

func (p inProcess) Execute(ctx context.Context, spec Spec) outcome {
	r := p.e.Execute(ctx, spec)
	o := outcome{state: StateSucceeded, resultVersion: r.Version, report: string(r.Report)}
	if r.Err != nil {
		o.state, o.exitCode, o.err, o.permanent = StateFailed, 1, r.Err.Error(), errors.Is(r.Err, ErrPermanent)
	}
	return o
}

// ExecutorFunc is a function as an Executor.
type ExecutorFunc func(ctx context.Context, spec Spec) Result

// Execute calls f.
func (f ExecutorFunc) Execute(ctx context.Context, spec Spec) Result { return f(ctx, spec) }
