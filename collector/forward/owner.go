package forward

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"
)

// ErrNotOwner: a forwarded request reached a collector that does not own
// the model (the ring changed under the forwarder). The receiver answers
// 503 (its default for errors it does not classify) and the forwarder asks
// the ring again.
var ErrNotOwner = errors.New("not the owner of the model")

// OwnerFunc says who owns model: this collector (self), or another one
// reached at admin (host:port of its admin API). ok is false when no owner
// is known (the ring is not running, or the owner advertises no admin
// address).
type OwnerFunc func(model string) (self bool, admin string, ok bool)

// credentialKey carries the Authorization header of the request a
// forwarded call continues; forwardedKey marks a call another collector
// forwarded (its value is that collector's name).
type (
	credentialKey struct{}
	forwardedKey  struct{}
)

// WithCaller returns ctx carrying what a handler received: the caller's
// Authorization header (passed on when the call is forwarded) and the
// HeaderForwardedBy value ("" when a client called this collector
// directly; otherwise the call is handled here or refused, never
// forwarded again).
func WithCaller(ctx context.Context, authorization, forwardedBy string) context.Context {
	ctx = context.WithValue(ctx, credentialKey{}, authorization)
	if forwardedBy != "" {
		ctx = context.WithValue(ctx, forwardedKey{}, forwardedBy)
	}
	return ctx
}

// Credential returns the Authorization header WithCaller put in ctx.
func Credential(ctx context.Context) string {
	s, _ := ctx.Value(credentialKey{}).(string)
	return s
}

// ForwardedBy returns the forwarding collector's name WithCaller put in
// ctx ("" for a direct call).
func ForwardedBy(ctx context.Context) string {
	s, _ := ctx.Value(forwardedKey{}).(string)
	return s
}

// Retry configures ToOwner.
type Retry struct {
	// Owner finds the model's owner (the ring); nil: this collector owns
	// every model.
	Owner OwnerFunc
	// Wait bounds how long a call looks for an owner that answers; Pause
	// is the pause between attempts. Both must be > 0.
	Wait, Pause time.Duration
	// Now is the clock of the deadline; nil: time.Now.
	Now func() time.Time
	// Logger logs each retry; nil: slog.Default().
	Logger *slog.Logger
}

// ToOwner runs a call on the model's ring owner: local() when this
// collector owns model, else remote(admin) with the owner's admin address.
// While no owner is known, or the owner answers 503 (not ready, leaving,
// not the owner in its own view) or 401 (the caller's token has not yet
// reached the owner's token cache), it asks the ring again after Pause, for
// up to Wait. Any other error of remote (an *Error: bad input, a conflict)
// and every error of local are returned at once, as is ErrNotOwner when
// ctx says the call was forwarded here (WithCaller) and this collector is
// not the owner. what names the call in errors and logs ("commit",
// "rollout").
func ToOwner[T any](ctx context.Context, r Retry, what, model string, local func() (T, error), remote func(admin string) (T, error)) (T, error) {
	now := r.Now
	if now == nil {
		now = time.Now
	}
	log := r.Logger
	if log == nil {
		log = slog.Default()
	}
	var zero T
	deadline := now().Add(r.Wait)
	for attempt := 1; ; attempt++ {
		self, admin, ok := true, "", false
		if r.Owner != nil {
			self, admin, ok = r.Owner(model)
		}
		if self {
			return local()
		}
		if by := ForwardedBy(ctx); by != "" {
			return zero, fmt.Errorf("%w %s (forwarded by %q)", ErrNotOwner, model, by)
		}
		err := fmt.Errorf("no owner of %s is known yet", model)
		if ok {
			var v T
			if v, err = remote(admin); err == nil {
				return v, nil
			}
			var final *Error
			if errors.As(err, &final) && final.Code != http.StatusServiceUnavailable && final.Code != http.StatusUnauthorized {
				return zero, fmt.Errorf("%s %s on %s: %w", what, model, admin, err)
			}
		}
		if ctx.Err() != nil || now().Add(r.Pause).After(deadline) {
			return zero, fmt.Errorf("%s %s: no owner answered in %s (%d attempts): %w", what, model, r.Wait, attempt, err)
		}
		log.Warn("owner did not answer; retrying", "call", what, "model", model, "owner", admin, "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return zero, fmt.Errorf("%s %s: %w", what, model, ctx.Err())
		case <-time.After(r.Pause):
		}
	}
}
