package registry

import (
	"context"
	"reflect"
	"testing"
	"time"
)

// TestReader reads back what Publish and Delete wrote, through a Reader
// that has no blob store.
func TestReader(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	start := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	f.clock.Set(start)
	v1, _ := f.publish(t, "iris", map[string][]byte{"model.onnx": linear(t, 1)}, Meta{Author: "ada", Message: "first"})
	f.clock.Advance(time.Hour)
	v2, _ := f.publish(t, "iris", map[string][]byte{"model.onnx": linear(t, 2)}, Meta{Parents: []uint64{1}})
	f.clock.Advance(time.Hour)
	v3, _ := f.publish(t, "iris", map[string][]byte{"model.onnx": linear(t, 3)},
		Meta{Author: "optimizer", Parents: []uint64{2}, Source: SourceOptimize, Job: "job-1", Incident: "inc-1"})
	f.clock.Advance(time.Hour)
	h1, _ := f.publish(t, "housing", map[string][]byte{"model.onnx": linear(t, 4)}, Meta{})
	if err := f.reg.Delete(ctx, "iris", 3); err != nil {
		t.Fatal(err)
	}
	if err := f.reg.Delete(ctx, "housing", 1); err != nil {
		t.Fatal(err)
	}
	v3.State = StateDeleted
	h1.State = StateDeleted

	r := NewReader(f.db.Conn, f.db.Name)
	for model, want := range map[string]bool{"iris": true, "housing": true, "wine": false} {
		if got, err := r.Has(ctx, model); err != nil || got != want {
			t.Errorf("Has(%s) = %v, %v; want %v", model, got, err, want)
		}
	}
	latest, err := r.Latest(ctx, "", 10)
	if err != nil || !reflect.DeepEqual(latest, map[string]uint64{"iris": 2}) {
		t.Errorf("Latest = %v, %v; want iris 2 (v3 deleted; housing has no active version)", latest, err)
	}
	if latest, err := r.Latest(ctx, "housing", 10); err != nil || len(latest) != 0 {
		t.Errorf("Latest(housing) = %v, %v; want none", latest, err)
	}

	same := func(what string, got []Version, want ...Version) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: %d records, want %d", what, len(got), len(want))
		}
		for i := range got {
			g, w := got[i], want[i]
			g.Updated, w.Updated, g.rowVersion, w.rowVersion = time.Time{}, time.Time{}, 0, 0
			if !reflect.DeepEqual(g, w) {
				t.Errorf("%s[%d] = %+v\nwant %+v", what, i, g, w)
			}
		}
	}
	got, err := r.Newest(ctx, "iris", 10)
	if err != nil {
		t.Fatal(err)
	}
	same("Newest(iris, 10)", got, v1, v2, v3)
	got, err = r.Newest(ctx, "iris", 2)
	if err != nil {
		t.Fatal(err)
	}
	same("Newest(iris, 2)", got, v2, v3)
	got, err = r.Created(ctx, "iris", start.Add(time.Hour), start.Add(2*time.Hour+time.Millisecond), 10)
	if err != nil {
		t.Fatal(err)
	}
	same("Created(iris, [1h, 2h])", got, v3, v2)
	got, err = r.Created(ctx, "iris", start, start.Add(3*time.Hour), 1)
	if err != nil {
		t.Fatal(err)
	}
	same("Created(iris, limit 1)", got, v3)
}
