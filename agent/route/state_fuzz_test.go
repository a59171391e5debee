package route

import (
	"maps"
	"os"
	"path/filepath"
	"testing"
)

// FuzzStateFile loads arbitrary bytes as the agent's route state file: it is
// refused as corrupt or opens a table whose pins are positive and whose
// splits validate (or are nil, "off"); routing every model in it does not
// panic; and what the table saves loads back to the same state.
func FuzzStateFile(f *testing.F) {
	f.Add([]byte(`{"pins":{"iris":3},"canary":{"iris":{"version":4,"percent":10}},"shadow":{"iris":null}}`))
	f.Add([]byte(`{"pins":{"iris":-1,"":2},"canary":{"m":{"version":0,"percent":300}},"shadow":{"m":{"version":2,"percent":1e308}}}`))
	f.Add([]byte(`{"pins":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, "route.json")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		tbl, err := Open(path, nil)
		if err != nil {
			return
		}
		models := map[string]bool{}
		for m, v := range tbl.pins {
			if v <= 0 {
				t.Fatalf("pin %s=%d kept", m, v)
			}
			models[m] = true
		}
		for _, splits := range []map[string]*Split{tbl.canaries, tbl.shadows} {
			for m, s := range splits {
				if s != nil && s.Validate() != nil {
					t.Fatalf("invalid split for %s kept: %+v", m, *s)
				}
				models[m] = true
			}
		}
		for m := range models {
			tbl.Serving(m, []int64{5, 4, 3, 2, 1})
			tbl.Choose(m, 0, "request-1")
			tbl.Choose(m, 2, "request-2")
		}
		tbl.mu.Lock()
		err = tbl.save()
		tbl.mu.Unlock()
		if err != nil {
			t.Fatalf("save: %v", err)
		}
		again, err := Open(path, nil)
		if err != nil {
			t.Fatalf("reopen what was saved: %v", err)
		}
		if !maps.Equal(again.pins, tbl.pins) || !sameSplits(again.canaries, tbl.canaries) || !sameSplits(again.shadows, tbl.shadows) {
			t.Fatalf("state changed across save and load")
		}
	})
}

func sameSplits(a, b map[string]*Split) bool {
	return maps.EqualFunc(a, b, func(x, y *Split) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) })
}
