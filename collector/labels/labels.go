// Package labels makes labels count fleet-wide (issue 14, docs/fleet.md):
// it stores the labels clients post to a collector's
// POST /v2/models/{model}/feedback (or that an agent forwards there because
// it did not sample the request) in the labels table (migration
// 0014_labels), and joins them with the sampled requests (samples) by
// request id at read time. That join is what drift's metric signal
// (collector/drift) and the read views (collector/views) count as the
// accuracy, F1, MSE and MAE of source labels.
//
// A label whose request was not (or not yet) sampled is stored too: it is
// counted when it arrives (drover_collector_labels_total, status
// unsampled) and by Store.Unsampled at read time, and it joins once its
// sample arrives.
package labels

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/drover-ml/drover/shared/feedback"
)

// Sources of a label (the source column).
const (
	// SourceCollector: a client posted the label to a collector.
	SourceCollector = "collector"
	// SourceAgent: an agent that did not sample the request forwarded it.
	SourceAgent = "agent"
)

// Table is the labels table (migration 0014_labels).
const Table = "labels"

// Label is one stored label.
type Label struct {
	// Time is when the collector received it.
	Time  time.Time
	Model string
	// RequestID is the id as sent; "X#N" names element N of the batch
	// request X (the agent's convention for batches, agent/monitor).
	RequestID string
	// Label is the label's JSON text as decoded by shared/feedback (a
	// string, a number or a boolean).
	Label string
	// Source is SourceCollector or SourceAgent; Sender the token's name
	// (or the agent's).
	Source, Sender string
}

// Store writes and reads the labels table. It is safe for concurrent use
// and does not own conn.
type Store struct {
	conn driver.Conn
	db   string
}

// NewStore returns a Store on database (in cluster mode the distributed
// tables have the plain names, so the same queries serve both modes).
func NewStore(conn driver.Conn, database string) *Store {
	return &Store{conn: conn, db: database}
}

func (s *Store) table(name string) string { return "`" + s.db + "`.`" + name + "`" }

// Insert writes ls in one INSERT. An error is retryable (ClickHouse is
// down or refused the batch): nothing of ls is stored then, as a batch is
// one insert.
func (s *Store) Insert(ctx context.Context, ls []Label) error {
	if len(ls) == 0 {
		return nil
	}
	b, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+s.table(Table)+" (time, model, request_id, label, source, sender)")
	if err != nil {
		return fmt.Errorf("insert %d labels: %w", len(ls), err)
	}
	defer b.Abort()
	for _, l := range ls {
		if err := b.Append(l.Time, l.Model, l.RequestID, l.Label, l.Source, l.Sender); err != nil {
			return fmt.Errorf("insert %d labels: %w", len(ls), err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("insert %d labels: %w", len(ls), err)
	}
	return nil
}

// batchSuffix matches the "#N" that names an element of a batch request.
var batchSuffix = regexp.MustCompile(`#[0-9]+$`)

// baseID returns the id of the sampled request a label id names: id
// without a trailing "#N", and N (0 without one).
func baseID(id string) (string, int) {
	loc := batchSuffix.FindStringIndex(id)
	if loc == nil {
		return id, 0
	}
	var n int
	if _, err := fmt.Sscan(id[loc[0]+1:], &n); err != nil {
		return id, 0
	}
	return id[:loc[0]], n
}

// baseSQL is baseID's first result in ClickHouse.
const baseSQL = `replaceRegexpOne(request_id, '#[0-9]+$', '')`

// Sampled returns which of ids (label ids of model) have a sampled request
// stored now: the id itself, or for "X#N" the request X. It reads samples
// since since (a sample older than that is not looked for).
func (s *Store) Sampled(ctx context.Context, model string, ids []string, since time.Time) (map[string]bool, error) {
	if len(ids) == 0 {
		return map[string]bool{}, nil
	}
	look := make([]string, 0, 2*len(ids))
	for _, id := range ids {
		look = append(look, id)
		if b, _ := baseID(id); b != id {
			look = append(look, b)
		}
	}
	q := fmt.Sprintf(`SELECT DISTINCT request_id FROM %s WHERE model = ? AND request_id IN (?) AND time >= %s`,
		s.table("samples"), nanos(since))
	rows, err := s.conn.Query(ctx, q, model, look)
	if err != nil {
		return nil, fmt.Errorf("look up samples of %s: %w", model, err)
	}
	defer rows.Close()
	have := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("look up samples of %s: %w", model, err)
		}
		have[id] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("look up samples of %s: %w", model, err)
	}
	out := make(map[string]bool, len(ids))
	for _, id := range ids {
		b, _ := baseID(id)
		out[id] = have[id] || have[b]
	}
	return out, nil
}

// Unsampled counts the distinct label ids of model received in [from, to)
// that join no sampled request (samples since from − lookback): labels
// for requests that were not sampled, or whose sample has not arrived.
func (s *Store) Unsampled(ctx context.Context, model string, from, to time.Time, lookback time.Duration) (uint64, error) {
	q := fmt.Sprintf(`SELECT count() FROM (
    SELECT request_id, %[1]s AS base FROM %[2]s
    WHERE model = ? AND time >= %[3]s AND time < %[4]s GROUP BY request_id)
WHERE request_id NOT IN (SELECT request_id FROM %[5]s WHERE model = ? AND time >= %[6]s)
  AND base NOT IN (SELECT request_id FROM %[5]s WHERE model = ? AND time >= %[6]s)`,
		baseSQL, s.table(Table), nanos(from), nanos(to), s.table("samples"), nanos(from.Add(-lookback)))
	var n uint64
	if err := s.conn.QueryRow(ctx, q, model, model, model).Scan(&n); err != nil {
		return 0, fmt.Errorf("count unsampled labels of %s: %w", model, err)
	}
	return n, nil
}

// MaxJoinRows bounds the rows one Join reads (labels joined to samples).
const MaxJoinRows = 500_000

// Joined is one label joined with its sampled request.
type Joined struct {
	Version   string
	RequestID string // the label's id
	Outputs   string // the sample's outputs (OIP JSON)
	Element   int    // the element of the batch the label is for
	Label     string // the label's JSON text (the latest received)
	// Inputs (the sample's inputs, OIP JSON) and Time (when the request
	// was sampled) are filled by Labelled only.
	Inputs string
	Time   time.Time
}

// Join returns the labels of model joined with the samples of model
// (version: that version only; empty: every version) taken in [from, to).
// A label counts when received at or after from; when an id was labelled
// several times the latest label counts; an id "X#N" joins element N of
// sample X unless a sample has the id itself. At most MaxJoinRows rows.
func (s *Store) Join(ctx context.Context, model, version string, from, to time.Time) ([]Joined, error) {
	return s.join(ctx, model, version, from, to, false)
}

// Labelled returns what Join returns for every version of model, with
// each sample's inputs and time, oldest sample first (then by label id):
// the labelled rows the built-in optimizer trains on (docs/optimize.md).
// At most MaxJoinRows rows.
func (s *Store) Labelled(ctx context.Context, model string, from, to time.Time) ([]Joined, error) {
	js, err := s.join(ctx, model, "", from, to, true)
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(js, func(a, b Joined) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		return strings.Compare(a.RequestID, b.RequestID)
	})
	return js, nil
}

func (s *Store) join(ctx context.Context, model, version string, from, to time.Time, inputs bool) ([]Joined, error) {
	op := fmt.Sprintf("join labels of %s with samples", model)
	// With inputs, the samples side also reads each request's inputs and
	// time; else constants, so that Join reads no inputs.
	extra := "'' AS i, toDateTime64(0, 9, 'UTC') AS t"
	if inputs {
		extra = "any(inputs) AS i, min(time) AS t"
	}
	// The samples side reads only the ids labelled since from (and the
	// requests their "#N" ids name), through the request_id bloom filter,
	// so a model without labels costs a look at the labels' primary key.
	vf, sargs := "", []any{model}
	if version != "" {
		vf, sargs = " AND model_version = ?", append(sargs, version)
	}
	sargs = append(sargs, model)
	samples := fmt.Sprintf(`SELECT request_id, any(model_version) AS v, any(outputs) AS o, %s FROM %s
        WHERE model = ?%s AND time >= %s AND time < %s
          AND request_id IN (SELECT arrayJoin([request_id, %s]) FROM %s WHERE model = ? AND time >= %s)
        GROUP BY request_id`, extra, s.table("samples"), vf, nanos(from), nanos(to), baseSQL, s.table(Table), nanos(from))
	q := fmt.Sprintf(`SELECT s.v, l.id, s.o, s.request_id = l.id AS exact, l.label, s.i, s.t FROM (
    SELECT request_id AS id, %[1]s AS base, argMax(label, time) AS label FROM %[2]s
    WHERE model = ? AND time >= %[3]s GROUP BY request_id) AS l
INNER JOIN (%[4]s) AS s ON s.request_id = l.base
UNION ALL
SELECT s.v, l.id, s.o, 1, l.label, s.i, s.t FROM (
    SELECT request_id AS id, argMax(label, time) AS label FROM %[2]s
    WHERE model = ? AND time >= %[3]s AND match(request_id, '#[0-9]+$') GROUP BY request_id) AS l
INNER JOIN (%[4]s) AS s ON s.request_id = l.id
LIMIT %[5]d`, baseSQL, s.table(Table), nanos(from), samples, MaxJoinRows)
	// Arguments in order, twice: the labels' model, then the samples'.
	all := append([]any{model}, sargs...)
	all = append(all, all...)
	rows, err := s.conn.Query(ctx, q, all...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	defer rows.Close()
	type pick struct {
		j     Joined
		exact bool
	}
	byID := map[string]pick{}
	var order []string
	for rows.Next() {
		var j Joined
		var exact bool
		if err := rows.Scan(&j.Version, &j.RequestID, &j.Outputs, &exact, &j.Label, &j.Inputs, &j.Time); err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		if !exact {
			_, j.Element = baseID(j.RequestID)
		}
		prev, seen := byID[j.RequestID]
		if !seen {
			order = append(order, j.RequestID)
		}
		if !seen || exact && !prev.exact {
			byID[j.RequestID] = pick{j, exact}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	out := make([]Joined, 0, len(order))
	for _, id := range order {
		out = append(out, byID[id].j)
	}
	return out, nil
}

// nanos renders t as a DateTime64(9) literal.
func nanos(t time.Time) string {
	return fmt.Sprintf("fromUnixTimestamp64Nano(%d, 'UTC')", t.UnixNano())
}

// labelJSON renders a decoded label (feedback.Feedback.Label) as the JSON
// text stored in the label column.
func labelJSON(label any) (string, error) {
	switch v := label.(type) {
	case json.Number:
		return string(v), nil
	case string, bool:
		b, err := json.Marshal(v)
		return string(b), err
	}
	return "", fmt.Errorf("label of type %T", label)
}

// parseStored decodes a stored label's JSON text.
func parseStored(text string) (any, error) {
	if strings.TrimSpace(text) == "" {
		return nil, errors.New("empty label")
	}
	return feedback.ParseLabel(json.RawMessage(text))
}

// Metrics is the labels' verdict for one version, as the canary analysis
// reads it (analysis.LabelMetrics): the labels joined to the version's
// samples taken in [from, to), and their accuracy and F1 or MSE and MAE.
func (s *Store) Metrics(ctx context.Context, model, version string, from, to time.Time) (uint64, map[string]float64, error) {
	js, err := s.Join(ctx, model, version, from, to)
	if err != nil {
		return 0, nil, err
	}
	m := Evaluate(js)[version]
	return uint64(m.N), m.Values, nil
}
