// Package server composes drover-collector: ClickHouse (embedded or a
// server) with its schema, the durable spool, the OTLP receivers, the
// writer, the cluster ring and the admin API, with the stop order that
// loses nothing: receivers stop first, then the writer drains the spool into
// ClickHouse, then ClickHouse stops.
package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/drover-ml/drover/collector/admin"
	"github.com/drover-ml/drover/collector/drift"
	"github.com/drover-ml/drover/collector/ingest"
	"github.com/drover-ml/drover/collector/jobs"
	"github.com/drover-ml/drover/collector/ring"
	"github.com/drover-ml/drover/collector/spool"
	"github.com/drover-ml/drover/collector/store"
)

// Listeners lets tests pass listeners on free ports; nil fields are opened
// from the configured addresses.
type Listeners struct {
	OTLPGRPC, OTLPHTTP, Admin net.Listener
}

// Run runs the collector until ctx is cancelled and everything has drained.
func Run(ctx context.Context, cfg Config, ls Listeners, log *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	stats := ingest.NewStats(reg)

	sp, err := spool.Open(filepath.Join(cfg.DataDir, "spool"), spool.Options{
		MaxBytes: cfg.Spool.MaxBytes, SegmentBytes: cfg.Spool.SegmentBytes, Sync: cfg.Spool.Sync,
		SkipCorrupt: cfg.Spool.SkipCorrupt, Logger: log.With("component", "spool"),
	})
	if err != nil {
		return fmt.Errorf("open spool: %w", err)
	}
	defer sp.Close()

	// ClickHouse may be down at start: the receivers still accept into the
	// spool; readiness says the schema is not applied yet.
	backend, err := store.Open(ctx, cfg.ClickHouse.DSN, cfg.DataDir, log.With("component", "clickhouse"))
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := backend.Close(cctx); err != nil {
			log.Error("close clickhouse", "err", err)
		}
	}()
	mctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	err = store.Migrate(mctx, backend.Conn, store.MigrateOptions{Database: cfg.ClickHouse.Database, Cluster: cfg.ClickHouse.Cluster, TTLDays: cfg.ClickHouse.TTLDays})
	cancel()
	if err != nil {
		return fmt.Errorf("apply schema: %w", err)
	}
	st := store.New(backend.Conn, cfg.ClickHouse.Database, backend.Options)
	defer st.Close()

	// Rows converted at receive time wait here for the writer (bounded), so
	// each request is decoded once in the common case. Two batches: one
	// being inserted, one filling.
	rowCache := ingest.NewRowCache(2 * cfg.Writer.BatchRows)
	recv := ingest.NewReceiver(ingest.ReceiverConfig{
		GRPCAddr: cfg.OTLP.GRPCAddr, HTTPAddr: cfg.OTLP.HTTPAddr, MaxRequestBytes: cfg.OTLP.MaxRequestBytes,
	}, &ingest.SpoolSink{Spool: sp, Stats: stats, Rows: rowCache}, stats, log.With("component", "otlp"))
	writer := ingest.NewWriter(ingest.WriterConfig{BatchRows: cfg.Writer.BatchRows, FlushInterval: cfg.Writer.FlushInterval},
		sp, rowCache, st, stats, log.With("component", "writer"))

	var rg *ring.Ring
	if !cfg.Cluster.Disabled {
		rc := ring.DefaultConfig()
		rc.NodeName, rc.BindAddr, rc.Join, rc.Logger = cfg.Cluster.NodeName, cfg.Cluster.GossipAddr, cfg.Cluster.Join, log.With("component", "ring")
		if cfg.Cluster.KeyFile != "" {
			b, err := os.ReadFile(cfg.Cluster.KeyFile)
			if err != nil {
				return fmt.Errorf("cluster.key_file: %w", err)
			}
			if rc.SecretKey, err = ring.ParseSecretKey(string(bytes.TrimSpace(b))); err != nil {
				return fmt.Errorf("cluster.key_file: %w", err)
			}
		}
		if cfg.ringTuning != nil {
			cfg.ringTuning(&rc)
		}
		if rg, err = ring.New(rc); err != nil {
			return err
		}
	}

	owns := func(string) bool { return true }
	if rg != nil {
		owns = settledOwns(rg, len(cfg.Cluster.Join) > 0, time.Now(), 30*time.Second)
	}
	var jm *jobs.Manager
	if cfg.Jobs.Executor != jobs.ExecutorNone {
		jc := cfg.Jobs
		if jc.ClickHouseDSN == "" {
			jc.ClickHouseDSN = backend.DSN
		}
		jm, err = jobs.New(jobs.Options{Conn: backend.Conn, Database: cfg.ClickHouse.Database, Node: cfg.Cluster.NodeName,
			Config: jc, Owns: owns, Logger: log.With("component", "jobs")})
		if err != nil {
			return fmt.Errorf("jobs: %w", err)
		}
	}

	dcfg := &cfg.Drift
	checker := drift.NewChecker(backend.Conn, cfg.ClickHouse.Database, cfg.Cluster.NodeName, nil)
	sched, err := drift.NewScheduler(drift.SchedulerConfig{
		Checker: checker, Detector: drift.NewDetector(dcfg.For), Policy: dcfg.For, Owns: owns, Tick: cfg.driftTick,
		Models: func(ctx context.Context, now time.Time) ([]string, error) {
			return checker.RecentModels(ctx, 24*time.Hour, now)
		},
		OnIncident: func(ctx context.Context, inc drift.Incident) {
			if jm == nil {
				log.Info("drift incident recorded; no jobs are configured", "model", inc.Model, "version", inc.Version)
				return
			}
			// The incident is recorded and the detector is in cooldown, so
			// the job must not be lost to a transient error: retry (the id
			// is deterministic, so a retry never makes a second job).
			go func() {
				backoff := time.Second
				for {
					id, created, err := jm.Schedule(ctx, jobs.Incident(inc))
					if err == nil {
						log.Info("re-optimization job scheduled", "id", id, "created", created, "model", inc.Model, "version", inc.Version)
						return
					}
					log.Warn("schedule re-optimization job; retrying", "model", inc.Model, "err", err, "retry_in", backoff)
					select {
					case <-ctx.Done():
						return
					case <-time.After(backoff):
					}
					backoff = min(2*backoff, time.Minute)
				}
			}()
		},
		Log: log.With("component", "drift"),
	})
	if err != nil {
		return fmt.Errorf("drift: %w", err)
	}

	adm := admin.New(cfg.Admin.Addr, func(ctx context.Context) error {
		if err := backend.Conn.Ping(ctx); err != nil {
			return fmt.Errorf("clickhouse: %w", err)
		}
		return nil
	}, log.With("component", "admin"))
	adm.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	if rg != nil {
		adm.Handle("GET /v1/cluster", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			models, _ := knownModels(r.Context(), backend, cfg.ClickHouse.Database)
			admin.WriteJSON(w, http.StatusOK, rg.View(models))
		}))
	}

	if jm != nil {
		adm.Handle("/v1/jobs/", jm.Handler())
	}

	// Stop order: the receivers stop accepting and finish their requests;
	// only then is the writer told to stop, so it drains everything they
	// acknowledged into ClickHouse; the ring and the admin API stop last.
	recvCtx, stopRecv := context.WithCancel(context.Background())
	writerCtx, stopWriter := context.WithCancel(context.Background())
	otherCtx, stopOther := context.WithCancel(context.Background())
	defer stopRecv()
	defer stopWriter()
	defer stopOther()
	errc := make(chan error, 8) // one per component, so none blocks after the first error
	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		var err error
		if ls.OTLPGRPC != nil && ls.OTLPHTTP != nil {
			err = recv.Serve(recvCtx, ls.OTLPGRPC, ls.OTLPHTTP)
		} else {
			err = recv.Run(recvCtx)
		}
		errc <- err
	}()
	writerDone := make(chan struct{})
	go func() { defer close(writerDone); errc <- writer.Run(writerCtx) }()
	otherDone := make(chan struct{}, 2)
	go func() {
		defer func() { otherDone <- struct{}{} }()
		if ls.Admin != nil {
			errc <- adm.Serve(otherCtx, ls.Admin)
		} else {
			errc <- adm.Run(otherCtx)
		}
	}()
	if rg != nil {
		go func() { defer func() { otherDone <- struct{}{} }(); errc <- rg.Run(otherCtx) }()
	} else {
		otherDone <- struct{}{}
	}
	driftDone := make(chan struct{})
	go func() { defer close(driftDone); errc <- sched.Run(otherCtx) }()
	jobsDone := make(chan struct{})
	if jm != nil {
		go func() { defer close(jobsDone); errc <- jm.Run(otherCtx) }()
	} else {
		close(jobsDone)
	}
	log.Info("drover-collector serving", "node", cfg.Cluster.NodeName, "clickhouse", backend.DSN, "database", cfg.ClickHouse.Database)

	var first error
	select {
	case <-ctx.Done():
	case first = <-errc:
		log.Error("component stopped", "err", first)
	case <-backend.Exited():
		first = errors.New("embedded clickhouse exited")
	}
	stopRecv()
	<-recvDone
	stopWriter()
	<-writerDone
	stopOther()
	<-otherDone
	<-otherDone
	<-jobsDone
	<-driftDone
	if n, bytes := sp.Pending(); n > 0 {
		log.Info("spool not empty at stop; it is written at the next start", "records", n, "bytes", bytes)
	}
	return first
}

// knownModels lists the models with data in the last day, for the cluster
// view.
func knownModels(ctx context.Context, b *store.Backend, db string) ([]string, error) {
	rows, err := b.Conn.Query(ctx, "SELECT DISTINCT model FROM "+db+".metrics_sum WHERE time > now() - INTERVAL 1 DAY AND model != '' ORDER BY model LIMIT 10000")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var m string
		if err := rows.Scan(&m); err != nil {
			return out, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// settledOwns is the ring's Owns, except that a node configured to join
// peers owns nothing until it has seen another member (or grace has
// passed): a ring that holds only itself owns every model, and a node
// restarting into a running cluster must not run drift checks or resume
// jobs for all of them before it has joined.
func settledOwns(rg *ring.Ring, joining bool, start time.Time, grace time.Duration) func(string) bool {
	var settled atomic.Bool
	settled.Store(!joining)
	return func(model string) bool {
		if !settled.Load() {
			alive := 0
			for _, m := range rg.Members() {
				if m.State == ring.StateAlive {
					alive++
				}
			}
			if alive < 2 && time.Since(start) < grace {
				return false
			}
			settled.Store(true)
		}
		return rg.Owns(model)
	}
}
