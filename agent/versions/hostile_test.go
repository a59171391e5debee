package versions

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/drover-ml/drover/agent/route"
	"github.com/drover-ml/drover/shared/testenv"
)

// TestUnknownNamesCreateNothing: every lookup by a name the set does not
// know answers ErrModelNotFound and leaves the set's model map as it was.
func TestUnknownNamesCreateNothing(t *testing.T) {
	h := newHarness(t, Config{})
	h.publish("lin", 1, linear(t, 1))
	h.sync("lin")
	testenv.Eventually(t, wait, "v1 serving", func() bool { return h.serving("lin") == 1 })
	if !h.set.Has("lin") {
		t.Fatal("Has(lin) = false for a serving model")
	}
	for i := range 500 {
		name := fmt.Sprintf("invented-%d", i)
		if h.set.Has(name) {
			t.Fatalf("Has(%s) = true", name)
		}
		if _, err := h.set.Acquire(name, int64(i%3)); !errors.Is(err, ErrModelNotFound) {
			t.Fatalf("Acquire(%s): %v", name, err)
		}
		if _, _, err := h.set.Route(name, 0, "id"); !errors.Is(err, ErrModelNotFound) {
			t.Fatalf("Route(%s): %v", name, err)
		}
		if _, err := h.set.Status(name); !errors.Is(err, ErrModelNotFound) {
			t.Fatalf("Status(%s): %v", name, err)
		}
		if err := h.set.SetSplit(name, route.Canary, &route.Split{Version: 1, Percent: 5}); !errors.Is(err, ErrModelNotFound) {
			t.Fatalf("SetSplit(%s): %v", name, err)
		}
		if err := h.set.Pin(context.Background(), name, 1); !errors.Is(err, ErrModelNotFound) {
			t.Fatalf("Pin(%s): %v", name, err)
		}
	}
	if got := h.set.Models(); len(got) != 1 || got[0] != "lin" {
		t.Fatalf("models after 500 invented names: %v", got)
	}
}
