package labels_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/drover-ml/drover/collector/labels"
	"github.com/drover-ml/drover/collector/store"
)

// TestLabelledRowsCarryInputsInTimeOrder: Labelled returns each labelled
// sample with its inputs and time, oldest first, across versions; labels
// received before from and samples outside [from, to) are left out.
func TestLabelledRowsCarryInputsInTimeOrder(t *testing.T) {
	db := migrated(t)
	st := labels.NewStore(db.Conn, db.Name)
	ctx := context.Background()
	start := time.Now().Add(-time.Hour).UTC().Truncate(time.Millisecond)
	var rows []store.SampleRow
	var ls []labels.Label
	// Inserted newest first: Labelled sorts by sample time.
	for i := 4; i >= 0; i-- {
		id := fmt.Sprintf("r%d", i)
		rows = append(rows, store.SampleRow{Time: start.Add(time.Duration(i) * time.Minute), Model: "m", ModelVersion: fmt.Sprint(1 + i%2),
			Host: "h", RequestID: id, Inputs: fmt.Sprintf(`{"outputs":[{"name":"X","datatype":"FP32","shape":[1,2],"data":[%d,%d]}]}`, i, 10*i),
			Outputs: classOutputs(0)})
		ls = append(ls, labels.Label{Time: start.Add(time.Duration(i)*time.Minute + time.Second), Model: "m", RequestID: id, Label: fmt.Sprint(i % 2), Source: "collector", Sender: "t"})
	}
	// Outside the window: a sample before from.
	rows = append(rows, store.SampleRow{Time: start.Add(-time.Hour), Model: "m", ModelVersion: "1", Host: "h", RequestID: "old", Inputs: `[]`, Outputs: classOutputs(0)})
	ls = append(ls, labels.Label{Time: start.Add(time.Second), Model: "m", RequestID: "old", Label: "1", Source: "collector", Sender: "t"})
	insertSamples(t, db, rows)
	if err := st.Insert(ctx, ls); err != nil {
		t.Fatal(err)
	}
	js, err := st.Labelled(ctx, "m", start, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(js) != 5 {
		t.Fatalf("%d rows, want 5: %+v", len(js), js)
	}
	for i, j := range js {
		want := fmt.Sprintf(`{"outputs":[{"name":"X","datatype":"FP32","shape":[1,2],"data":[%d,%d]}]}`, i, 10*i)
		if j.RequestID != fmt.Sprintf("r%d", i) || j.Inputs != want || !j.Time.Equal(start.Add(time.Duration(i)*time.Minute)) || j.Label != fmt.Sprint(i%2) {
			t.Errorf("row %d = %+v, want r%d at %s with inputs %s and label %d", i, j, i, start.Add(time.Duration(i)*time.Minute), want, i%2)
		}
	}
	// Join reads no inputs.
	plain, err := st.Join(ctx, "m", "", start, time.Now())
	if err != nil || len(plain) != 5 || plain[0].Inputs != "" {
		t.Errorf("Join = %d rows (%v), inputs %q; want 5 rows without inputs", len(plain), err, plain[0].Inputs)
	}
}
