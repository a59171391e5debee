package views

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/drover-ml/drover/collector/registry"
	"github.com/drover-ml/drover/shared/manifest"
	"github.com/drover-ml/drover/shared/semconv"
)

// DriftWindow is how far back GET /v1/models/{model}/drift looks for the
// latest check of each feature and test.
const DriftWindow = 24 * time.Hour

// MaxHistorySince bounds ?since= of GET /v1/models/{model}/history.
const MaxHistorySince = 366 * 24 * time.Hour

// clockSkew is added to "now" where rows written by other collectors (drift
// checks, incidents) are read up to now: their clocks may run a little ahead.
const clockSkew = time.Minute

// GET /v1/models
func (v *Views) models(w http.ResponseWriter, r *http.Request) {
	out, err := v.listModels(r.Context())
	v.reply(w, r, out, err)
}

func (v *Views) listModels(ctx context.Context) ([]Model, error) {
	now := v.now().UTC()
	seen, err := v.seenModels(ctx, now.Add(-ModelsWindow), now)
	if err != nil {
		return nil, err
	}
	reg, err := v.records.Latest(ctx, "", maxList)
	if err != nil {
		return nil, err
	}
	stats, err := v.requestStats(ctx, "", now.Add(-NowWindow), now)
	if err != nil {
		return nil, err
	}
	hosts, err := v.reportingHosts(ctx, "", now.Add(-NowWindow), now, MaxSince)
	if err != nil {
		return nil, err
	}
	type agg struct {
		versions      map[uint64]bool
		hosts         map[string]bool
		total, errors float64
	}
	all := map[string]*agg{}
	get := func(m string) *agg {
		a := all[m]
		if a == nil {
			a = &agg{versions: map[uint64]bool{}, hosts: map[string]bool{}}
			all[m] = a
		}
		return a
	}
	for m := range seen {
		get(m)
	}
	for m := range reg {
		get(m)
	}
	for k, c := range stats {
		a := get(k.model)
		a.total += c.total
		a.errors += c.errors
		for h := range c.hosts {
			a.hosts[h] = true
		}
		if n, ok := versionNumber(k.version); ok && (c.total > 0 || len(c.hosts) > 0) {
			a.versions[n] = true
		}
	}
	for _, h := range hosts {
		a := get(h.model)
		a.hosts[h.host] = true
		if n, ok := versionNumber(h.version); ok {
			a.versions[n] = true
		}
	}
	names := make([]string, 0, len(all))
	for m := range all {
		names = append(names, m)
	}
	slices.Sort(names)
	if len(names) > maxList {
		names = names[:maxList]
	}
	out := make([]Model, 0, len(names))
	for _, name := range names {
		a := all[name]
		m := Model{Name: name, VersionsServing: []uint64{}, Hosts: len(a.hosts)}
		if v.owner != nil {
			if o, ok := v.owner(name); ok {
				m.Owner = &o
			}
		}
		for n := range a.versions {
			m.VersionsServing = append(m.VersionsServing, n)
		}
		slices.Sort(m.VersionsServing)
		if a.total > 0 {
			m.RequestsPerSecond = fptr(a.total / NowWindow.Seconds())
			m.ErrorRate = fptr(a.errors / a.total)
		}
		if n, ok := reg[name]; ok && n > 0 {
			m.LatestVersion = &n
		} else if n := seen[name]; n > 0 {
			m.LatestVersion = &n
		}
		out = append(out, m)
	}
	return out, nil
}

// versionNumber parses a stored model_version: a positive decimal.
func versionNumber(s string) (uint64, bool) {
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil && n > 0
}

// knownModel checks the path's model: 400 for a name the manifest's rules
// reject, 404 when nothing is stored about it.
func (v *Views) knownModel(ctx context.Context, raw string) (string, error) {
	model, err := modelName(raw)
	if err != nil {
		return "", err
	}
	ok, err := v.modelExists(ctx, model)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", notFound("model %q not found", model)
	}
	return model, nil
}

// duration parses a positive Go duration of at most max from the query,
// def when absent.
func duration(r *http.Request, key string, def, max time.Duration) (time.Duration, error) {
	s := r.URL.Query().Get(key)
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 || d > max {
		return 0, badRequest("invalid %s %q: want a positive Go duration of at most %s (30m, 24h)", key, s, max)
	}
	return d, nil
}

// GET /v1/models/{model}/versions?since=
func (v *Views) versions(w http.ResponseWriter, r *http.Request) {
	out, err := func() ([]Version, error) {
		since, err := duration(r, "since", DefaultSince, MaxSince)
		if err != nil {
			return nil, err
		}
		model, err := v.knownModel(r.Context(), r.PathValue("model"))
		if err != nil {
			return nil, err
		}
		vs, _, err := v.versionList(r.Context(), model, since)
		return vs, err
	}()
	v.reply(w, r, out, err)
}

// versionList computes every version of model with its metrics over the
// last since, ascending, and the signature of each version that has a
// registry record with one (for diffs).
func (v *Views) versionList(ctx context.Context, model string, since time.Duration) ([]Version, map[uint64]*manifest.Signature, error) {
	now := v.now().UTC()
	from := now.Add(-since)
	records, err := v.records.Newest(ctx, model, maxList)
	if err != nil {
		return nil, nil, err
	}
	stats, err := v.requestStats(ctx, model, from, now)
	if err != nil {
		return nil, nil, err
	}
	statsNow, err := v.requestStats(ctx, model, now.Add(-NowWindow), now)
	if err != nil {
		return nil, nil, err
	}
	hostsNow, err := v.reportingHosts(ctx, model, now.Add(-NowWindow), now, MaxSince)
	if err != nil {
		return nil, nil, err
	}
	lat, err := v.latency(ctx, model, from, now)
	if err != nil {
		return nil, nil, err
	}
	evals, err := v.evals(ctx, model, from, now)
	if err != nil {
		return nil, nil, err
	}
	scores, err := v.driftScores(ctx, model, from, now.Add(clockSkew))
	if err != nil {
		return nil, nil, err
	}
	events, err := v.versionEvents(ctx, model, from, now)
	if err != nil {
		return nil, nil, err
	}

	byVersion := map[uint64]*reqCounts{}
	for k, c := range stats {
		if n, ok := versionNumber(k.version); ok {
			byVersion[n] = c
		}
	}
	serving := map[uint64]bool{}
	for k, c := range statsNow {
		if n, ok := versionNumber(k.version); ok && (c.total > 0 || len(c.hosts) > 0) {
			serving[n] = true
		}
	}
	for _, h := range hostsNow {
		if n, ok := versionNumber(h.version); ok {
			serving[n] = true
		}
	}

	set := map[uint64]bool{}
	recs := map[uint64]int{}
	for i, rec := range records {
		set[rec.Version] = true
		recs[rec.Version] = i
	}
	for n := range byVersion {
		set[n] = true
	}
	for n := range serving {
		set[n] = true
	}
	for _, keys := range [][]string{mapKeys(lat), mapKeys(evals), mapKeys(scores), mapKeys(events)} {
		for _, k := range keys {
			if n, ok := versionNumber(k); ok {
				set[n] = true
			}
		}
	}
	numbers := make([]uint64, 0, len(set))
	for n := range set {
		numbers = append(numbers, n)
	}
	slices.Sort(numbers)
	if len(numbers) > maxList { // the newest
		numbers = numbers[len(numbers)-maxList:]
	}

	out := make([]Version, 0, len(numbers))
	sigs := map[uint64]*manifest.Signature{}
	for _, n := range numbers {
		key := strconv.FormatUint(n, 10)
		ver := Version{Version: n, Parents: []uint64{}}
		i, hasRecord := recs[n]
		deleted := false
		if hasRecord {
			rec := records[i]
			if rec.Signature != nil {
				sigs[n] = rec.Signature
			}
			ver.ContentID = sptr(rec.ContentID)
			ver.Created = tptr(rec.Created)
			ver.Author, ver.Message = sptr(rec.Author), sptr(rec.Message)
			ver.Parents = append(ver.Parents, rec.Parents...)
			ver.Source = sptr(string(rec.Source))
			deleted = rec.State == registry.StateDeleted
		} else {
			ver.Source = sptr(SourceAgent)
		}
		ev, hasEvent := events[key]
		switch {
		case deleted:
			ver.State = sptr(StateDeleted)
		case serving[n]:
			ver.State = sptr(StateServing)
		case hasEvent && ev.event == semconv.EventRejected:
			ver.State = sptr(StateRejected)
		case hasEvent && ev.event == semconv.EventUnloaded:
			ver.State = sptr(StateRetired)
		case hasRecord:
			ver.State = sptr(StatePublished)
		}
		m := &ver.Metrics
		if rq := byVersion[n]; rq != nil {
			total := uint64(rq.total + 0.5)
			hosts := len(rq.hosts)
			m.Requests, m.Hosts = &total, &hosts
			if rq.total > 0 {
				m.ErrorRate = fptr(rq.errors / rq.total)
			}
		}
		if h, ok := lat[key]; ok && h.n > 0 {
			m.LatencyP50Ms = fptr(1000 * quantile(h, 0.5))
			m.LatencyP99Ms = fptr(1000 * quantile(h, 0.99))
		}
		if e := evals[key]; e != nil {
			m.Accuracy = evalValue(e, "labels", "accuracy")
			m.F1 = evalValue(e, "labels", "f1")
			m.MSE = evalValue(e, "labels", "mse")
			m.GoldenScore = evalValue(e, "golden", "accuracy", "f1", "r2")
		}
		if s, ok := scores[key]; ok {
			m.DriftScore = fptr(s)
		}
		out = append(out, ver)
	}
	return out, sigs, nil
}

func mapKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// evalValue returns the first of metrics that source has, or nil.
func evalValue(e map[evalKey]float64, source string, metrics ...string) *float64 {
	for _, m := range metrics {
		if x, ok := e[evalKey{m, source}]; ok {
			return fptr(x)
		}
	}
	return nil
}

// quantile interpolates the q quantile of h linearly in its bucket (the
// first bucket starts at 0; a quantile in the +Inf bucket is the last
// bound), as docs/schema.md's p99 query does.
func quantile(h latencyHist, q float64) float64 {
	rank := q * float64(h.n)
	var cum float64
	for i, c := range h.counts {
		below := cum
		cum += float64(c)
		if cum < rank || c == 0 {
			continue
		}
		if i >= len(h.bounds) {
			if len(h.bounds) == 0 {
				return 0
			}
			return h.bounds[len(h.bounds)-1]
		}
		lower := 0.0
		if i > 0 {
			lower = h.bounds[i-1]
		}
		return lower + (h.bounds[i]-lower)*(rank-below)/float64(c)
	}
	if len(h.bounds) == 0 {
		return 0
	}
	return h.bounds[len(h.bounds)-1]
}

// GET /v1/models/{model}/diff?from=N1&to=N2
func (v *Views) diff(w http.ResponseWriter, r *http.Request) {
	out, err := func() (*VersionDiff, error) {
		q := r.URL.Query()
		from, ok1 := versionNumber(q.Get("from"))
		to, ok2 := versionNumber(q.Get("to"))
		if !ok1 || !ok2 {
			return nil, badRequest("from and to must be version numbers (positive integers), got from=%q to=%q", q.Get("from"), q.Get("to"))
		}
		model, err := v.knownModel(r.Context(), r.PathValue("model"))
		if err != nil {
			return nil, err
		}
		vs, sigs, err := v.versionList(r.Context(), model, DefaultSince)
		if err != nil {
			return nil, err
		}
		find := func(n uint64) (Version, error) {
			for _, ver := range vs {
				if ver.Version == n {
					return ver, nil
				}
			}
			return Version{}, notFound("model %q has no version %d", model, n)
		}
		a, err := find(from)
		if err != nil {
			return nil, err
		}
		b, err := find(to)
		if err != nil {
			return nil, err
		}
		return &VersionDiff{Model: model, From: a, To: b, Records: recordChanges(a, b),
			Signature: signatureChanges(sigs[from], sigs[to]), Metrics: metricDeltas(a.Metrics, b.Metrics)}, nil
	}()
	v.reply(w, r, out, err)
}

func rawJSON(x any) json.RawMessage {
	b, err := json.Marshal(x)
	if err != nil {
		return json.RawMessage("null")
	}
	return b
}

// recordChanges lists the record fields that differ between a and b.
func recordChanges(a, b Version) []FieldChange {
	out := []FieldChange{}
	for _, f := range []struct {
		name   string
		av, bv any
	}{
		{"content_id", a.ContentID, b.ContentID},
		{"created", a.Created, b.Created},
		{"author", a.Author, b.Author},
		{"message", a.Message, b.Message},
		{"parents", a.Parents, b.Parents},
		{"source", a.Source, b.Source},
		{"state", a.State, b.State},
	} {
		x, y := rawJSON(f.av), rawJSON(f.bv)
		if !bytes.Equal(x, y) {
			out = append(out, FieldChange{Field: f.name, From: x, To: y})
		}
	}
	return out
}

// signatureFields flattens a signature into inputs.NAME.datatype /
// inputs.NAME.shape (and outputs.…) fields; nil has none.
func signatureFields(sig *manifest.Signature) map[string]json.RawMessage {
	out := map[string]json.RawMessage{}
	if sig == nil {
		return out
	}
	for _, side := range []struct {
		name string
		ts   []manifest.Tensor
	}{{"inputs", sig.Inputs}, {"outputs", sig.Outputs}} {
		for _, t := range side.ts {
			out[side.name+"."+t.Name+".datatype"] = rawJSON(t.Datatype)
			out[side.name+"."+t.Name+".shape"] = rawJSON(t.Shape)
		}
	}
	return out
}

// signatureChanges lists the signature fields that differ between two
// versions' records, sorted by field; a field one side lacks is null there.
func signatureChanges(a, b *manifest.Signature) []FieldChange {
	fa, fb := signatureFields(a), signatureFields(b)
	keys := map[string]bool{}
	for k := range fa {
		keys[k] = true
	}
	for k := range fb {
		keys[k] = true
	}
	names := make([]string, 0, len(keys))
	for k := range keys {
		names = append(names, k)
	}
	slices.Sort(names)
	out := []FieldChange{}
	null := json.RawMessage("null")
	for _, k := range names {
		x, ok := fa[k]
		if !ok {
			x = null
		}
		y, ok := fb[k]
		if !ok {
			y = null
		}
		if !bytes.Equal(x, y) {
			out = append(out, FieldChange{Field: k, From: x, To: y})
		}
	}
	return out
}

// metricDeltas lists every metric of VersionMetrics with to − from.
func metricDeltas(a, b VersionMetrics) []MetricDelta {
	u := func(p *uint64) *float64 {
		if p == nil {
			return nil
		}
		x := float64(*p)
		return &x
	}
	i := func(p *int) *float64 {
		if p == nil {
			return nil
		}
		x := float64(*p)
		return &x
	}
	out := []MetricDelta{}
	for _, m := range []struct {
		name string
		x, y *float64
	}{
		{"requests", u(a.Requests), u(b.Requests)},
		{"error_rate", a.ErrorRate, b.ErrorRate},
		{"latency_p50_ms", a.LatencyP50Ms, b.LatencyP50Ms},
		{"latency_p99_ms", a.LatencyP99Ms, b.LatencyP99Ms},
		{"accuracy", a.Accuracy, b.Accuracy},
		{"f1", a.F1, b.F1},
		{"mse", a.MSE, b.MSE},
		{"golden_score", a.GoldenScore, b.GoldenScore},
		{"drift_score", a.DriftScore, b.DriftScore},
		{"hosts", i(a.Hosts), i(b.Hosts)},
	} {
		d := MetricDelta{Name: m.name, From: m.x, To: m.y}
		if m.x != nil && m.y != nil {
			d.Delta = fptr(*m.y - *m.x)
		}
		out = append(out, d)
	}
	return out
}

// GET /v1/models/{model}/drift
func (v *Views) drift(w http.ResponseWriter, r *http.Request) {
	out, err := func() (*Drift, error) {
		ctx := r.Context()
		model, err := v.knownModel(ctx, r.PathValue("model"))
		if err != nil {
			return nil, err
		}
		now := v.now().UTC()
		rows, err := v.driftChecks(ctx, model, now.Add(-DriftWindow), now.Add(clockSkew))
		if err != nil {
			return nil, err
		}
		d := &Drift{Model: model, Checks: []DriftCheck{}, Incidents: []Incident{}}
		for _, row := range rows {
			n, ok := versionNumber(row.ModelVersion)
			if !ok {
				continue
			}
			d.Checks = append(d.Checks, DriftCheck{Time: row.Time.UTC(), ModelVersion: n, Feature: row.Feature, Test: row.Test,
				Value: row.Value, Threshold: row.Threshold, Drifted: row.Drifted, WindowStart: row.WindowStart.UTC(),
				WindowEnd: row.WindowEnd.UTC(), Reference: row.Reference, Node: row.Node})
		}
		slices.SortFunc(d.Checks, func(a, b DriftCheck) int {
			return cmp.Or(cmp.Compare(a.ModelVersion, b.ModelVersion),
				cmp.Compare(b2i(a.Feature == ""), b2i(b.Feature == "")) /* the model's own metrics last */, cmp.Compare(a.Feature, b.Feature),
				cmp.Compare(slices.Index(checkTests, a.Test), slices.Index(checkTests, b.Test)))
		})
		incs, err := v.incidentList(ctx, model, now)
		if err != nil {
			return nil, err
		}
		for _, inc := range incs {
			if inc.State == StateOpen {
				d.Incidents = append(d.Incidents, inc)
			}
		}
		return d, nil
	}()
	v.reply(w, r, out, err)
}

// incidentList returns the newest maxList incidents of model (all when
// ""), newest first. An incident is open until a check of its version
// after its opening does not drift; that check's time is its end.
func (v *Views) incidentList(ctx context.Context, model string, now time.Time) ([]Incident, error) {
	rows, err := v.incidentRows(ctx, model, now.Add(-MaxSince), now.Add(clockSkew), maxList)
	if err != nil {
		return nil, err
	}
	out := []Incident{}
	for _, row := range rows {
		if inc, ok := incidentOf(row); ok {
			out = append(out, inc)
		}
	}
	return out, nil
}

func incidentOf(row incidentRow) (Incident, bool) {
	n, ok := versionNumber(row.version)
	if !ok {
		return Incident{}, false
	}
	inc := Incident{Model: row.model, ModelVersion: n, Start: row.start.UTC(), State: StateOpen,
		Reasons: reasons(row.reasons), JobID: sptr(row.jobID)}
	if end := tptr(row.resolved); end != nil {
		inc.End, inc.State = end, StateResolved
	}
	return inc, true
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func reasons(s string) []string {
	if s == "" {
		return []string{}
	}
	return strings.Split(s, "; ")
}

// GET /v1/incidents?model=
func (v *Views) incidents(w http.ResponseWriter, r *http.Request) {
	out, err := func() ([]Incident, error) {
		model := ""
		if r.URL.Query().Has("model") {
			var err error
			if model, err = v.knownModel(r.Context(), r.URL.Query().Get("model")); err != nil {
				return nil, err
			}
		}
		return v.incidentList(r.Context(), model, v.now().UTC())
	}()
	v.reply(w, r, out, err)
}

// kindOrder orders events of the same time in a history.
var kindOrder = []string{KindPublished, KindLoaded, KindRejected, KindSwapped, KindPinned, KindRolledBack,
	KindIncidentOpened, KindJobScheduled, KindJobFinished, KindIncidentResolved}

// GET /v1/models/{model}/history?since=&limit=
func (v *Views) history(w http.ResponseWriter, r *http.Request) {
	out, err := func() ([]HistoryEvent, error) {
		since, err := duration(r, "since", DefaultHistorySince, MaxHistorySince)
		if err != nil {
			return nil, err
		}
		limit := DefaultHistoryLimit
		if s := r.URL.Query().Get("limit"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n <= 0 || n > MaxHistoryLimit {
				return nil, badRequest("invalid limit %q: want an integer in [1, %d]", s, MaxHistoryLimit)
			}
			limit = n
		}
		model, err := v.knownModel(r.Context(), r.PathValue("model"))
		if err != nil {
			return nil, err
		}
		return v.timeline(r.Context(), model, since, limit)
	}()
	v.reply(w, r, out, err)
}

// timeline merges the newest limit events of each source of model's
// history within the last since and keeps the newest limit, oldest first.
func (v *Views) timeline(ctx context.Context, model string, since time.Duration, limit int) ([]HistoryEvent, error) {
	now := v.now().UTC()
	from, to := now.Add(-since), now.Add(clockSkew)
	var out []HistoryEvent
	add := func(e HistoryEvent) {
		if !e.Time.Before(from) && e.Time.Before(to) {
			e.Time = e.Time.UTC()
			out = append(out, e)
		}
	}
	num := func(s string) *uint64 {
		if n, ok := versionNumber(s); ok {
			return &n
		}
		return nil
	}

	recs, err := v.records.Created(ctx, model, from, to, limit)
	if err != nil {
		return nil, err
	}
	for _, rec := range recs {
		n := rec.Version
		detail := string(rec.Source)
		if rec.Message != "" {
			detail += ": " + rec.Message
		}
		add(HistoryEvent{Time: rec.Created, Kind: KindPublished, Version: &n, Actor: sptr(rec.Author), JobID: sptr(rec.Job), Detail: detail})
	}

	evs, err := v.historyEvents(ctx, model, from, to, limit)
	if err != nil {
		return nil, err
	}
	for _, e := range evs {
		h := HistoryEvent{Time: e.time, Version: num(e.version), Host: sptr(e.host)}
		switch e.event {
		case semconv.EventLoaded:
			h.Kind = KindLoaded
		case semconv.EventRejected:
			h.Kind, h.Detail = KindRejected, e.reason
		case semconv.EventSwapped:
			h.Kind = KindSwapped
			if e.previous != "" {
				h.Detail = e.previous + " -> " + e.version
			}
		case semconv.EventRolledBack:
			h.Kind, h.Detail = KindRolledBack, e.reason
			if strings.Contains(e.reason, "pinned") {
				h.Kind = KindPinned
			}
		default:
			continue
		}
		add(h)
	}

	incs, err := v.incidentRows(ctx, model, from, to, limit)
	if err != nil {
		return nil, err
	}
	for _, row := range incs {
		add(HistoryEvent{Time: row.start, Kind: KindIncidentOpened, Version: num(row.version), Actor: sptr(row.node),
			JobID: sptr(row.jobID), Detail: row.reasons})
		if tptr(row.resolved) != nil {
			add(HistoryEvent{Time: row.resolved, Kind: KindIncidentResolved, Version: num(row.version), JobID: sptr(row.jobID)})
		}
	}

	jobs, err := v.historyJobs(ctx, model, from, to, limit)
	if err != nil {
		return nil, err
	}
	for _, j := range jobs {
		add(HistoryEvent{Time: j.Created, Kind: KindJobScheduled, Version: num(j.ModelVersion), Actor: sptr(j.LeaseOwner), JobID: sptr(j.ID)})
		if j.Finished != nil && tptr(*j.Finished) != nil {
			detail := j.State
			if j.ResultVersion > 0 {
				detail += ", published version " + strconv.FormatUint(j.ResultVersion, 10)
			}
			if j.Error != "" {
				detail += ": " + j.Error
			}
			add(HistoryEvent{Time: *j.Finished, Kind: KindJobFinished, Version: num(j.ModelVersion), Actor: sptr(j.LeaseOwner),
				JobID: sptr(j.ID), Detail: detail})
		}
	}

	slices.SortStableFunc(out, func(a, b HistoryEvent) int {
		return cmp.Or(a.Time.Compare(b.Time), cmp.Compare(slices.Index(kindOrder, a.Kind), slices.Index(kindOrder, b.Kind)))
	})
	if len(out) > limit {
		out = out[len(out)-limit:]
	}
	if out == nil {
		out = []HistoryEvent{}
	}
	return out, nil
}
