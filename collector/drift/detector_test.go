package drift

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

func testPolicy() Policy {
	p := DefaultPolicy() // 3 of 5, cooldown 6h, interval 1m
	return p
}

func policyFunc(string) Policy { return testPolicy() }

var t0 = time.Date(2026, 11, 20, 10, 0, 0, 123456789, time.UTC)

// feed observes one check per minute from t0 ("D" drifted, "." not) and
// returns the incidents with the index of the check that opened each.
func feed(d *Detector, pattern string, from int) (map[int]Incident, int) {
	got := map[int]Incident{}
	for i, ch := range pattern {
		at := t0.Add(time.Duration(from+i) * time.Minute)
		r := Result{Time: at, Drifted: ch == 'D'}
		if r.Drifted {
			r.Reasons = []string{"dataset drift"}
		}
		if inc := d.Observe("iris", "3", r, at); inc != nil {
			got[from+i] = *inc
		}
	}
	return got, from + len(pattern)
}

func TestDetectorConfirmsMofN(t *testing.T) {
	for name, tc := range map[string]struct {
		pattern string
		opened  map[int]int // check index → index of the start check
	}{
		"three in a row":      {"DDD", map[int]int{2: 0}},
		"three of four":       {"DD.D", map[int]int{3: 0}},
		"three of five":       {".D.D.D", map[int]int{5: 1}},
		"two of five never":   {"D..D..D..D..D", nil},
		"spread beyond five":  {"D...D...D", nil},
		"flapping":            {"D.D.D.D.D.D.D.D.D.D.D.D.D.D.D.D.D.D.D.D", map[int]int{4: 0}},
		"flapping from clean": {".D.D.D.D.D.D.D.D", map[int]int{5: 1}},
		"steady":              {"DDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDD", map[int]int{2: 0}},
		"no verdicts":         {"................", nil},
	} {
		t.Run(name, func(t *testing.T) {
			got, _ := feed(NewDetector(policyFunc), tc.pattern, 0)
			if len(got) != len(tc.opened) {
				t.Fatalf("incidents at %v, want at %v", keys(got), tc.opened)
			}
			for at, start := range tc.opened {
				inc, ok := got[at]
				if !ok || !inc.Start.Equal(t0.Add(time.Duration(start)*time.Minute).Truncate(time.Millisecond)) {
					t.Errorf("incident at check %d: %+v (ok %v), want start at check %d", at, inc, ok, start)
				}
				if len(inc.Reasons) != 1 || inc.Reasons[0] != "dataset drift" || inc.Model != "iris" || inc.Version != "3" {
					t.Errorf("incident %+v", inc)
				}
			}
		})
	}
}

func keys(m map[int]Incident) []int {
	var out []int
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestDetectorCooldown(t *testing.T) {
	d := NewDetector(policyFunc)
	// Steady drift for 13 hours at one check a minute: one incident per
	// 6-hour cooldown, the next one confirmed by checks after the opening.
	pattern := make([]byte, 13*60)
	for i := range pattern {
		pattern[i] = 'D'
	}
	got, _ := feed(d, string(pattern), 0)
	want := map[int]int{2: 0, 362: 358, 722: 718} // opened at 2; cooldown ends at 362; the last 5 checks confirm
	if len(got) != len(want) {
		t.Fatalf("incidents at %v, want at 2, 362, 722", keys(got))
	}
	for at, start := range want {
		if inc, ok := got[at]; !ok || !inc.Start.Equal(t0.Add(time.Duration(start)*time.Minute).Truncate(time.Millisecond)) {
			t.Errorf("incident at %d: %+v", at, got[at])
		}
	}
	// Flapping over 12 hours: at most one incident per cooldown.
	d = NewDetector(policyFunc)
	flap := make([]byte, 12*60)
	for i := range flap {
		flap[i] = ".D"[i%2]
	}
	got, _ = feed(d, string(flap), 0)
	if len(got) != 2 {
		t.Errorf("flapping 12h: %d incidents at %v, want 2", len(got), keys(got))
	}
	for at := range got {
		for other := range got {
			if at < other && other-at < 360 {
				t.Errorf("incidents at %d and %d are within one cooldown", at, other)
			}
		}
	}
}

// record writes what the Checker writes for a check (dataset and check
// rows) of a Result.
func record(t *testing.T, c *Checker, r Result) {
	t.Helper()
	p := testPolicy()
	batch := c.rows(r, p)
	if err := c.store.Insert(context.Background(), batchOf(batch), r.Time.String()); err != nil {
		t.Fatal(err)
	}
}

func TestRestoreAcrossOwnerChange(t *testing.T) {
	db := migrated(t)
	ctx := context.Background()
	a := NewChecker(db.Conn, db.Name, "node-a", nil)
	b := NewChecker(db.Conn, db.Name, "node-b", nil)
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Minute) }
	check := func(i int, drifted bool) Result {
		r := Result{Model: "iris", Version: "3", Time: at(i), Drifted: drifted}
		if drifted {
			r.Reasons = []string{"dataset drift: 3 of 4 features drifted (f0, f1, f2)", "f1/labels degraded"}
		}
		return r
	}

	// The uninterrupted owner, for comparison.
	ref := NewDetector(policyFunc)
	var want *Incident
	for i, d := range []bool{true, false, true, true} {
		if inc := ref.Observe("iris", "3", check(i, d), at(i)); inc != nil {
			want = inc
		}
	}
	if want == nil {
		t.Fatal("reference detector opened no incident")
	}

	// Node A sees three checks and dies before the confirming one.
	da := NewDetector(policyFunc)
	for i, d := range []bool{true, false, true} {
		r := check(i, d)
		record(t, a, r)
		if inc := da.Observe("iris", "3", r, at(i)); inc != nil {
			t.Fatalf("node A opened %+v", inc)
		}
	}
	// Node B takes over.
	dbB := NewDetector(policyFunc)
	if err := dbB.Restore(ctx, b, "iris", "3", at(3)); err != nil {
		t.Fatal(err)
	}
	r := check(3, true)
	record(t, b, r)
	got := dbB.Observe("iris", "3", r, at(3))
	if got == nil || !got.Start.Equal(want.Start) || !got.Start.Equal(at(0).Truncate(time.Millisecond)) {
		t.Fatalf("node B: incident %+v, want start %v", got, want.Start)
	}
	if len(got.Reasons) != 2 || got.Reasons[0] != want.Reasons[0] {
		t.Errorf("reasons %q, want %q", got.Reasons, want.Reasons)
	}
	if err := b.RecordIncident(ctx, *got, at(3)); err != nil {
		t.Fatal(err)
	}

	// Node B dies right after opening it; node C continues the same
	// incident: no new one during the cooldown, same start.
	dc := NewDetector(policyFunc)
	if err := dc.Restore(ctx, NewChecker(db.Conn, db.Name, "node-c", nil), "iris", "3", at(4)); err != nil {
		t.Fatal(err)
	}
	last, opened, ok := dc.Last("iris", "3")
	if !ok || !last.Start.Equal(want.Start) || !opened.Equal(at(3).Truncate(time.Millisecond)) {
		t.Errorf("node C: last incident %+v opened %v (%v), want start %v", last, opened, ok, want.Start)
	}
	for i := 4; i < 20; i++ {
		r := check(i, true)
		record(t, b, r)
		if inc := dc.Observe("iris", "3", r, at(i)); inc != nil {
			t.Errorf("node C opened a second incident during the cooldown: %+v", inc)
		}
	}
	if n := db.Count(t, "SELECT count() FROM drift_results WHERE test = 'incident' AND node = 'node-b' AND toUnixTimestamp64Milli(window_start) = ?", want.Start.UnixMilli()); n != 1 {
		t.Errorf("%d incident rows, want 1", n)
	}
}

// historyFunc is a HistoryReader.
type historyFunc func(ctx context.Context, model, version string, since, until time.Time, n int) (History, error)

func (f historyFunc) History(ctx context.Context, model, version string, since, until time.Time, n int) (History, error) {
	return f(ctx, model, version, since, until, n)
}

// TestRestoreFromHistory: Restore asks for the last ConfirmN checks within
// max(Cooldown, 10·ConfirmN·Interval) and continues from them; an error
// leaves the state as it was.
func TestRestoreFromHistory(t *testing.T) {
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Minute).Truncate(time.Millisecond) }
	now := at(10)
	var asked []any
	h := historyFunc(func(_ context.Context, model, version string, since, until time.Time, n int) (History, error) {
		asked = []any{model, version, since, until, n}
		return History{Checks: []RecordedCheck{
			{Time: at(7), Drifted: true, Reasons: []string{"dataset drift"}},
			{Time: at(8)},
			{Time: at(9), Drifted: true, Reasons: []string{"p99"}},
		}}, nil
	})
	d := NewDetector(policyFunc)
	if err := d.Restore(context.Background(), h, "iris", "3", now); err != nil {
		t.Fatal(err)
	}
	// Cooldown 6 h > 10·5·1 m.
	if want := []any{"iris", "3", now.Add(-6 * time.Hour), now, 5}; !slices.EqualFunc(asked, want, func(a, b any) bool {
		if ta, ok := a.(time.Time); ok {
			return ta.Equal(b.(time.Time))
		}
		return a == b
	}) {
		t.Errorf("History(%v), want %v", asked, want)
	}
	if !d.Known("iris", "3") {
		t.Error("not known after Restore")
	}
	inc := d.Observe("iris", "3", Result{Time: now, Drifted: true, Reasons: []string{"dataset drift"}}, now)
	if inc == nil || !inc.Start.Equal(at(7)) || !slices.Equal(inc.Reasons, []string{"dataset drift", "p99"}) {
		t.Errorf("incident %+v, want start at the first restored drifted check, reasons deduplicated", inc)
	}

	// A failed read leaves the state (the incident just opened) alone.
	failed := historyFunc(func(context.Context, string, string, time.Time, time.Time, int) (History, error) {
		return History{}, &unavailableError{op: "history", err: errors.New("connection refused")}
	})
	if err := d.Restore(context.Background(), failed, "iris", "3", now); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Restore error %v, want ErrUnavailable", err)
	}
	if last, _, ok := d.Last("iris", "3"); !ok || !last.Start.Equal(at(7)) {
		t.Errorf("state lost after a failed Restore: %+v %v", last, ok)
	}
}
