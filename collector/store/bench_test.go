package store

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/drover-ml/drover/shared/semconv"
)

const benchRows = 100_000

// benchGauges returns n gauge rows from 10 models × 3 versions × 20 hosts ×
// 5 metrics, a point per series every 10 s, each with 3 point attributes and
// 4 resource attributes.
func benchGauges(n int) []GaugeRow {
	rows := make([]GaugeRow, n)
	base := time.Now().UTC().Add(-time.Hour)
	for i := range rows {
		model, version, host, metric := i%10, i/10%3, i/30%20, i/600%5
		hostName := "host-" + strconv.Itoa(host)
		rows[i] = GaugeRow{Point: Point{
			Time:         base.Add(time.Duration(i/3000) * 10 * time.Second),
			Service:      semconv.ServiceNameAgent,
			Host:         hostName,
			AgentID:      "agent-" + strconv.Itoa(host),
			Model:        "model-" + strconv.Itoa(model),
			ModelVersion: strconv.Itoa(version + 1),
			Metric:       "drover.bench." + strconv.Itoa(metric),
			Unit:         "1",
			Attributes: map[string]string{
				semconv.AttrMetric: "accuracy", semconv.AttrSource: "golden", semconv.AttrRole: "primary",
			},
			ResourceID: ResourceID(map[string]string{
				semconv.AttrServiceName: semconv.ServiceNameAgent, semconv.AttrHostName: hostName,
				semconv.AttrAgentID: "agent-" + strconv.Itoa(host), "os.type": "linux",
			}),
			ScopeName:    "github.com/drover-ml/drover/agent/telemetry",
			ScopeVersion: "0.1.0",
		}, Value: float64(i%1000) / 7}
	}
	return rows
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkInsertGauges inserts 100k gauge rows per op through Store.Insert
// (columnar appends in blocks) and, as the baseline in the same run, through
// the driver's row-wise batch.Append of the same rows in one block. It
// reports rows/s and the CPU time this process (the collector's side; the
// engine is a child process) spends per row, and for Store.Insert the ratio
// to the baseline's.
func BenchmarkInsertGauges(b *testing.B) {
	db, s := migrated(b)
	rows := benchGauges(benchRows)
	ctx := context.Background()
	run := func(b *testing.B, insert func(token string) error) (cpuPerRow, rowsPerSec float64) {
		b.ReportAllocs()
		runtime.GC() // the setup's garbage is not the insert's
		cpu0 := cpuTime()
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			if err := insert(fmt.Sprintf("%s-%d", b.Name(), i)); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		n := float64(b.N) * benchRows
		cpuPerRow, rowsPerSec = float64(cpuTime()-cpu0)/n, n/b.Elapsed().Seconds()
		b.ReportMetric(rowsPerSec, "rows/s")
		b.ReportMetric(cpuPerRow, "cpu-ns/row")
		return cpuPerRow, rowsPerSec
	}
	var baseCPU, baseRate float64
	b.Run("rowwise-baseline", func(b *testing.B) {
		baseCPU, baseRate = run(b, func(string) error {
			bt, err := db.Conn.PrepareBatch(ctx, s.queries[TableGauge])
			if err != nil {
				return err
			}
			defer bt.Close()
			for i := range rows {
				r := &rows[i]
				if err := bt.Append(r.Time, r.StartTime, r.Service, r.Host, r.AgentID, r.Model, r.ModelVersion,
					r.Metric, r.Unit, r.Attributes, r.ResourceID, r.ScopeName, r.ScopeVersion, r.Value); err != nil {
					return err
				}
			}
			return bt.Send()
		})
	})
	b.Run("store", func(b *testing.B) {
		batch := &Batch{Gauges: rows}
		cpu, rate := run(b, func(token string) error { return s.Insert(ctx, batch, token) })
		if baseCPU > 0 {
			b.ReportMetric(baseCPU/cpu, "x-less-cpu")
			b.ReportMetric(rate/baseRate, "x-rows/s")
		}
	})
}
