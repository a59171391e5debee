package route

import (
	"errors"
	"path/filepath"
	"reflect"
	"testing"
)

func TestServingDesired(t *testing.T) {
	for name, tc := range map[string]struct {
		d          Desired
		candidates []int64
		want       Serving
	}{
		"serving loadable":          {d: Desired{Serving: 2, Previous: 1}, candidates: []int64{3, 2, 1}, want: Serving{Versions: []int64{2}}},
		"serving not yet: previous": {d: Desired{Serving: 2, Previous: 1}, candidates: []int64{3, 1}, want: Serving{Versions: []int64{1}}},
		"neither: nothing new":      {d: Desired{Serving: 2, Previous: 1}, candidates: []int64{3}, want: Serving{}},
		"canary and shadow": {d: Desired{Serving: 1, Canary: &Split{Version: 2, Percent: 20}, Shadow: &Split{Version: 3, Percent: 10}},
			candidates: []int64{3, 2, 1}, want: Serving{Versions: []int64{1, 2, 3}, Splits: []int64{2, 3}}},
		"canary not downloaded": {d: Desired{Serving: 1, Canary: &Split{Version: 2, Percent: 20}},
			candidates: []int64{1}, want: Serving{Versions: []int64{1}}},
		"pinned": {d: Desired{Serving: 1, Pinned: true}, candidates: []int64{2, 1}, want: Serving{Versions: []int64{1}, Pinned: 1}},
	} {
		t.Run(name, func(t *testing.T) {
			tb := open(t, "", map[string]Policy{"m": {Latest: 3}})
			tb.SetDesired(map[string]Desired{"m": tc.d}, "http://c1")
			got := tb.Serving("m", tc.candidates)
			if len(got.Versions) == 0 && len(tc.want.Versions) == 0 {
				got.Versions, tc.want.Versions = nil, nil
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Serving = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestDesiredOverridesLocal: a desired state replaces the policy, the pin
// and the split overrides; the setters refuse while it holds, and the
// local state comes back when the model leaves the desired state.
func TestDesiredOverridesLocal(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state.json")
	tb := open(t, state, map[string]Policy{"m": {Latest: 2}})
	if err := tb.Pin("m", 3); err != nil {
		t.Fatal(err)
	}
	if err := tb.SetSplit("m", Canary, &Split{Version: 4, Percent: 50}); err != nil {
		t.Fatal(err)
	}
	tb.SetDesired(map[string]Desired{"m": {Serving: 2, Shadow: &Split{Version: 1, Percent: 5}}}, "http://c1")
	if got := tb.Serving("m", []int64{4, 3, 2, 1}); !reflect.DeepEqual(got.Versions, []int64{2, 1}) || got.Pinned != 0 {
		t.Errorf("Serving under desired = %+v, want [2 1] unpinned", got)
	}
	if c, s := tb.Splits("m"); c != nil || s == nil || s.Version != 1 {
		t.Errorf("Splits = %v %v, want no canary and shadow to 1", c, s)
	}
	for name, err := range map[string]error{
		"pin":   tb.Pin("m", 1),
		"split": tb.SetSplit("m", Shadow, nil),
		"unpin": func() error { _, err := tb.Unpin("m"); return err }(),
	} {
		var ce *ControlledError
		if !errors.Is(err, ErrControlled) || !errors.As(err, &ce) || ce.Model != "m" || ce.By != "http://c1" {
			t.Errorf("%s: err = %v, want a ControlledError naming m and http://c1", name, err)
		}
	}
	if err := tb.Pin("other", 1); err != nil {
		t.Errorf("a model not in the desired state: %v", err)
	}
	tb.SetDesired(nil, "")
	if got := tb.Serving("m", []int64{4, 3, 2, 1}); !reflect.DeepEqual(got.Versions, []int64{3, 4}) || got.Pinned != 3 {
		t.Errorf("Serving after the desired state went = %+v, want the local pin 3 and canary 4", got)
	}
}
