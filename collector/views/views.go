// Package views serves the read views of the admin API (docs/admin-api.md):
// models, versions side by side, version diffs, drift, incidents and a
// model's history, computed from what the collector stores in ClickHouse
// (docs/schema.md) and from the model registry's version records, read
// through collector/registry's Reader (docs/registry.md). It holds no state
// of its own: every request runs a few bounded queries (each with a LIMIT,
// times as literals so that ClickHouse prunes day partitions, names as
// query parameters), so any collector of a cluster answers the same.
//
// The handlers are not registered anywhere by this package: Routes returns
// them keyed by their net/http patterns, and the admin server mounts them
// behind its authentication (every route needs the reader role).
package views

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/drover-ml/drover/collector/registry"
	"github.com/drover-ml/drover/collector/store"
	"github.com/drover-ml/drover/shared/manifest"
)

// Defaults and bounds of the views.
const (
	// DefaultSince is the versions window when ?since= is absent.
	DefaultSince = 24 * time.Hour
	// MaxSince bounds ?since= (the raw tables' default TTL).
	MaxSince = 30 * 24 * time.Hour
	// NowWindow is what "now" means for serving versions, hosts, requests
	// per second and error rate in GET /v1/models.
	NowWindow = 5 * time.Minute
	// ModelsWindow is how far back GET /v1/models looks for models the
	// fleet reports.
	ModelsWindow = 24 * time.Hour
	// DefaultHistorySince and DefaultHistoryLimit bound GET
	// /v1/models/{model}/history without ?since= / ?limit=; MaxHistoryLimit
	// bounds ?limit=.
	DefaultHistorySince = 30 * 24 * time.Hour
	DefaultHistoryLimit = 500
	MaxHistoryLimit     = 5000
	// maxRows bounds every query that returns one row per host, series or
	// version: memory never grows with what is stored.
	maxRows = 100000
	// maxList bounds lists of models, versions and incidents.
	maxList = 1000
)

// Views answers the admin API's read views from ClickHouse. It is safe for
// concurrent use; it does not own conn (the caller closes it).
type Views struct {
	conn    driver.Conn
	db      string
	records *registry.Reader
	owner   func(model string) (string, bool)
	now     func() time.Time
	log     *slog.Logger
}

// Option configures Views.
type Option func(*Views)

// WithOwner sets how a model's owner (the collector that runs its drift
// checks and jobs) is found; without it, "owner" is null. f must be safe
// for concurrent use; false means no owner is known.
func WithOwner(f func(model string) (string, bool)) Option { return func(v *Views) { v.owner = f } }

// WithClock sets the clock that "now" is read from (tests).
func WithClock(now func() time.Time) Option { return func(v *Views) { v.now = now } }

// WithLogger sets the logger for failed queries (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(v *Views) { v.log = l } }

// New returns the views over database (default "drover") through conn.
func New(conn driver.Conn, database string, opts ...Option) *Views {
	if database == "" {
		database = "drover"
	}
	v := &Views{conn: conn, db: database, records: registry.NewReader(conn, database), now: time.Now, log: slog.Default()}
	for _, o := range opts {
		o(v)
	}
	return v
}

// Routes returns the handlers keyed by their Go 1.22 net/http patterns.
// Every route is a read and needs the reader role (admin includes it).
func (v *Views) Routes() map[string]http.Handler {
	return map[string]http.Handler{
		"GET /v1/models":                  http.HandlerFunc(v.models),
		"GET /v1/models/{model}/versions": http.HandlerFunc(v.versions),
		"GET /v1/models/{model}/diff":     http.HandlerFunc(v.diff),
		"GET /v1/models/{model}/drift":    http.HandlerFunc(v.drift),
		"GET /v1/incidents":               http.HandlerFunc(v.incidents),
		"GET /v1/models/{model}/history":  http.HandlerFunc(v.history),
	}
}

// httpError is an error with the status the API answers it with.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &httpError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) error {
	return &httpError{http.StatusNotFound, fmt.Sprintf(format, args...)}
}

// modelName returns the path's model, or a 400 error when the manifest's
// name rules reject it (such a name can never have been stored).
func modelName(s string) (string, error) {
	if !manifest.ValidName(s) {
		return "", badRequest("invalid model name %q: letters, digits, '_', '.', '-', starting with a letter or digit, at most 128", s)
	}
	return s, nil
}

// reply writes body as JSON, or err as {"error": ...} with its status: 400
// and 404 for httpErrors, 503 when ClickHouse cannot answer now, 500
// otherwise (logged).
func (v *Views) reply(w http.ResponseWriter, r *http.Request, body any, err error) {
	if err != nil {
		status := http.StatusInternalServerError
		var he *httpError
		switch {
		case errors.As(err, &he):
			status = he.status
		case store.IsRetryable(err):
			status = http.StatusServiceUnavailable
		}
		if status >= 500 {
			v.log.Warn("admin view failed", "path", r.URL.Path, "status", status, "err", err)
		}
		writeJSON(w, status, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, body)
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // reasons hold "psi 0.31 > 0.2"
	enc.SetIndent("", "  ")
	if err := enc.Encode(body); err != nil {
		status = http.StatusInternalServerError
		b.Reset()
		json.NewEncoder(&b).Encode(map[string]string{"error": "encode answer: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

// fptr returns a pointer to x, or nil when x is not a finite number.
func fptr(x float64) *float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return nil
	}
	return &x
}

func sptr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func tptr(t time.Time) *time.Time {
	if t.IsZero() || t.Unix() <= 0 {
		return nil
	}
	t = t.UTC()
	return &t
}
