package ingest

import (
	"container/list"
	"fmt"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"

	"github.com/drover-ml/drover/collector/store"
)

// DefaultResourceCacheBytes is the default bound of a ResourceCache (and
// the otlp.resource_cache_bytes default).
const DefaultResourceCacheBytes = 32 << 20

// Estimated bytes a cached resource holds besides its attributes' text:
// the knownResource, its list element and map slot, the slice and map
// headers (resourceOverhead); and per attribute, a map entry and two
// string headers in pairs (attrOverhead).
const (
	resourceOverhead = 320
	attrOverhead     = 96
)

// ResourceCache remembers what each OTLP resource's attributes give (the
// attribute map, the resource id, the columns), so that the resource an
// agent sends with every export is converted once, not once per request.
// It is a cache of a pure function of the attributes: what it forgets is
// rebuilt. It is bounded in bytes (an estimate of what its entries hold,
// the attributes' text counted twice), evicting the least recently used
// resources: senders inventing resources cost rebuilds, not memory. A
// resource larger than the whole bound is not cached. Safe for concurrent
// use; a nil *ResourceCache uses the package's default cache
// (DefaultResourceCacheBytes).
type ResourceCache struct {
	max int64

	mu        sync.Mutex
	m         map[uint64][]*knownResource // by attribute hash; a slice is never modified once published
	lru       *list.List                  // of *knownResource, most recently used first
	bytes     int64
	evictions uint64
}

// defaultResources serves Convert and a nil *ResourceCache.
var defaultResources = NewResourceCache(DefaultResourceCacheBytes, nil)

// NewResourceCache returns a cache bounded to maxBytes (<= 0:
// DefaultResourceCacheBytes). With reg, it registers
// drover_collector_resource_cache_bytes and
// drover_collector_resource_cache_evictions_total.
func NewResourceCache(maxBytes int64, reg prometheus.Registerer) *ResourceCache {
	if maxBytes <= 0 {
		maxBytes = DefaultResourceCacheBytes
	}
	rc := &ResourceCache{max: maxBytes, m: map[uint64][]*knownResource{}, lru: list.New()}
	if reg != nil {
		reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "drover_collector_resource_cache_bytes",
				Help: "Estimated bytes held by the cache of OTLP resources (bounded by otlp.resource_cache_bytes)."},
				func() float64 { b, _ := rc.snapshot(); return float64(b) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "drover_collector_resource_cache_evictions_total",
				Help: "OTLP resources evicted from the resource cache to stay within otlp.resource_cache_bytes (least recently used first); a steady rate means more distinct resources than the cache holds."},
				func() float64 { _, e := rc.snapshot(); return float64(e) }))
	}
	return rc
}

func (rc *ResourceCache) orDefault() *ResourceCache {
	if rc == nil {
		return defaultResources
	}
	return rc
}

func (rc *ResourceCache) snapshot() (bytes int64, evictions uint64) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.bytes, rc.evictions
}

// Bytes is the estimated size of the cached resources; never more than
// the bound.
func (rc *ResourceCache) Bytes() int64 {
	b, _ := rc.orDefault().snapshot()
	return b
}

// Len is the number of cached resources.
func (rc *ResourceCache) Len() int {
	rc = rc.orDefault()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.lru.Len()
}

// Evictions counts the resources evicted to stay within the bound.
func (rc *ResourceCache) Evictions() uint64 {
	_, e := rc.orDefault().snapshot()
	return e
}

// Convert is the package's Convert with this cache.
func (rc *ResourceCache) Convert(kind Kind, payload []byte, b *store.Batch) error {
	switch kind {
	case KindMetrics:
		if _, ok := rc.decodeMetrics(payload, nil, b); ok {
			return nil
		}
		req := pmetricotlp.NewExportRequest()
		if err := req.UnmarshalProto(payload); err != nil {
			return fmt.Errorf("decode OTLP metrics: %w", err)
		}
		rc.convertMetrics(req.Metrics(), b)
		return nil
	case KindLogs:
		req := plogotlp.NewExportRequest()
		if err := req.UnmarshalProto(payload); err != nil {
			return fmt.Errorf("decode OTLP logs: %w", err)
		}
		rc.convertLogs(req.Logs(), b)
		return nil
	}
	return fmt.Errorf("unknown payload kind %d", kind)
}

// convertMetrics converts with the default cache.
func convertMetrics(md pmetric.Metrics, b *store.Batch) { defaultResources.convertMetrics(md, b) }

// sizeOf estimates the bytes c holds.
func sizeOf(c *knownResource) int64 {
	n := int64(resourceOverhead)
	for _, s := range c.pairs {
		n += attrOverhead/2 + 2*int64(len(s))
	}
	return n
}

// get returns the cached resource with attribute hash h whose attributes
// are those of pairs' source (match), marking it used, or nil.
func (rc *ResourceCache) get(h uint64, match func(*knownResource) bool) *knownResource {
	rc.mu.Lock()
	cands := rc.m[h]
	rc.mu.Unlock()
	for _, c := range cands { // immutable once published
		if match(c) {
			rc.mu.Lock()
			if c.elem != nil { // not evicted meanwhile
				rc.lru.MoveToFront(c.elem)
			}
			rc.mu.Unlock()
			return c
		}
	}
	return nil
}

// put caches c under h (unless an equal resource got there first: that one
// is returned) and evicts the least recently used resources beyond the
// bound.
func (rc *ResourceCache) put(h uint64, c *knownResource) *knownResource {
	c.hash, c.size = h, sizeOf(c)
	if c.size > rc.max {
		return c
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, o := range rc.m[h] {
		if slices.Equal(o.pairs, c.pairs) {
			return o
		}
	}
	c.elem = rc.lru.PushFront(c)
	// A new slice: readers may hold the old one.
	rc.m[h] = append(slices.Clip(rc.m[h]), c)
	rc.bytes += c.size
	for rc.bytes > rc.max {
		rc.evictLocked(rc.lru.Back().Value.(*knownResource))
	}
	return c
}

func (rc *ResourceCache) evictLocked(c *knownResource) {
	rc.lru.Remove(c.elem)
	c.elem = nil
	rest := slices.DeleteFunc(slices.Clone(rc.m[c.hash]), func(o *knownResource) bool { return o == c })
	if len(rest) == 0 {
		delete(rc.m, c.hash)
	} else {
		rc.m[c.hash] = rest
	}
	rc.bytes -= c.size
	rc.evictions++
}
