package ring

import (
	"cmp"
	"maps"
	"slices"
	"strconv"

	"github.com/cespare/xxhash/v2"
)

// hashRing is an immutable consistent-hash ring. A new membership builds a new
// hashRing; readers use whichever one they loaded, without locks.
type hashRing struct {
	points  []point
	weights map[string]int // node name -> virtual nodes it contributed
}

type point struct {
	hash uint64
	node string
}

// newHashRing builds the ring for nodes, each with its number of virtual
// nodes. The result depends only on the map's contents, never on its order.
func newHashRing(weights map[string]int) *hashRing {
	n := 0
	for _, w := range weights {
		n += w
	}
	h := &hashRing{points: make([]point, 0, n), weights: maps.Clone(weights)}
	for node, w := range weights {
		key := make([]byte, 0, len(node)+8)
		key = append(key, node...)
		key = append(key, '#')
		base := len(key)
		for i := range w {
			key = strconv.AppendInt(key[:base], int64(i), 10)
			h.points = append(h.points, point{hash: xxhash.Sum64(key), node: node})
		}
	}
	// Ties (two points with one hash) are broken by name, so every node
	// orders them the same way.
	slices.SortFunc(h.points, func(a, b point) int {
		if c := cmp.Compare(a.hash, b.hash); c != 0 {
			return c
		}
		return cmp.Compare(a.node, b.node)
	})
	return h
}

// owner returns the node of the first point at or after hash(key), wrapping
// around the circle; ok is false when the ring has no points.
func (h *hashRing) owner(key string) (string, bool) {
	if h == nil || len(h.points) == 0 {
		return "", false
	}
	k := xxhash.Sum64String(key)
	i, _ := slices.BinarySearchFunc(h.points, k, func(p point, k uint64) int { return cmp.Compare(p.hash, k) })
	if i == len(h.points) {
		i = 0
	}
	return h.points[i].node, true
}

// sameNodes reports whether h was built from exactly these weights.
func (h *hashRing) sameNodes(weights map[string]int) bool {
	return h != nil && maps.Equal(h.weights, weights)
}
