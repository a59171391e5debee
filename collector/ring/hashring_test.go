package ring

import (
	"fmt"
	"math"
	"testing"
)

func modelNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("model-%05d", i)
	}
	return out
}

func weightsOf(vnodes int, nodes ...string) map[string]int {
	w := make(map[string]int, len(nodes))
	for _, n := range nodes {
		w[n] = vnodes
	}
	return w
}

func assignment(h *hashRing, models []string) map[string]string {
	out := make(map[string]string, len(models))
	for _, m := range models {
		node, ok := h.owner(m)
		if !ok {
			panic("empty ring")
		}
		out[m] = node
	}
	return out
}

func TestHashRingBalance(t *testing.T) {
	models := modelNames(10000)
	for name, nodes := range map[string][]string{
		"statefulset": {"drover-collector-0", "drover-collector-1", "drover-collector-2"},
		"hosts":       {"collector-a.example.net", "collector-b.example.net", "collector-c.example.net"},
		"short":       {"a", "b", "c"},
	} {
		t.Run(name, func(t *testing.T) {
			h := newHashRing(weightsOf(128, nodes...))
			count := make(map[string]int)
			for _, node := range assignment(h, models) {
				count[node]++
			}
			for _, n := range nodes {
				share := float64(count[n]) / float64(len(models))
				t.Logf("%s owns %.1f%%", n, 100*share)
				if math.Abs(share-1.0/3) > 0.05 {
					t.Errorf("%s owns %.1f%% of the models, want 33.3%% ± 5%%", n, 100*share)
				}
			}
		})
	}
}

func TestHashRingDeterministic(t *testing.T) {
	models := modelNames(1000)
	a := assignment(newHashRing(weightsOf(128, "n1", "n2", "n3")), models)
	// Same members given in another order, on another "node".
	w := map[string]int{"n3": 128, "n1": 128}
	w["n2"] = 128
	b := assignment(newHashRing(w), models)
	for _, m := range models {
		if a[m] != b[m] {
			t.Fatalf("owner of %s: %s then %s", m, a[m], b[m])
		}
	}
	// A fixed point, so that a change of hash function or key format, which
	// would make mixed-version clusters disagree, fails loudly.
	if got, _ := newHashRing(weightsOf(128, "n1", "n2", "n3")).owner("fraud-detector"); got != golden {
		t.Errorf("owner of fraud-detector = %s, want %s (the ring's hashing changed)", got, golden)
	}
}

// golden is the owner of "fraud-detector" among n1, n2, n3 with 128 vnodes.
const golden = "n2"

func TestHashRingMinimalMovement(t *testing.T) {
	models := modelNames(10000)
	three := assignment(newHashRing(weightsOf(128, "n1", "n2", "n3")), models)
	four := assignment(newHashRing(weightsOf(128, "n1", "n2", "n3", "n4")), models)
	two := assignment(newHashRing(weightsOf(128, "n1", "n3")), models)

	t.Run("add", func(t *testing.T) {
		moved := 0
		for _, m := range models {
			if three[m] != four[m] {
				moved++
				if four[m] != "n4" {
					t.Fatalf("%s moved from %s to %s; only moves to the new node n4 are allowed", m, three[m], four[m])
				}
			}
		}
		frac := float64(moved) / float64(len(models))
		t.Logf("adding a 4th node moved %.1f%% of the models", 100*frac)
		if frac < 0.20 || frac > 0.30 {
			t.Errorf("adding a 4th node moved %.1f%% of the models, want about 25%%", 100*frac)
		}
	})
	t.Run("remove", func(t *testing.T) {
		moved := 0
		for _, m := range models {
			if three[m] != two[m] {
				moved++
				if three[m] != "n2" {
					t.Fatalf("%s moved from %s to %s; only the removed node n2's models may move", m, three[m], two[m])
				}
			} else if two[m] == "n2" {
				t.Fatalf("%s still owned by removed node n2", m)
			}
		}
		frac := float64(moved) / float64(len(models))
		t.Logf("removing a node moved %.1f%% of the models", 100*frac)
		if frac < 0.28 || frac > 0.39 {
			t.Errorf("removing 1 of 3 nodes moved %.1f%% of the models, want about 33%%", 100*frac)
		}
	})
}

func TestHashRingEmptyAndSingle(t *testing.T) {
	if _, ok := newHashRing(nil).owner("m"); ok {
		t.Error("empty ring has an owner")
	}
	var nilRing *hashRing
	if _, ok := nilRing.owner("m"); ok {
		t.Error("nil ring has an owner")
	}
	h := newHashRing(weightsOf(1, "only"))
	for _, m := range modelNames(100) {
		if got, ok := h.owner(m); !ok || got != "only" {
			t.Fatalf("owner(%s) = %q, %v; want only", m, got, ok)
		}
	}
}

func TestHashRingWeights(t *testing.T) {
	// A node that advertises twice the virtual nodes gets about twice the
	// models: each node's own count is what every node uses.
	h := newHashRing(map[string]int{"big": 256, "small": 128})
	count := make(map[string]int)
	for _, n := range assignment(h, modelNames(10000)) {
		count[n]++
	}
	if r := float64(count["big"]) / float64(count["small"]); r < 1.6 || r > 2.5 {
		t.Errorf("big/small = %d/%d = %.2f, want about 2", count["big"], count["small"], r)
	}
}

func BenchmarkOwner(b *testing.B) {
	h := newHashRing(weightsOf(128, "n1", "n2", "n3", "n4", "n5"))
	models := modelNames(1024)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		h.owner(models[i%len(models)])
	}
}
