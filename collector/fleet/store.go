package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// The tables of migration 0013_fleet.
const (
	TableDesired = "desired_state"
	TableAgents  = "agents"
)

// tables reads and writes desired_state and agents.
type tables struct {
	conn    driver.Conn
	desired string
	agents  string
	cluster bool
}

const desiredColumns = "model, revision, serving, previous, canary_version, canary_share, canary_auto, canary_analysis, canary_started, " +
	"shadow_version, shadow_share, pinned, selector, changed_by, changed_at, reason, change"

type desiredRow struct {
	Model          string            `ch:"model"`
	Revision       uint64            `ch:"revision"`
	Serving        uint64            `ch:"serving"`
	Previous       uint64            `ch:"previous"`
	CanaryVersion  uint64            `ch:"canary_version"`
	CanaryShare    uint8             `ch:"canary_share"`
	CanaryAuto     bool              `ch:"canary_auto"`
	CanaryAnalysis string            `ch:"canary_analysis"`
	CanaryStarted  time.Time         `ch:"canary_started"`
	ShadowVersion  uint64            `ch:"shadow_version"`
	ShadowShare    uint8             `ch:"shadow_share"`
	Pinned         bool              `ch:"pinned"`
	Selector       map[string]string `ch:"selector"`
	ChangedBy      string            `ch:"changed_by"`
	ChangedAt      time.Time         `ch:"changed_at"`
	Reason         string            `ch:"reason"`
	Change         string            `ch:"change"`
}

func toRow(s State) (desiredRow, error) {
	r := desiredRow{Model: s.Model, Revision: s.Revision, Serving: s.Serving, Previous: s.Previous, Pinned: s.Pinned,
		Selector: s.Selector, ChangedBy: s.ChangedBy, ChangedAt: s.ChangedAt, Reason: s.Reason, Change: s.Change,
		CanaryStarted: time.Unix(0, 0).UTC()}
	if r.Selector == nil {
		r.Selector = map[string]string{}
	}
	if c := s.Canary; c != nil {
		r.CanaryVersion, r.CanaryShare, r.CanaryAuto, r.CanaryStarted = c.Version, c.Share, c.Auto, c.Started
		if c.Analysis != nil {
			b, err := json.Marshal(c.Analysis)
			if err != nil {
				return r, err
			}
			r.CanaryAnalysis = string(b)
		}
	}
	if sh := s.Shadow; sh != nil {
		r.ShadowVersion, r.ShadowShare = sh.Version, sh.Share
	}
	return r, nil
}

func (r desiredRow) state() State {
	s := State{Model: r.Model, Revision: r.Revision, Serving: r.Serving, Previous: r.Previous, Pinned: r.Pinned,
		ChangedBy: r.ChangedBy, ChangedAt: r.ChangedAt.UTC(), Reason: r.Reason, Change: r.Change}
	if len(r.Selector) > 0 {
		s.Selector = r.Selector
	}
	if r.CanaryVersion != 0 {
		c := &Canary{Version: r.CanaryVersion, Share: r.CanaryShare, Auto: r.CanaryAuto, Started: r.CanaryStarted.UTC()}
		if r.CanaryAnalysis != "" {
			var a Analysis
			if json.Unmarshal([]byte(r.CanaryAnalysis), &a) == nil {
				c.Analysis = &a
			}
		}
		s.Canary = c
	}
	if r.ShadowVersion != 0 {
		s.Shadow = &Shadow{Version: r.ShadowVersion, Share: r.ShadowShare}
	}
	return s
}

// syncInsert makes an insert through a Distributed table (cluster mode)
// synchronous, so that a read right after it sees the row.
func (t *tables) syncInsert(ctx context.Context) context.Context {
	if t.cluster {
		return clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"distributed_foreground_insert": 1}))
	}
	return ctx
}

func (t *tables) insertState(ctx context.Context, s State) error {
	r, err := toRow(s)
	if err != nil {
		return fmt.Errorf("insert desired state of %s r%d: %w", s.Model, s.Revision, err)
	}
	b, err := t.conn.PrepareBatch(t.syncInsert(ctx), "INSERT INTO "+t.desired+" ("+desiredColumns+")")
	if err != nil {
		return fmt.Errorf("insert desired state of %s r%d: %w", s.Model, s.Revision, err)
	}
	defer b.Abort()
	if err := b.AppendStruct(&r); err != nil {
		return fmt.Errorf("insert desired state of %s r%d: %w", s.Model, s.Revision, err)
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("insert desired state of %s r%d: %w", s.Model, s.Revision, err)
	}
	return nil
}

// latest reads model's newest desired state (revision 0 if none).
func (t *tables) latest(ctx context.Context, model string) (State, error) {
	h, err := t.history(ctx, model, 1)
	if err != nil || len(h) == 0 {
		return State{Model: model}, err
	}
	return h[0], nil
}

// history reads model's newest limit desired states, newest first.
func (t *tables) history(ctx context.Context, model string, limit int) ([]State, error) {
	var rows []desiredRow
	q := fmt.Sprintf("SELECT %s FROM %s WHERE model = ? ORDER BY revision DESC LIMIT %d", desiredColumns, t.desired, limit)
	if err := t.conn.Select(ctx, &rows, q, model); err != nil {
		return nil, fmt.Errorf("read desired state of %s: %w", model, err)
	}
	out := make([]State, len(rows))
	for i, r := range rows {
		out[i] = r.state()
	}
	return out, nil
}

// revisions reads the highest revision of every model with a desired
// state (at most limit models).
func (t *tables) revisions(ctx context.Context, limit int) (map[string]uint64, error) {
	var rows []struct {
		Model    string `ch:"model"`
		Revision uint64 `ch:"revision"`
	}
	q := fmt.Sprintf("SELECT model, max(revision) AS revision FROM %s GROUP BY model ORDER BY model LIMIT %d", t.desired, limit)
	if err := t.conn.Select(ctx, &rows, q); err != nil {
		return nil, fmt.Errorf("read desired revisions: %w", err)
	}
	out := make(map[string]uint64, len(rows))
	for _, r := range rows {
		out[r.Model] = r.Revision
	}
	return out, nil
}

const agentColumns = "agent, host, labels, build, serving, inventory, collector, updated, last_seen"

type agentRow struct {
	Agent     string            `ch:"agent"`
	Host      string            `ch:"host"`
	Labels    map[string]string `ch:"labels"`
	Build     string            `ch:"build"`
	Serving   map[string]uint64 `ch:"serving"`
	Inventory string            `ch:"inventory"`
	Collector string            `ch:"collector"`
	Updated   time.Time         `ch:"updated"`
	LastSeen  time.Time         `ch:"last_seen"`
}

func (t *tables) insertAgents(ctx context.Context, rows []agentRow) error {
	if len(rows) == 0 {
		return nil
	}
	b, err := t.conn.PrepareBatch(t.syncInsert(ctx), "INSERT INTO "+t.agents+" ("+agentColumns+")")
	if err != nil {
		return fmt.Errorf("insert agents: %w", err)
	}
	defer b.Abort()
	for i := range rows {
		if rows[i].Labels == nil {
			rows[i].Labels = map[string]string{}
		}
		if rows[i].Serving == nil {
			rows[i].Serving = map[string]uint64{}
		}
		if err := b.AppendStruct(&rows[i]); err != nil {
			return fmt.Errorf("insert agents: %w", err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("insert agents: %w", err)
	}
	return nil
}

// readAgents reads the last row of every agent (of id only, when it is not
// ""), at most limit, by id; with a non-zero since, only the agents last
// seen after it.
func (t *tables) readAgents(ctx context.Context, id string, limit int, since time.Time) ([]agentRow, error) {
	var rows []agentRow
	var conds []string
	var args []any
	if id != "" {
		conds, args = append(conds, "agent = ?"), append(args, id)
	}
	if !since.IsZero() {
		conds, args = append(conds, "last_seen > fromUnixTimestamp64Milli(?)"), append(args, since.UnixMilli())
	}
	where := ""
	if len(conds) > 0 {
		where = " WHERE " + strings.Join(conds, " AND ")
	}
	q := fmt.Sprintf("SELECT %s FROM %s FINAL%s ORDER BY agent LIMIT %d", agentColumns, t.agents, where, limit)
	if err := t.conn.Select(ctx, &rows, q, args...); err != nil {
		return nil, fmt.Errorf("read agents: %w", err)
	}
	return rows, nil
}

// servingAgents counts the agents last seen after since whose last inventory
// says they serve model at version, and returns one of their ids.
func (t *tables) servingAgents(ctx context.Context, model string, version uint64, since time.Time) (uint64, string, error) {
	var n uint64
	var one string
	q := "SELECT count(), any(agent) FROM " + t.agents + " FINAL WHERE serving[?] = ? AND last_seen > fromUnixTimestamp64Milli(?)"
	if err := t.conn.QueryRow(ctx, q, model, version, since.UnixMilli()).Scan(&n, &one); err != nil {
		return 0, "", fmt.Errorf("read agents serving %s v%d: %w", model, version, err)
	}
	return n, one, nil
}
