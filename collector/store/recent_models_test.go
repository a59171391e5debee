package store

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/drover-ml/drover/shared/semconv"
)

func TestRecentModels(t *testing.T) {
	db, s := migrated(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	sum := func(model, metric string, at time.Time) SumRow {
		return SumRow{Point: Point{Time: at, StartTime: at.Add(-time.Minute), Service: semconv.ServiceNameAgent,
			Host: "h", Model: model, ModelVersion: "1", Metric: metric},
			Temporality: TemporalityDelta, IsMonotonic: true, Value: 1}
	}
	b := &Batch{Sums: []SumRow{
		sum("iris", semconv.MetricRequests, now.Add(-time.Hour)),
		sum("iris", semconv.MetricRequests, now.Add(-2*time.Hour)), // twice: listed once
		sum("adult", semconv.MetricRequests, now.Add(-time.Minute)),
		sum("old", semconv.MetricRequests, now.Add(-48*time.Hour)),  // before the period
		sum("future", semconv.MetricRequests, now.Add(time.Second)), // at its end: excluded
		sum("other", "some.counter", now.Add(-time.Hour)),           // not drover.requests
		sum("", semconv.MetricRequests, now.Add(-time.Hour)),        // no model
	}}
	if err := s.Insert(ctx, b, "recent-models"); err != nil {
		t.Fatal(err)
	}
	got, err := RecentModels(ctx, db.Conn, db.Name, now.Add(-24*time.Hour), now.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"adult", "iris"}; !slices.Equal(got, want) {
		t.Errorf("RecentModels = %q, want %q", got, want)
	}
	got, err = RecentModels(ctx, db.Conn, db.Name, now.Add(-30*time.Minute), now)
	if err != nil || !slices.Equal(got, []string{"adult"}) {
		t.Errorf("last 30 minutes: %q, %v; want [adult]", got, err)
	}
}
