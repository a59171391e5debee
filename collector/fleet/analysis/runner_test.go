package analysis

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// fakeFleet lists canaries until they are promoted or aborted; Abort of
// model "stale" answers ErrStale.
type fakeFleet struct {
	mu       sync.Mutex
	canaries []Canary
	applied  []string // "promote a: reason"
}

func (f *fakeFleet) AutoCanaries(context.Context) ([]Canary, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.canaries), nil
}

func (f *fakeFleet) apply(d string, c Canary, v Verdict) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c.Model == "stale" {
		return ErrStale
	}
	f.applied = append(f.applied, d+" "+c.Model+": "+v.Reason)
	f.canaries = slices.DeleteFunc(f.canaries, func(x Canary) bool { return x.Model == c.Model })
	return nil
}

func (f *fakeFleet) Promote(_ context.Context, c Canary, v Verdict) error {
	return f.apply("promote", c, v)
}
func (f *fakeFleet) Abort(_ context.Context, c Canary, v Verdict) error {
	return f.apply("abort", c, v)
}

// scriptJudge answers per model from a script, one entry per call (the
// last repeated), and records when it was asked.
type scriptJudge struct {
	mu     sync.Mutex
	script map[string][]Decision
	asked  map[string][]time.Duration // since start
	start  time.Time
}

func (j *scriptJudge) Analyze(_ context.Context, c Canary, now time.Time) (Verdict, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.asked[c.Model] = append(j.asked[c.Model], now.Sub(j.start))
	s := j.script[c.Model]
	if len(s) == 0 {
		return Verdict{}, errors.New("clickhouse down")
	}
	d := s[0]
	if len(s) > 1 {
		j.script[c.Model] = s[1:]
	}
	return Verdict{Decision: d, Reason: string(d) + " reason"}, nil
}

func TestRunner(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fleet := &fakeFleet{canaries: []Canary{{Model: "a", Version: 2}, {Model: "b", Version: 3}, {Model: "stale"}, {Model: "down"}}}
		judge := &scriptJudge{start: time.Now(), asked: map[string][]time.Duration{}, script: map[string][]Decision{
			"a": {Wait, Wait, Promote}, "b": {Abort}, "stale": {Abort}}}
		r := &Runner{Fleet: fleet, Judge: judge, Interval: 30 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		time.Sleep(95 * time.Second)
		synctest.Wait()
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
		want := map[string][]time.Duration{
			"a":     {0, 30 * time.Second, 60 * time.Second},
			"b":     {0},
			"stale": {0, 30 * time.Second, 60 * time.Second, 90 * time.Second},
			"down":  {0, 30 * time.Second, 60 * time.Second, 90 * time.Second},
		}
		for m, w := range want {
			if !slices.Equal(judge.asked[m], w) {
				t.Errorf("%s asked at %v, want %v", m, judge.asked[m], w)
			}
		}
		if got := fleet.applied; !slices.Equal(got, []string{"abort b: abort reason", "promote a: promote reason"}) {
			t.Errorf("applied %q", got)
		}
	})
}

// TestRunnerCheck checks what one check reports: the applied verdicts,
// the waits, and the errors joined (a stale canary is neither).
func TestRunnerCheck(t *testing.T) {
	fleet := &fakeFleet{canaries: []Canary{{Model: "a"}, {Model: "stale"}, {Model: "down"}, {Model: "w"}}}
	judge := &scriptJudge{start: time.Now(), asked: map[string][]time.Duration{}, script: map[string][]Decision{
		"a": {Promote}, "stale": {Promote}, "w": {Wait}}}
	r := &Runner{Fleet: fleet, Judge: judge, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	res, err := r.Check(context.Background())
	if err == nil || err.Error() != "clickhouse down" {
		t.Errorf("err %v, want clickhouse down", err)
	}
	var got []string
	for _, x := range res {
		s := x.Canary.Model + " " + string(x.Verdict.Decision)
		if x.Applied {
			s += " applied"
		}
		got = append(got, s)
	}
	if !slices.Equal(got, []string{"a promote applied", "w wait"}) {
		t.Errorf("results %q", got)
	}
}
