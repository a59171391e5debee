package cli

import (
	"context"
	"strconv"
	"strings"
	"time"
)

// completionTimeout bounds the API calls of a shell completion: a shell
// waits for them on every <TAB>.
const completionTimeout = 3 * time.Second

// CompleteModels returns the model names starting with prefix, from
// GET /v1/models; none when the collector cannot be asked.
func (a *App) CompleteModels(ctx context.Context, prefix string) []string {
	cl, err := a.Client()
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, completionTimeout)
	defer cancel()
	models, _, err := cl.Models(ctx)
	if err != nil {
		return nil
	}
	var out []string
	for _, m := range models {
		if strings.HasPrefix(m.Name, prefix) {
			out = append(out, m.Name)
		}
	}
	return out
}

// CompleteVersions returns a model's version numbers starting with
// prefix, from GET /v1/models/{model}/versions.
func (a *App) CompleteVersions(ctx context.Context, model, prefix string) []string {
	cl, err := a.Client()
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, completionTimeout)
	defer cancel()
	versions, _, err := cl.Versions(ctx, model, 0)
	if err != nil {
		return nil
	}
	var out []string
	for _, v := range versions {
		if n := strconv.FormatUint(v.Version, 10); strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	return out
}
