package ingest

import (
	"strconv"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"

	"github.com/drover-ml/drover/collector/store"
)

// agentRequest is like what 50 agents send: 10 resource attributes each,
// gauges and histograms with 6 point attributes.
func agentRequest() []byte {
	md := pmetric.NewMetrics()
	ts := pcommon.NewTimestampFromTime(time.Now())
	for h := 0; h < 50; h++ {
		rm := md.ResourceMetrics().AppendEmpty()
		ra := rm.Resource().Attributes()
		for _, k := range []string{"service.name", "service.version", "service.instance.id", "host.name", "host.arch", "os.type", "drover.agent.id", "deployment.environment", "cloud.region", "k8s.pod.name"} {
			ra.PutStr(k, k+"-value-"+strconv.Itoa(h))
		}
		ms := rm.ScopeMetrics().AppendEmpty().Metrics()
		for m := 0; m < 10; m++ {
			met := ms.AppendEmpty()
			met.SetName("drover.metric." + strconv.Itoa(m))
			if m%2 == 0 {
				dp := met.SetEmptyGauge().DataPoints().AppendEmpty()
				dp.SetTimestamp(ts)
				dp.SetDoubleValue(float64(m))
				for _, k := range []string{"drover.model", "drover.model.version", "drover.protocol", "drover.status", "drover.route.role", "drover.feature.kind"} {
					dp.Attributes().PutStr(k, valueOf(k))
				}
				continue
			}
			dp := met.SetEmptyHistogram().DataPoints().AppendEmpty()
			dp.SetTimestamp(ts)
			dp.ExplicitBounds().FromRaw([]float64{1, 2, 3, 4, 5, 6, 7, 8})
			dp.BucketCounts().FromRaw([]uint64{1, 2, 3, 4, 5, 6, 7, 8, 9})
			for _, k := range []string{"drover.model", "drover.model.version", "drover.feature", "drover.feature.kind"} {
				dp.Attributes().PutStr(k, valueOf(k))
			}
		}
	}
	b, _ := pmetricotlp.NewExportRequestFromMetrics(md).MarshalProto()
	return b
}

// valueOf is a valid value for attribute k (a version is a number).
func valueOf(k string) string {
	if k == "drover.model.version" {
		return "1"
	}
	return "v"
}

// BenchmarkConvert measures decode-to-rows per data point: "reused" into
// one batch reset between requests, "fresh" into a new batch per request,
// as the receivers do (the rows stay in the batch until their insert).
func BenchmarkConvert(b *testing.B) {
	req := agentRequest()
	for _, fresh := range []bool{false, true} {
		name := "reused"
		if fresh {
			name = "fresh"
		}
		b.Run(name, func(b *testing.B) {
			var batch store.Batch
			b.ReportAllocs()
			for b.Loop() {
				if fresh {
					batch = store.Batch{}
				} else {
					batch.Reset()
				}
				if err := Convert(KindMetrics, req, &batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*500), "ns/point")
		})
	}
}
