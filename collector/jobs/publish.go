package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/drover-ml/drover/collector/auth"
	"github.com/drover-ml/drover/collector/registry"
)

// publishing is what a command or webhook attempt needs to publish its
// result through the registry: the admin URL of this collector and the
// key that signs the attempt's token. The zero value gives attempts
// neither (they may still publish into the model store, the old way).
type publishing struct {
	url string
	key []byte
}

// recentByJob is how many of a model's newest records are searched for the
// version a job published.
const recentByJob = 100

// attemptTimeout is how long one attempt of the configured executor may
// run: the life of its publish token. Zero for an executor that publishes
// by itself (the builtin one).
func (m *Manager) attemptTimeout() time.Duration {
	switch m.cfg.Executor {
	case ExecutorCommand:
		return m.cfg.Command.Timeout
	case ExecutorWebhook:
		return m.cfg.Webhook.Timeout
	}
	return 0
}

// withPublish gives spec, an attempt that starts now, the publish URL and a
// token (auth.IssueJobToken) for spec.Model, expiring when the attempt's
// timeout ends. Both stay empty without a publish URL or key.
func (m *Manager) withPublish(spec *Spec) error {
	d := m.attemptTimeout()
	if m.pub.url == "" || m.pub.key == nil || d <= 0 {
		return nil
	}
	tok, err := auth.IssueJobToken(m.pub.key, spec.Model, spec.ID, m.now().Add(d))
	if err != nil {
		return fmt.Errorf("publish token of %s: %w", spec.ID, err)
	}
	spec.PublishURL, spec.PublishToken = m.pub.url, tok
	return nil
}

// publishedResult returns out with, when it succeeded, the result version
// that the registry knows the job published: the highest active version
// of model whose lineage job is id. That version wins over what the
// executor reported (a DROVER_RESULT_VERSION line, a callback's
// result_version, the newest model-store directory); when the registry has
// none (the job published nothing, published content the model already
// had, or only into the model store) or cannot be read, the executor's
// report stands.
func (m *Manager) publishedResult(ctx context.Context, model, id string, out outcome) outcome {
	if out.state != StateSucceeded {
		return out
	}
	v, ok, err := publishedBy(ctx, m.tbl, model, id)
	if err != nil {
		m.log.Warn("look up the version the job published; keeping the executor's report", "job", id, "model", model,
			"reported", out.resultVersion, "err", err)
		return out
	}
	if !ok {
		return out
	}
	if out.resultVersion != 0 && out.resultVersion != v {
		m.log.Info("job reported another version than the one it published with lineage.job; the registry's wins",
			"job", id, "model", model, "reported", out.resultVersion, "published", v)
	}
	out.resultVersion = v
	return out
}

// publishedBy returns the highest active version of model published with
// lineage job id, among its newest recentByJob records.
func publishedBy(ctx context.Context, t *table, model, id string) (uint64, bool, error) {
	vs, err := registry.NewReader(t.conn, t.db).Newest(ctx, model, recentByJob)
	if err != nil {
		return 0, false, fmt.Errorf("versions of %s published by %s: %w", model, id, err)
	}
	var best uint64
	for _, v := range vs {
		if v.Job == id && v.State == registry.StateActive {
			best = max(best, v.Version)
		}
	}
	return best, best != 0, nil
}
