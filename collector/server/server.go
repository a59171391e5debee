// Package server composes drover-collector: ClickHouse (embedded or a
// server) with its schema, the durable spool, the OTLP receivers, the
// writer, the cluster ring, drift detection, jobs and the admin API, run as
// one lifecycle.Group with the stop order that loses nothing (see Run).
package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/drover-ml/drover/collector/admin"
	"github.com/drover-ml/drover/collector/auth"
	"github.com/drover-ml/drover/collector/drift"
	"github.com/drover-ml/drover/collector/fleet"
	"github.com/drover-ml/drover/collector/fleet/analysis"
	"github.com/drover-ml/drover/collector/ingest"
	"github.com/drover-ml/drover/collector/jobs"
	"github.com/drover-ml/drover/collector/labels"
	"github.com/drover-ml/drover/collector/optimize"
	"github.com/drover-ml/drover/collector/registry"
	"github.com/drover-ml/drover/collector/ring"
	"github.com/drover-ml/drover/collector/spool"
	"github.com/drover-ml/drover/collector/store"
	"github.com/drover-ml/drover/collector/views"
	"github.com/drover-ml/drover/shared/lifecycle"
	"github.com/drover-ml/drover/shared/recovery"
	"github.com/drover-ml/drover/shared/redact"
	"github.com/drover-ml/drover/shared/tlsconfig"
)

// Listeners lets tests pass listeners on free ports; nil fields are opened
// from the configured addresses. Run owns the listeners it is given once
// its components run (they are closed when it returns).
type Listeners struct {
	OTLPGRPC, OTLPHTTP, Admin net.Listener
}

// hooks are test hooks, never set in production (Run passes none).
type hooks struct {
	// ring adjusts the ring's config just before ring.New (a test
	// cluster's loopback timings).
	ring func(*ring.Config)
	// driftTick, when > 0, replaces the drift scheduler's tick.
	driftTick time.Duration
	// canaryInterval, when > 0, replaces the canary analysis' interval.
	canaryInterval time.Duration
	// sink wraps the receivers' sink.
	sink func(ingest.Sink) ingest.Sink
	// group sees the component group before it runs (to watch the stop
	// order through OnStop and OnReturn).
	group func(*lifecycle.Group)
	// spool sees the spool once it is open.
	spool func(*spool.Spool)
	// admin sees the admin server before its routes are registered.
	admin func(*admin.Server)
	// receiver sees the OTLP receivers before they serve.
	receiver func(*ingest.Receiver)
	// reload, when set, returns a channel that receives a value for every
	// reload request (ReloadOn); it is closed when ctx is done.
	reload func(ctx context.Context) <-chan struct{}
}

// Run runs the collector until ctx is cancelled and everything has drained,
// or until a component fails: then it stops the others in the same order
// and returns the failure (a component that stops on its own, even without
// an error, is a failure), so the process exits non-zero.
//
// ClickHouse may be unreachable at start: the receivers and the spool run
// at once, the schema is applied in the background (retried with backoff;
// an error ClickHouse will keep returning, such as bad credentials, stops
// the collector), /readyz says why it is not ready, and the writer, drift
// detection and jobs start once the schema is applied. The admin API
// authenticates from the token cache of an earlier start while ClickHouse
// is down; on a first start its routes that need a token answer 503 until
// the schema is applied and the first tokens are bootstrapped.
func Run(ctx context.Context, cfg Config, ls Listeners, log *slog.Logger, opts ...Option) error {
	var h hooks
	for _, o := range opts {
		o(&h)
	}
	return run(ctx, cfg, ls, log, h)
}

// Option changes how Run runs.
type Option func(*hooks)

// ReloadOn makes Run reload, each time a value arrives on ch, what can
// change while the collector runs: today the tokens (auth.tokens_file and
// ClickHouse's tokens table, which are otherwise re-read every
// auth.refresh_interval). drover-collector sends SIGHUP there.
func ReloadOn[T any](ch <-chan T) Option {
	return func(h *hooks) {
		h.reload = func(ctx context.Context) <-chan struct{} {
			out := make(chan struct{})
			go func() {
				defer close(out)
				for {
					select {
					case <-ctx.Done():
						return
					case <-ch:
						select {
						case out <- struct{}{}:
						case <-ctx.Done():
							return
						}
					}
				}
			}()
			return out
		}
	}
}

func run(ctx context.Context, cfg Config, ls Listeners, log *slog.Logger, h hooks) (err error) {
	if err := cfg.Validate(); err != nil {
		return err
	}
	// Configuration read from other files is checked before anything
	// starts.
	var rc *ring.Config
	if !cfg.Cluster.Disabled {
		log = log.With("node", cfg.Cluster.NodeName) // every line of a cluster node says which
		c := ring.DefaultConfig()
		c.NodeName, c.BindAddr, c.Join, c.Logger = cfg.Cluster.NodeName, cfg.Cluster.GossipAddr, cfg.Cluster.Join, log.With("component", "ring")
		c.AdvertiseAddr = cfg.Cluster.AdvertiseAddr
		if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
			return fmt.Errorf("data dir: %w", err)
		}
		key, created, err := cfg.GossipKey()
		if err != nil {
			return err
		}
		switch {
		case created != "":
			log.Warn("gossip: no key was given, so one was created; give it to every node that joins this one (cluster.key_file or DROVER_GOSSIP_KEY) and keep it secret", "key_file", created)
		case key == nil:
			log.Warn("gossip: cluster.insecure is set: gossip is neither encrypted nor authenticated; anyone who reaches the gossip port can join")
		}
		c.SecretKey = key
		if h.ring != nil {
			h.ring(&c)
		}
		rc = &c
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	// TLS: the certificate files are read now (a bad file stops the
	// start) and again whenever they change; a rotated file that does not
	// load is logged and the previous certificate kept.
	reloadFailed := func(listener string) func(error) {
		return func(err error) {
			log.Error("tls: certificate files changed but do not load", "listener", listener, "err", err)
		}
	}
	otlpTLS, err := cfg.OTLP.ServerTLS(reloadFailed("otlp"))
	if err != nil {
		return err
	}
	adminTLS, err := cfg.Admin.ServerTLS(reloadFailed("admin"))
	if err != nil {
		return err
	}
	peerTLS, err := cfg.Admin.PeerTLS(reloadFailed("admin.client_tls"))
	if err != nil {
		return err
	}
	// A client certificate verified against otlp.tls.client_ca_file is an
	// agent (auth.AnyCertificate); on the admin API, the ones that
	// admin.client_certs names have their role.
	var otlpCerts auth.CertRoles
	if cfg.OTLP.TLS.ClientAuth == tlsconfig.ClientAuthRequest || cfg.OTLP.TLS.ClientAuth == tlsconfig.ClientAuthRequire {
		otlpCerts = auth.AnyCertificate(auth.Agent)
	}

	// Until the group runs, whatever is open is closed here on an error;
	// after that, each component closes its own resources when it stops.
	var closers []func()
	defer func() {
		if err != nil {
			for i := len(closers) - 1; i >= 0; i-- {
				closers[i]()
			}
		}
	}()

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
	closers = append(closers, func() { sp.Close() })
	if h.spool != nil {
		h.spool(sp)
	}

	backend, err := store.OpenEngine(ctx, cfg.ClickHouse.DSN, cfg.DataDir,
		store.EngineConfig{TCPPort: cfg.ClickHouse.Embedded.TCPPort, HTTPPort: cfg.ClickHouse.Embedded.HTTPPort},
		log.With("component", "clickhouse"))
	if err != nil {
		if e := cfg.ClickHouse.Embedded; cfg.ClickHouse.DSN == store.Embedded && (e.TCPPort != 0 || e.HTTPPort != 0) {
			return fmt.Errorf("clickhouse.embedded (tcp_port %d, http_port %d; 0 is a free port): %w", e.TCPPort, e.HTTPPort, err)
		}
		return err
	}
	closeBackend := func() error {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return backend.Close(cctx)
	}
	closers = append(closers, func() { closeBackend() })
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "drover_collector_engine_restarts_total",
		Help: "Restarts of the embedded ClickHouse engine by its watchdog (a child that stopped answering or exited); 0 with a ClickHouse server."},
		func() float64 { return float64(backend.EngineRestarts()) }))
	st := store.New(backend.Conn, cfg.ClickHouse.Database, backend.Options)
	closers = append(closers, st.Close)
	var dsnDatabases []string
	if backend.DSNDatabase != "" && backend.DSNDatabase != "default" {
		dsnDatabases = []string{backend.DSNDatabase}
	}
	schema := store.NewSchema(backend.Conn, store.MigrateOptions{Database: cfg.ClickHouse.Database, Cluster: cfg.ClickHouse.Cluster, TTLDays: cfg.ClickHouse.TTLDays,
		CreateDatabases: dsnDatabases}, log.With("component", "clickhouse"))

	// Rows converted at receive time wait here for the writer (bounded), so
	// each request is decoded once in the common case. Two batches: one
	// being inserted, one filling; at most row_cache_bytes of them.
	rowCache := ingest.NewRowCache(2 * cfg.Writer.BatchRows)
	rowCache.MaxBytes = int(cfg.Writer.RowCacheBytes)
	// One cache of converted OTLP resources for the receivers and the
	// writer, bounded in bytes.
	resources := ingest.NewResourceCache(cfg.OTLP.ResourceCacheBytes, reg)
	var sink ingest.Sink = &ingest.SpoolSink{Spool: sp, Stats: stats, Rows: rowCache, Resources: resources}
	if h.sink != nil {
		sink = h.sink(sink)
	}
	// The receivers take agent (or admin) tokens, checked by the admin
	// API's authenticator once it exists (auth.Gate).
	var adm *admin.Server
	otlpAuth := auth.NewGate(func() *auth.Authenticator { return adm.Auth() })
	agentAccess := auth.Allow(auth.Agent)
	recv := ingest.NewReceiver(ingest.ReceiverConfig{
		GRPCOptions: otlpAuth.GRPCOptionsOrCertificate(agentAccess, otlpCerts),
		HTTPWrap:    func(h http.Handler) http.Handler { return otlpAuth.RequireDataOrCertificate(agentAccess, otlpCerts, h) },
		GRPCAddr:    cfg.OTLP.GRPCAddr, HTTPAddr: cfg.OTLP.HTTPAddr, MaxRequestBytes: cfg.OTLP.MaxRequestBytes, Limits: cfg.OTLP.Limits(),
		TLS: otlpTLS, MaxConnections: cfg.OTLP.MaxConnections, MaxConcurrentStreams: cfg.OTLP.MaxConcurrentStreams,
		ReadHeaderTimeout: cfg.OTLP.ReadHeaderTimeout, ReadTimeout: cfg.OTLP.ReadTimeout, IdleTimeout: cfg.OTLP.IdleTimeout,
		Resources: resources,
	}, sink, stats, log.With("component", "otlp"))
	if h.receiver != nil {
		h.receiver(recv)
	}
	writer := ingest.NewWriter(ingest.WriterConfig{BatchRows: cfg.Writer.BatchRows, FlushInterval: cfg.Writer.FlushInterval, Ready: schema.Applied(),
		DeadLetterFile: filepath.Join(cfg.DataDir, "dead_letters.jsonl"), DeadLetterFileMax: cfg.Writer.DeadLetterFileMaxBytes,
		Resources: resources},
		sp, rowCache, st, stats, log.With("component", "writer"))

	// In a cluster the admin listener is opened now: the ring gossips its
	// address (the owner of a model takes the registry's commits of it).
	// With jobs too: their spec names it as the publish URL.
	if (rc != nil || cfg.Jobs.Executor != jobs.ExecutorNone) && ls.Admin == nil {
		if ls.Admin, err = net.Listen("tcp", cfg.Admin.Addr); err != nil {
			return fmt.Errorf("admin: admin listen: %w", err)
		}
		closers = append(closers, func() { ls.Admin.Close() })
	}
	var rg *ring.Ring
	owns := func(string) bool { return true }
	if rc != nil {
		rc.AdminAddr = cmp.Or(cfg.Admin.AdvertiseAddr, ls.Admin.Addr().String())
		if rg, err = ring.New(*rc); err != nil {
			return err
		}
		owns = rg.SettledOwns(len(cfg.Cluster.Join) > 0, 30*time.Second)
	}

	// Job tokens (the publish tokens of command and webhook jobs) are
	// signed with a key every collector of the cluster derives from the
	// gossip key; without one, this collector's own random key.
	var gossipKey []byte
	if rc != nil {
		gossipKey = rc.SecretKey
	}
	jobKey, err := auth.JobTokenKey(gossipKey)
	if err != nil {
		return err
	}
	var jm *jobs.Manager
	var incidents *jobs.Queue
	// The built-in optimizer (executor builtin, and the CSV search of the
	// admin API) needs the registry and fleet control, built below,
	// before the jobs run.
	var builtin *optimize.Optimizer
	if cfg.Jobs.Executor != jobs.ExecutorNone {
		jc := cfg.Jobs
		if jc.ClickHouseDSN == "" {
			jc.ClickHouseDSN = backend.DSN
		}
		jm, err = jobs.New(jobs.Options{Conn: backend.Conn, Database: cfg.ClickHouse.Database, Node: cfg.Cluster.NodeName,
			Config: jc, Owns: owns, Logger: log.With("component", "jobs"), Registerer: reg,
			Executor:   jobs.ExecutorFunc(func(ctx context.Context, spec jobs.Spec) jobs.Result { return builtin.Execute(ctx, spec) }),
			PublishURL: jobsPublishURL(cfg, ls.Admin), JobTokenKey: jobKey})
		if err != nil {
			return fmt.Errorf("jobs: %w", err)
		}
		incidents = jobs.NewQueue(jm, jobs.QueueOptions{Logger: log.With("component", "jobs")})
	}

	dcfg := &cfg.Drift
	checker := drift.NewChecker(backend.Conn, cfg.ClickHouse.Database, cfg.Cluster.NodeName, nil)
	sched, err := drift.NewScheduler(drift.SchedulerConfig{
		Checker: checker, Detector: drift.NewDetector(dcfg.For), Policy: dcfg.For, Owns: owns, Tick: h.driftTick,
		Limits: dcfg.Limits, Registerer: reg,
		Models: func(ctx context.Context, now time.Time) ([]string, error) {
			return checker.RecentModels(ctx, 24*time.Hour, now)
		},
		OnIncident: func(ctx context.Context, inc drift.Incident) {
			if incidents == nil {
				log.Info("drift incident recorded; no jobs are configured", "model", inc.Model, "version", inc.Version)
				return
			}
			// The incident is recorded and the detector is in cooldown: the
			// queue retries until the job exists.
			incidents.Send(jobs.Incident(inc))
		},
		Log: log.With("component", "drift"),
	})
	if err != nil {
		return fmt.Errorf("drift: %w", err)
	}

	adm = admin.New(admin.Options{Addr: cfg.Admin.Addr, Ready: func(ctx context.Context) error {
		if err := schema.Ready(); err != nil {
			return err
		}
		if err := backend.Conn.Ping(ctx); err != nil {
			return fmt.Errorf("clickhouse: %w", err)
		}
		if adm.Auth() == nil {
			return errors.New("tokens not loaded yet")
		}
		return nil
	}, OnPanic: recovery.Logged(log.With("component", "admin"), func(string) { stats.Panics.WithLabelValues("admin").Inc() }),
		Logger: log.With("component", "admin"), TLS: adminTLS, ClientCerts: auth.CertificateMap(cfg.Admin.ClientCerts),
		MaxConnections: cfg.Admin.MaxConnections, ReadHeaderTimeout: cfg.Admin.ReadHeaderTimeout, ReadTimeout: cfg.Admin.ReadTimeout,
		IdleTimeout: cfg.Admin.IdleTimeout})
	if h.admin != nil {
		h.admin(adm)
	}
	adm.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	if rg != nil {
		adm.Handle("GET /v1/cluster", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			now := time.Now()
			models, _ := store.RecentModels(r.Context(), backend.Conn, cfg.ClickHouse.Database, now.Add(-24*time.Hour), now)
			admin.WriteJSON(w, http.StatusOK, rg.View(models))
		}))
	}
	// The model registry: files in the object store, records in
	// ClickHouse; in a cluster every commit runs on the model's owner.
	blobURL, err := cfg.BlobStoreURL()
	if err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	blobs, err := registry.OpenBlobs(ctx, blobURL)
	if err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	closers = append(closers, func() { blobs.Close() })
	// Fleet control refuses the deletion of a version that is desired or
	// served (the registry's InUse hook); fl is set below, before the admin
	// API serves.
	var fl *fleet.Fleet
	models := registry.New(backend.Conn, blobs, registry.Options{Database: cfg.ClickHouse.Database,
		Cluster: cfg.ClickHouse.Cluster != "", GCGrace: cfg.Registry.GCGrace, Logger: log.With("component", "registry"),
		InUse: func(ctx context.Context, model string, version uint64) (bool, string, error) {
			return fl.InUse(ctx, model, version)
		}})
	var commit registry.CommitFunc // nil: this collector allocates every number
	peers := &http.Client{}        // to the other collectors' admin APIs
	if rg != nil {
		// The owners' admin APIs speak what this one speaks (admin.tls is
		// the same on every node), verified with admin.client_tls.
		if peerTLS != nil {
			tr := http.DefaultTransport.(*http.Transport).Clone()
			tr.TLSClientConfig = peerTLS
			peers.Transport = tr
		}
		fw := registry.NewForwarder(models, registry.ForwardOptions{Node: cfg.Cluster.NodeName, Client: peers, Scheme: cfg.Admin.Scheme(),
			Owner: ownerOf(rg, owns), Logger: log.With("component", "registry")})
		commit = fw.Commit
	}
	adm.HandleAll(models.Routes(commit))
	// Fleet control (docs/fleet.md): desired states changed on each
	// model's ring owner, the agents' control channel.
	fleetOpts := fleet.Options{Conn: backend.Conn, Database: cfg.ClickHouse.Database, Cluster: cfg.ClickHouse.Cluster != "",
		Versions: models, Node: cfg.Cluster.NodeName, Client: peers, Scheme: cfg.Admin.Scheme(),
		AgentExpiry: cfg.Fleet.AgentExpiry, CanaryAnalysis: cfg.Fleet.CanaryAnalysis, OTLP: otlpEndpoints(cfg, ls), Logger: log.With("component", "fleet")}
	if rg != nil {
		fleetOpts.Owner = ownerOf(rg, owns)
	}
	if fl, err = fleet.New(fleetOpts); err != nil {
		return err
	}
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "drover_collector_fleet_inventories_dropped_total",
		Help: "Changed agent inventories not written to ClickHouse because the write queue was full (the in-memory record still holds them)."},
		func() float64 { return float64(fl.InventoriesDropped()) }))
	adm.HandleAll(fl.Routes())
	builtin, err = optimize.New(optimize.Options{Registry: models, Commit: commit, Fleet: fl,
		Labels: labels.NewStore(backend.Conn, cfg.ClickHouse.Database), Config: cfg.Jobs.Builtin, Logger: log.With("component", "optimize")})
	if err != nil {
		return err
	}
	adm.Handle(optimize.PatternCSV, builtin.Handler())
	jobsAPI, err := jobs.NewAPI(jobs.APIOptions{Conn: backend.Conn, Database: cfg.ClickHouse.Database, Node: cfg.Cluster.NodeName,
		Manager: jm, Logger: log.With("component", "jobs"),
		RecordIncident: func(ctx context.Context, inc jobs.Incident, opened time.Time) error {
			return checker.RecordIncident(ctx, drift.Incident(inc), opened)
		}})
	if err != nil {
		return err
	}
	adm.HandleAll(jobsAPI.Handlers())
	// Labels fleet-wide (docs/fleet.md): clients and forwarding agents.
	adm.Handle(labels.Pattern, labels.NewStore(backend.Conn, cfg.ClickHouse.Database).Handler(labels.HandlerOptions{
		Registerer: reg, Logger: log.With("component", "labels")}))
	viewOpts := []views.Option{views.WithLogger(log.With("component", "views"))}
	if rg != nil {
		viewOpts = append(viewOpts, views.WithOwner(rg.Owner))
	}
	adm.HandleAll(views.New(backend.Conn, cfg.ClickHouse.Database, viewOpts...).Routes())

	// Tokens (collector/auth). The authenticator must work from its cache
	// while ClickHouse is down, but a first start must not bootstrap
	// before the tokens table exists, and the schema is applied in the
	// background (ClickHouse may be unreachable for a long time). So:
	//   - with something to authenticate from without ClickHouse (the
	//     token cache of an earlier start, a tokens_file, or auth
	//     disabled), it is built now: New reads ClickHouse if it can
	//     (bounded by authWait) and else starts on the cache; its Run
	//     catches up once ClickHouse is back;
	//   - on a first start (nothing known yet) it is built by the "auth"
	//     component once the schema is applied, so that New finds the
	//     tokens table and bootstraps into it. Until then every route
	//     but /healthz and /readyz answers 503; the receivers do not
	//     need it.
	authOpts := auth.Options{Conn: backend.Conn, Database: cfg.ClickHouse.Database, DataDir: cfg.DataDir,
		Node: cfg.Cluster.NodeName, Logger: log.With("component", "auth"), JobTokenKey: jobKey}
	var authn *auth.Authenticator
	if cfg.Auth.Disabled || cfg.Auth.TokensFile != "" || fileExists(filepath.Join(cfg.DataDir, auth.CacheFile)) {
		actx, cancel := context.WithTimeout(ctx, authWait)
		authn, err = auth.New(actx, cfg.Auth, authOpts)
		cancel()
		switch {
		case err == nil:
			adm.SetAuth(authn)
		case cfg.Auth.Disabled || cfg.Auth.TokensFile != "":
			return err
		default: // a cache without a live token, and ClickHouse down: wait for the schema
			log.Warn("auth: cannot authenticate from the token cache; waiting for ClickHouse", "err", err)
			err = nil
		}
	}
	adm.HandleAll(tokenHandlers(adm, authn))

	// afterSchema runs a component that reads or writes the tables once the
	// schema is applied; stopped before that, it has nothing to do.
	afterSchema := func(run func(context.Context) error) func(context.Context) error {
		return func(ctx context.Context) error {
			select {
			case <-schema.Applied():
				return run(ctx)
			case <-ctx.Done():
				return nil
			}
		}
	}

	// The components, in the order they depend on each other: each is
	// stopped before every component above it, and only after the ones
	// below it have returned. So on SIGTERM (or when one fails):
	//   - the receivers stop accepting and finish the requests in flight,
	//     so everything acknowledged is in the spool;
	//   - only then does the writer drain the spool into ClickHouse (what
	//     it cannot write in its drain timeout stays for the next start),
	//     and the spool is closed after its only reader;
	//   - drift stops checking before the incident queue makes its last
	//     attempt to turn incidents into jobs, and the queue stops before
	//     the jobs manager, which kills the attempts running here (their
	//     leases lapse and the models' owners take them over);
	//   - the ring leaves the cluster only after this node's jobs have
	//     stopped, so that no other node takes over a job this node still
	//     runs;
	//   - the registry's garbage collection stops before the admin API;
	//   - the admin API answers (readiness, metrics, job callbacks) until
	//     everything that reports through it has stopped, and the object
	//     store of the registry closes after it;
	//   - the authenticator stops after the admin API, so that the audit
	//     entries of its last requests are written;
	//   - ClickHouse stops last, after everything that writes or reads it.
	g := &lifecycle.Group{Log: log}
	g.Add("clickhouse", func(ctx context.Context) error {
		select {
		case <-ctx.Done():
		case <-backend.Exited(): // nil for a server: never
			st.Close()
			closeBackend()
			return errors.New("embedded clickhouse exited")
		}
		st.Close()
		return closeBackend()
	})
	g.Add("schema", func(ctx context.Context) error {
		return schema.Run(ctx)
	})
	// The authenticator stops after the admin API, so the audit entries
	// of its last requests are written (and before ClickHouse).
	g.Add("auth", func(ctx context.Context) error {
		if authn == nil {
			select {
			case <-schema.Applied():
			case <-ctx.Done():
				return nil
			}
			a, err := auth.New(ctx, cfg.Auth, authOpts)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			authn = a
			adm.SetAuth(a)
		}
		return authn.Run(ctx)
	})
	if h.reload != nil {
		g.Add("reload", func(ctx context.Context) error {
			for range h.reload(ctx) {
				a := adm.Auth()
				if a == nil {
					log.Info("reload requested before the tokens were loaded; nothing to reload")
					continue
				}
				if err := a.Reload(ctx); err != nil {
					log.Warn("reload tokens", "err", err)
					continue
				}
				log.Info("tokens reloaded")
			}
			return nil
		})
	}
	// The object store closes after the admin API, which serves its blobs.
	g.Add("blobs", func(ctx context.Context) error {
		<-ctx.Done()
		return blobs.Close()
	})
	g.Add("admin", func(ctx context.Context) error {
		defer peers.CloseIdleConnections() // its handlers forwarded through it
		if ls.Admin != nil {
			return adm.Serve(ctx, ls.Admin)
		}
		return adm.Run(ctx)
	})
	// Fleet control stops before the admin API: its long-polls answer at
	// once, so the admin API does not wait for them to time out.
	g.Add("fleet", afterSchema(fl.Run))
	// The automatic canary analysis of the models this collector owns
	// (collector/fleet/analysis) stops before fleet control.
	// Its label metrics are the fleet's labels joined with the samples
	// (collector/labels), which count the labels every agent forwarded, as
	// the read views and drift count them.
	judge := analysis.NewAnalyzer(backend.Conn, cfg.ClickHouse.Database)
	judge.Labels = labels.NewStore(backend.Conn, cfg.ClickHouse.Database).Metrics
	canaryRunner := &analysis.Runner{Fleet: fl.Canaries(log.With("component", "canary-analysis")),
		Judge: judge, Interval: cmp.Or(h.canaryInterval, cfg.Fleet.CanaryAnalysis.Interval), Logger: log.With("component", "canary-analysis")}
	g.Add("canary-analysis", afterSchema(canaryRunner.Run))
	// Garbage collection of the registry's blobs, on the node that owns
	// the key gcKey (one node of a cluster at a time).
	g.Add("registry-gc", afterSchema(func(ctx context.Context) error {
		return registry.CollectEvery(ctx, models, cfg.Registry.GCInterval, func() bool { return owns(gcKey) })
	}))
	if rg != nil {
		g.Add("ring", rg.Run)
	}
	if jm != nil {
		g.Add("jobs", afterSchema(jm.Run))
		g.Add("incidents", incidents.Run)
	}
	g.Add("drift", afterSchema(sched.Run))
	g.Add("spool", func(ctx context.Context) error {
		<-ctx.Done()
		if n, bytes := sp.Pending(); n > 0 {
			log.Info("spool not empty at stop; it is written at the next start", "records", n, "bytes", bytes)
		}
		return sp.Close()
	})
	g.Add("writer", writer.Run)
	g.Add("otlp", func(ctx context.Context) error {
		if ls.OTLPGRPC != nil && ls.OTLPHTTP != nil {
			return recv.Serve(ctx, ls.OTLPGRPC, ls.OTLPHTTP)
		}
		return recv.Run(ctx)
	})
	if h.group != nil {
		h.group(g)
	}
	serving := []any{"clickhouse", redact.URL(backend.DSN), "database", cfg.ClickHouse.Database}
	if rc == nil { // a cluster node's logger already names it
		serving = append(serving, "node", cfg.Cluster.NodeName)
	}
	log.Info("drover-collector serving", serving...)
	closers = nil // the group's components close what they own
	return g.Run(ctx)
}

// jobsPublishURL is the admin URL that command and webhook jobs publish
// their results to (jobs.Spec.PublishURL): for the webhook executor the
// base of jobs.webhook.callback_url (this cluster's admin API as the
// receiver reaches it); for a command, which runs on this host,
// admin.advertise_addr, else the admin listener's address with an
// unspecified host made loopback.
func jobsPublishURL(cfg Config, l net.Listener) string {
	if cfg.Jobs.Executor == jobs.ExecutorWebhook {
		return strings.TrimRight(cfg.Jobs.Webhook.CallbackURL, "/")
	}
	addr := cfg.Admin.AdvertiseAddr
	if addr == "" && l != nil {
		addr = l.Addr().String()
	}
	if host, port, err := net.SplitHostPort(addr); err == nil {
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			addr = net.JoinHostPort("127.0.0.1", port)
		}
	}
	return cfg.Admin.Scheme() + "://" + addr
}

// gcKey is the ring key whose owner collects the registry's garbage.
const gcKey = "drover.registry.gc"

// ownerOf is the registry forwarder's view of the ring: this node when it
// owns the model (settled: a joining node owns nothing until it joined),
// else the owner's admin address.
func ownerOf(rg *ring.Ring, owns func(string) bool) registry.OwnerFunc {
	return func(model string) (bool, string, bool) {
		node, admin, ok := rg.OwnerAdmin(model)
		if ok && node == rg.Name() {
			return owns(model), "", false
		}
		return false, admin, ok && admin != ""
	}
}

// otlpEndpoints are where agents that register here are told to send
// OTLP: otlp.advertise_grpc and otlp.advertise_http, by default the
// receivers' ports on the cluster's advertise address, the admin API's
// advertise host, the gossip IP, or this host's name, the first that
// names a host.
func otlpEndpoints(cfg Config, ls Listeners) fleet.OTLPEndpoints {
	port := func(l net.Listener, addr string) string {
		if l != nil {
			addr = l.Addr().String()
		}
		_, p, _ := net.SplitHostPort(addr)
		return p
	}
	host := ""
	for _, a := range []string{cfg.Cluster.AdvertiseAddr, cfg.Admin.AdvertiseAddr, cfg.Cluster.GossipAddr} {
		h := a
		if hh, _, err := net.SplitHostPort(a); err == nil {
			h = hh
		}
		if ip := net.ParseIP(h); h != "" && (ip == nil || !ip.IsUnspecified()) {
			host = h
			break
		}
	}
	if host == "" {
		host, _ = os.Hostname()
	}
	if host == "" {
		host = "localhost"
	}
	e := fleet.OTLPEndpoints{GRPC: cfg.OTLP.AdvertiseGRPC, HTTP: cfg.OTLP.AdvertiseHTTP}
	if e.GRPC == "" {
		e.GRPC = net.JoinHostPort(host, port(ls.OTLPGRPC, cfg.OTLP.GRPCAddr))
	}
	if e.HTTP == "" {
		scheme := "http"
		if cfg.OTLP.TLS.CertFile != "" {
			scheme = "https"
		}
		e.HTTP = scheme + "://" + net.JoinHostPort(host, port(ls.OTLPHTTP, cfg.OTLP.HTTPAddr))
	}
	return e
}

// authWait bounds how long a start with a token cache waits for
// ClickHouse's tokens before it authenticates from the cache.
const authWait = 10 * time.Second

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// tokenHandlers returns the token API's handlers (POST, GET /v1/tokens,
// DELETE /v1/tokens/{name}) served by the admin server's authenticator,
// which may be set only later (a first start): until then they are not
// reached (the admin server answers 503).
func tokenHandlers(adm *admin.Server, a *auth.Authenticator) map[string]http.Handler {
	if a != nil {
		return a.TokenHandlers()
	}
	out := map[string]http.Handler{}
	for pattern := range auth.TokenRoutes {
		out[pattern] = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// The admin server let the request through: its authenticator
			// is set.
			adm.Auth().TokenHandlers()[pattern].ServeHTTP(w, r)
		})
	}
	return out
}
