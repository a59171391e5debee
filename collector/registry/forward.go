package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/drover-ml/drover/collector/forward"
)

// PatternCommit commits staged blobs as a version: the second step of the
// two-step publish (PatternStage, then this), and the route through which
// a collector that received a publish or a merge hands its Commit to the
// model's ring owner, which allocates the version number (docs/registry.md,
// "Version numbers in a cluster"). The body is a Commit as JSON; the
// answer is a PublishResult. It needs a publisher token: the forwarding
// collector passes the caller's bearer token on.
const PatternCommit = "POST /v1/models/{model}/commit"

// HeaderForwardedBy names the collector that forwarded a commit
// (forward.HeaderForwardedBy).
const HeaderForwardedBy = forward.HeaderForwardedBy

// errNotOwner: a forwarded commit reached a collector that does not own
// the model (the ring changed under the forwarder). It answers 503 and the
// forwarder asks the ring again.
var errNotOwner = errors.New("not the owner of the model")

// OwnerFunc says who owns model: this collector (self), or another one
// reached at admin (host:port of its admin API). ok is false when no owner
// is known (the ring is not running, or the owner advertises no admin
// address).
type OwnerFunc func(model string) (self bool, admin string, ok bool)

// ForwardOptions configure a Forwarder.
type ForwardOptions struct {
	// Node is this collector's name (sent in HeaderForwardedBy).
	Node string
	// Owner finds the model's owner (the ring).
	Owner OwnerFunc
	// Client sends forwarded commits; default a client without a timeout
	// (each commit is bounded by its context and Wait). With admin TLS its
	// transport carries the TLS configuration that verifies the peers
	// (and presents this node's client certificate).
	Client *http.Client
	// Scheme is the owners' admin API scheme: "http" (default) or
	// "https" (admin TLS, the same on every collector of a cluster).
	Scheme string
	// Wait bounds how long a commit looks for an owner that answers:
	// while the owner is unreachable, leaving or not (yet) the owner in
	// its own view, the forwarder asks the ring again and retries.
	// Default 30s, longer than memberlist takes to declare a dead node
	// dead with the default timings.
	Wait time.Duration
	// Retry is the pause between attempts; default 250ms.
	Retry time.Duration
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// Forwarder makes every Commit of a model run on the model's ring owner,
// so version numbers are allocated by one Registry per model (its lock)
// whichever collector receives the publish. Its Commit is the CommitFunc
// to give Routes, whose PatternCommit handler also serves the commits
// other collectors forward here.
//
// If the owner dies after committing but before answering, the retry
// reaches the new owner, which finds the same content already a version of
// the model and returns that version (created false): nothing is numbered
// twice and the acknowledged publish is the committed one.
type Forwarder struct {
	reg *Registry
	o   ForwardOptions
}

// NewForwarder returns a Forwarder committing locally through reg.
func NewForwarder(reg *Registry, o ForwardOptions) *Forwarder {
	if o.Client == nil {
		o.Client = &http.Client{}
	}
	if o.Scheme == "" {
		o.Scheme = "http"
	}
	if o.Wait <= 0 {
		o.Wait = 30 * time.Second
	}
	if o.Retry <= 0 {
		o.Retry = 250 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Forwarder{reg: reg, o: o}
}

// credentialKey carries the Authorization header of the request a commit
// continues, for the forwarded request.
type credentialKey struct{}

// forwardedKey marks a commit another collector forwarded (its value is
// that collector's name): it is committed here or refused, never
// forwarded again.
type forwardedKey struct{}

func withCredential(ctx context.Context, authorization string) context.Context {
	return context.WithValue(ctx, credentialKey{}, authorization)
}

// Commit commits c on the model's owner: here when this collector owns it,
// else over the owner's admin API. It retries (asking the ring each time)
// while no owner answers, for up to Wait; errors of the commit itself (bad
// input, a missing parent) are returned at once.
func (f *Forwarder) Commit(ctx context.Context, c Commit) (Version, bool, error) {
	body, err := json.Marshal(c)
	if err != nil {
		return Version{}, false, fmt.Errorf("commit %s: %w", c.Model, err)
	}
	deadline := time.Now().Add(f.o.Wait)
	for attempt := 1; ; attempt++ {
		self, admin, ok := f.o.Owner(c.Model)
		if self {
			return f.reg.Commit(ctx, c)
		}
		if by, _ := ctx.Value(forwardedKey{}).(string); by != "" {
			return Version{}, false, fmt.Errorf("%w %s (forwarded by %q)", errNotOwner, c.Model, by)
		}
		var v Version
		var created bool
		err := fmt.Errorf("no owner of %s is known yet", c.Model)
		if ok {
			v, created, err = f.send(ctx, admin, c.Model, body)
			if err == nil {
				f.o.Logger.Info("registry: commit forwarded to the owner", "model", c.Model, "owner", admin, "version", v.Version, "created", created)
				return v, created, nil
			}
			// 503: the owner is not ready, leaving, or not the owner in its
			// own view. 401: the token, accepted here, has not reached the
			// owner's token cache yet (auth.refresh_interval). Both pass.
			var final *forward.Error
			if errors.As(err, &final) && final.Code != http.StatusServiceUnavailable && final.Code != http.StatusUnauthorized {
				return Version{}, false, fmt.Errorf("commit %s on %s: %w", c.Model, admin, err)
			}
		}
		if ctx.Err() != nil || time.Now().Add(f.o.Retry).After(deadline) {
			return Version{}, false, fmt.Errorf("commit %s: no owner answered in %s (%d attempts): %w", c.Model, f.o.Wait, attempt, err)
		}
		f.o.Logger.Warn("registry: commit not forwarded; retrying", "model", c.Model, "owner", admin, "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return Version{}, false, fmt.Errorf("commit %s: %w", c.Model, ctx.Err())
		case <-time.After(f.o.Retry):
		}
	}
}

func (f *Forwarder) send(ctx context.Context, admin, model string, body []byte) (Version, bool, error) {
	cred, _ := ctx.Value(credentialKey{}).(string)
	u := f.o.Scheme + "://" + admin + "/v1/models/" + url.PathEscape(model) + "/commit"
	b, err := forward.Post(ctx, f.o.Client, u, f.o.Node, cred, body, maxMetaBytes)
	if err != nil {
		return Version{}, false, err
	}
	var res PublishResult
	if err := json.Unmarshal(b, &res); err != nil || res.Version == 0 {
		return Version{}, false, fmt.Errorf("the owner's answer %q: %v", b, err)
	}
	return Version{Model: model, Version: res.Version, ContentID: res.ContentID}, res.Created, nil
}
