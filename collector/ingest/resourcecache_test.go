package ingest

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/drover-ml/drover/collector/store"
	"github.com/drover-ml/drover/shared/semconv"
)

// inventedResources returns a request of n resources, each with attributes
// no other has (a value of pad bytes), one gauge point each.
func inventedResources(from, n, pad int) pmetric.Metrics {
	md := pmetric.NewMetrics()
	filler := strings.Repeat("x", pad)
	for i := range n {
		rm := md.ResourceMetrics().AppendEmpty()
		a := rm.Resource().Attributes()
		a.PutStr(semconv.AttrServiceName, semconv.ServiceNameAgent)
		a.PutStr(semconv.AttrHostName, fmt.Sprintf("host-%d", from+i))
		a.PutStr("invented", filler)
		g := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
		g.SetName(semconv.MetricEval)
		g.SetEmptyGauge().DataPoints().AppendEmpty().SetDoubleValue(1)
	}
	return md
}

// TestDrillResourceCacheBounded: a sender inventing resources (here 40 000
// of about 1 KiB each, 80 MiB by the cache's measure) keeps the cache
// within its bound in bytes (1 MiB), evicting the least recently used and
// counting evictions; a resource in use stays cached, and rows still carry
// every resource's attributes.
func TestDrillResourceCacheBounded(t *testing.T) {
	const bound = 1 << 20
	reg := prometheus.NewRegistry()
	rc := NewResourceCache(bound, reg)
	hot := inventedResources(-1, 1, 10)
	var b store.Batch
	rc.convertMetrics(hot, &b)
	hotEntry := rc.Len()

	const total, perRequest = 40000, 100
	var max int64
	for from := 0; from < total; from += perRequest {
		b = store.Batch{}
		rc.convertMetrics(inventedResources(from, perRequest, 1024), &b)
		if len(b.Resources) != perRequest || b.Resources[perRequest-1].Attributes["host.name"] != fmt.Sprintf("host-%d", from+perRequest-1) {
			t.Fatalf("request at %d: %d resources rows, last %v", from, len(b.Resources), b.Resources[len(b.Resources)-1].Attributes["host.name"])
		}
		max = maxOf(max, rc.Bytes())
		// The agent that keeps sending stays cached.
		b = store.Batch{}
		rc.convertMetrics(hot, &b)
	}
	if max > bound || rc.Bytes() > bound {
		t.Errorf("cache held up to %d bytes (now %d), bound %d", max, rc.Bytes(), bound)
	}
	if rc.Bytes() < bound/2 {
		t.Errorf("cache holds %d bytes: it should fill up to its bound %d", rc.Bytes(), bound)
	}
	if hotEntry != 1 || !cached(rc, hot) {
		t.Error("the resource in use was evicted")
	}
	ev := rc.Evictions()
	if want := uint64(total - rc.Len() + 1); ev != want {
		t.Errorf("%d evictions, want %d (every invented resource but the %d cached)", ev, want, rc.Len()-1)
	}
	if got := gatheredValue(t, reg, "drover_collector_resource_cache_evictions_total"); got != float64(ev) {
		t.Errorf("evictions metric %v, want %d", got, ev)
	}
	if got := gatheredValue(t, reg, "drover_collector_resource_cache_bytes"); got != float64(rc.Bytes()) || got > bound {
		t.Errorf("bytes metric %v, want %d", got, rc.Bytes())
	}
}

// TestResourceCacheConcurrent: receivers convert concurrently; the same
// resources from many goroutines are cached once and the bound holds.
func TestResourceCacheConcurrent(t *testing.T) {
	rc := NewResourceCache(64<<10, nil)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				var b store.Batch
				rc.convertMetrics(inventedResources((g%2)*1000+i, 20, 100), &b)
			}
		})
	}
	wg.Wait()
	if rc.Bytes() > 64<<10 {
		t.Errorf("%d bytes, bound %d", rc.Bytes(), 64<<10)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var n int
	for _, cs := range rc.m {
		n += len(cs)
	}
	if n != rc.lru.Len() {
		t.Errorf("%d resources in the map, %d in the list", n, rc.lru.Len())
	}
}

// TestResourceTooLargeIsNotCached: a resource over the whole bound is
// converted, not cached.
func TestResourceTooLargeIsNotCached(t *testing.T) {
	rc := NewResourceCache(4<<10, nil)
	var b store.Batch
	rc.convertMetrics(inventedResources(0, 1, 8<<10), &b)
	if len(b.Resources) != 1 || len(b.Resources[0].Attributes["invented"]) != 8<<10 {
		t.Fatalf("resources rows %d", len(b.Resources))
	}
	if rc.Len() != 0 || rc.Bytes() != 0 {
		t.Errorf("cache holds %d resources, %d bytes", rc.Len(), rc.Bytes())
	}
}

func cached(rc *ResourceCache, md pmetric.Metrics) bool {
	before := rc.Evictions()
	var b store.Batch
	n := rc.Len()
	rc.convertMetrics(md, &b)
	return rc.Len() == n && rc.Evictions() == before
}

func maxOf(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

// gatheredValue is the value of the single-series counter or gauge name
// in reg.
func gatheredValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			m := mf.GetMetric()[0]
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}
