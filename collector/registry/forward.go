package registry

import (
	"context"
	"encoding/json"
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

// OwnerFunc says who owns a model (forward.OwnerFunc).
type OwnerFunc = forward.OwnerFunc

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

func withCredential(ctx context.Context, authorization string) context.Context {
	return forward.WithCaller(ctx, authorization, "")
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
	type result struct {
		v       Version
		created bool
	}
	r, err := forward.ToOwner(ctx, forward.Retry{Owner: f.o.Owner, Wait: f.o.Wait, Pause: f.o.Retry, Logger: f.o.Logger}, "commit", c.Model,
		func() (result, error) {
			v, created, err := f.reg.Commit(ctx, c)
			return result{v, created}, err
		},
		func(admin string) (result, error) {
			v, created, err := f.send(ctx, admin, c.Model, body)
			if err == nil {
				f.o.Logger.Info("registry: commit forwarded to the owner", "model", c.Model, "owner", admin, "version", v.Version, "created", created)
			}
			return result{v, created}, err
		})
	return r.v, r.created, err
}

func (f *Forwarder) send(ctx context.Context, admin, model string, body []byte) (Version, bool, error) {
	cred := forward.Credential(ctx)
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
