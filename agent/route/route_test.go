package route

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func open(t *testing.T, state string, policies map[string]Policy) *Table {
	t.Helper()
	tb, err := Open(state, policies)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

func TestServing(t *testing.T) {
	candidates := []int64{5, 4, 3, 2, 1}
	for name, tc := range map[string]struct {
		policy         Policy
		pin            int64
		canary, shadow *Split
		candidates     []int64
		want           Serving
	}{
		"latest":                 {want: Serving{Versions: []int64{5}}},
		"latest 2":               {policy: Policy{Latest: 2}, want: Serving{Versions: []int64{5, 4}}},
		"latest more than there": {policy: Policy{Latest: 9}, candidates: []int64{2, 1}, want: Serving{Versions: []int64{2, 1}}},
		"specific":               {policy: Policy{Specific: []int64{1, 3, 7}}, want: Serving{Versions: []int64{3, 1}}},
		"nothing loadable":       {candidates: []int64{}, want: Serving{Versions: []int64{}}},
		"pinned":                 {policy: Policy{Latest: 2}, pin: 2, want: Serving{Versions: []int64{2}, Pinned: 2}},
		"pinned not loadable":    {pin: 9, want: Serving{Versions: []int64{5}, Pinned: 9}},
		"canary beside latest": {canary: &Split{Version: 5, Percent: 10},
			want: Serving{Versions: []int64{4, 5}, Splits: []int64{5}}},
		"canary and shadow": {policy: Policy{Specific: []int64{2}}, canary: &Split{Version: 3, Percent: 10}, shadow: &Split{Version: 1, Percent: 50},
			want: Serving{Versions: []int64{2, 3, 1}, Splits: []int64{3, 1}}},
		"same canary and shadow": {canary: &Split{Version: 3, Percent: 10}, shadow: &Split{Version: 3, Percent: 50},
			want: Serving{Versions: []int64{5, 3}, Splits: []int64{3}}},
		"canary not loadable": {canary: &Split{Version: 8, Percent: 10}, want: Serving{Versions: []int64{5}}},
		"pin is the canary": {pin: 3, canary: &Split{Version: 3, Percent: 10},
			want: Serving{Versions: []int64{3}, Pinned: 3}},
		"pin beside a shadow": {pin: 3, shadow: &Split{Version: 5, Percent: 10},
			want: Serving{Versions: []int64{3, 5}, Splits: []int64{5}, Pinned: 3}},
	} {
		t.Run(name, func(t *testing.T) {
			tb := open(t, "", map[string]Policy{"m": tc.policy})
			if tc.pin != 0 {
				if err := tb.Pin("m", tc.pin); err != nil {
					t.Fatal(err)
				}
			}
			for kind, sp := range map[Kind]*Split{Canary: tc.canary, Shadow: tc.shadow} {
				if sp != nil {
					if err := tb.SetSplit("m", kind, sp); err != nil {
						t.Fatal(err)
					}
				}
			}
			c := candidates
			if tc.candidates != nil {
				c = tc.candidates
			}
			if got := tb.Serving("m", c); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Serving = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestDefault(t *testing.T) {
	s := Serving{Versions: []int64{4, 5, 3}, Splits: []int64{5, 3}}
	loaded := func(ns ...int64) func(int64) bool {
		return func(n int64) bool {
			for _, l := range ns {
				if l == n {
					return true
				}
			}
			return false
		}
	}
	for name, tc := range map[string]struct {
		loaded  func(int64) bool
		standIn bool
		want    int64
	}{
		"the policy's version":               {loaded(4, 5, 3), false, 4},
		"never a split version":              {loaded(5, 3), false, 0},
		"a canary stands in":                 {loaded(5, 3), true, 5},
		"the policy's version even stand-in": {loaded(3, 4), true, 4},
		"nothing loaded":                     {loaded(), true, 0},
	} {
		if got := s.Default(tc.loaded, tc.standIn); got != tc.want {
			t.Errorf("%s: Default = %d, want %d", name, got, tc.want)
		}
	}
}

func TestChoose(t *testing.T) {
	tb := open(t, "", map[string]Policy{"m": {Canary: &Split{Version: 7, Percent: 20}, Shadow: &Split{Version: 3, Percent: 50}}})
	const n = 20000
	canary, shadow := 0, 0
	for i := range n {
		id := fmt.Sprintf("req-%d", i)
		c := tb.Choose("m", 0, id)
		if c != tb.Choose("m", 0, id) {
			t.Fatalf("request %s routed two ways", id)
		}
		if c.Version != 0 {
			t.Fatalf("Version = %d for a request that names none", c.Version)
		}
		switch c.Canary {
		case 7:
			canary++
		case 0:
		default:
			t.Fatalf("canary %d", c.Canary)
		}
		if s := c.Shadow(5); s == 3 {
			shadow++
		} else if s != 0 {
			t.Fatalf("shadow %d", s)
		}
		if c.Shadow(3) != 0 {
			t.Fatal("a request shadowed to the version that answered it")
		}
		// A request that names a version never goes to the canary.
		if c := tb.Choose("m", 2, id); c.Canary != 0 || c.Version != 2 {
			t.Fatalf("request for v2 routed %+v", c)
		}
	}
	for what, got := range map[string]struct {
		n    int
		want float64
	}{"canary": {canary, 0.2}, "shadow": {shadow, 0.5}} {
		share := float64(got.n) / n
		if sd := math.Sqrt(got.want * (1 - got.want) / n); math.Abs(share-got.want) > 5*sd {
			t.Errorf("%s share %.4f, want %.2f ± %.4f", what, share, got.want, 5*sd)
		}
	}
	// No splits: nothing chosen.
	if c := tb.Choose("other", 0, "x"); c != (Choice{}) {
		t.Fatalf("model without splits: %+v", c)
	}
	// The API switches the policy's canary off.
	if err := tb.SetSplit("m", Canary, nil); err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		if c := tb.Choose("m", 0, fmt.Sprintf("req-%d", i)); c.Canary != 0 {
			t.Fatalf("canary switched off, yet %+v", c)
		}
	}
}

// TestState: pins and split overrides survive a restart; policies come from
// the configuration, not the file; a corrupt file is an error that says
// what to do.
func TestState(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent", "state.json")
	tb := open(t, path, map[string]Policy{"m": {Latest: 2}})
	if err := tb.Pin("m", 3); err != nil {
		t.Fatal(err)
	}
	if err := tb.SetSplit("m", Shadow, &Split{Version: 4, Percent: 25}); err != nil {
		t.Fatal(err)
	}
	if err := tb.SetSplit("m", Canary, nil); err != nil {
		t.Fatal(err)
	}
	if err := tb.SetSplit("m", "blue", &Split{Version: 4, Percent: 25}); err == nil || !strings.Contains(err.Error(), "unknown split") {
		t.Fatalf("unknown split kind: %v", err)
	}
	if err := tb.SetSplit("m", Canary, &Split{Version: 4, Percent: 0}); err == nil || !strings.Contains(err.Error(), "canary: percent") {
		t.Fatalf("a 0 %% canary: %v", err)
	}

	again := open(t, path, map[string]Policy{"m": {Canary: &Split{Version: 9, Percent: 5}}})
	canary, shadow := again.Splits("m")
	if again.Pinned("m") != 3 || canary != nil || !reflect.DeepEqual(shadow, &Split{Version: 4, Percent: 25}) {
		t.Fatalf("after a restart: pin %d, canary %+v, shadow %+v", again.Pinned("m"), canary, shadow)
	}
	if p := again.Policy("m"); p.String() != "latest, canary v9 5%" {
		t.Fatalf("policy %q", p)
	}
	if had, err := again.Unpin("m"); err != nil || !had {
		t.Fatalf("Unpin = %v, %v", had, err)
	}
	if had, _ := again.Unpin("m"); had {
		t.Fatal("second Unpin found a pin")
	}
	if third := open(t, path, nil); third.Pinned("m") != 0 {
		t.Fatal("the unpin was not saved")
	}

	if err := os.WriteFile(path, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, nil); err == nil || !strings.Contains(err.Error(), "corrupt") || !strings.Contains(err.Error(), "fix or remove it") {
		t.Fatalf("corrupt state file: %v", err)
	}
	if _, err := Open("", map[string]Policy{"m": {Latest: -1}}); err == nil || !strings.Contains(err.Error(), "policy for m: latest") {
		t.Fatalf("bad policy: %v", err)
	}
}

// TestSetterKeepsStateOnWriteError: when the state file cannot be written,
// the change is refused and the table stays as it was.
func TestSetterKeepsStateOnWriteError(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	tb := open(t, path, nil)
	if err := tb.Pin("m", 1); err != nil {
		t.Fatal(err)
	}
	// A directory where the temporary file would go makes the write fail.
	if err := os.Mkdir(path+".tmp", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := tb.Pin("m", 2); err == nil {
		t.Fatal("Pin with an unwritable state file succeeded")
	}
	if tb.Pinned("m") != 1 {
		t.Fatalf("pin %d after a failed write, want 1", tb.Pinned("m"))
	}
	if err := tb.SetSplit("m", Canary, &Split{Version: 2, Percent: 10}); err == nil {
		t.Fatal("SetSplit with an unwritable state file succeeded")
	}
	if c, _ := tb.Splits("m"); c != nil {
		t.Fatalf("canary %+v after a failed write", c)
	}
	if _, err := tb.Unpin("m"); err == nil || tb.Pinned("m") != 1 {
		t.Fatalf("Unpin with an unwritable state file: %v, pin %d", err, tb.Pinned("m"))
	}
}
