package store

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestModelsWithData(t *testing.T) {
	_, s := migrated(t)
	now := time.Now()
	sum := func(model string, at time.Time) SumRow {
		return SumRow{Point: Point{Time: at, StartTime: at, Model: model, Metric: "drover.requests"}, Value: 1}
	}
	b := &Batch{Sums: []SumRow{
		sum("b", now.Add(-time.Minute)), sum("a", now.Add(-time.Hour)), sum("a", now),
		sum("old", now.Add(-48*time.Hour)), sum("", now),
	}}
	if err := s.Insert(context.Background(), b, ""); err != nil {
		t.Fatal(err)
	}
	got, err := s.ModelsWithData(context.Background(), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a", "b"}; !slices.Equal(got, want) {
		t.Errorf("models = %v, want %v", got, want)
	}
}

func TestColumnsOfJobs(t *testing.T) {
	cols := Columns(TableJobs)
	if len(cols) != 17 || cols[0] != "id" || cols[len(cols)-1] != "row_version" {
		t.Errorf("Columns(jobs) = %v", cols)
	}
	cols[0] = "changed"
	if Columns(TableJobs)[0] != "id" {
		t.Error("Columns returns the package's own slice")
	}
	if Columns("no_such_table") != nil {
		t.Error("Columns of an unknown table is not nil")
	}
	if strings.Join(Columns(TableSum), ",") == "" {
		t.Error("no columns for metrics_sum")
	}
}
