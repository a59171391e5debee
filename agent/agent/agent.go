// Package agent assembles drover-agent: it builds the components from the
// configuration, connects them, runs them in one group and stops them in
// order. It is the agent's counterpart of collector/server; the command
// (agent/cmd/drover-agent) only parses flags, opens the listeners and turns
// signals into a cancelled context or a reload.
//
// The components, and what connects them:
//
//	watch      the model store → versions.Set.Sync
//	versions   loads, gates (monitor.Gate) and swaps versions, as package
//	           route decides; its lifecycle events → telemetry (events.go)
//	serve      the Open Inference Protocol, REST and gRPC; each request is
//	           routed by versions.Set.Route and observed by the monitor;
//	           the control API on its own listener, with the token from
//	           <data-dir>/control.token (ControlToken)
//	monitor    sampling, evaluation, shadow copies (its own worker)
//	telemetry  OTLP export and GET /metrics on the REST listener
//	fleet      with control.collectors: follows the collectors' desired
//	           state (versions.Set.SetDesired) and downloads the versions
//	           it names into the model store, where the watcher takes over
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"time"

	"github.com/oklog/run"

	"github.com/drover-ml/drover/agent/config"
	"github.com/drover-ml/drover/agent/evaluate"
	"github.com/drover-ml/drover/agent/fleet"
	"github.com/drover-ml/drover/agent/monitor"
	"github.com/drover-ml/drover/agent/serve"
	"github.com/drover-ml/drover/agent/telemetry"
	"github.com/drover-ml/drover/agent/versions"
	"github.com/drover-ml/drover/agent/watch"
	"github.com/drover-ml/drover/shared/buildinfo"
	"github.com/drover-ml/drover/shared/lifecycle"
	"github.com/drover-ml/drover/shared/procenv"
	"github.com/drover-ml/drover/shared/runtime"
)

// Config is what an agent runs with: the configuration file's contents and
// the restart-only settings that come from flags.
type Config struct {
	// File is the configuration file's contents, config.Default() when
	// there is no file. Run does not validate it again.
	File config.Config
	// ConfigPath is the file a reload re-reads ("" for none: a reload then
	// applies the defaults, as config.Load("") gives them).
	ConfigPath string
	// ModelDir is the model store: <ModelDir>/<model>/<version>/. Required.
	ModelDir string
	// DataDir keeps the agent's state across restarts (pins and split
	// overrides, in DataDir/state.json); with ModelDir it names the agent
	// in telemetry. Default "var/agent".
	DataDir string
	// DrainTimeout bounds how long a stop waits for in-flight requests to
	// finish, and then for the versions to close. Default 30 s.
	DrainTimeout time.Duration
	// Reload, if not nil: each value received re-reads ConfigPath and
	// applies what can change at run time, the version policies and the
	// per-model monitoring settings. A file that does not load changes
	// nothing (the error is logged). drover-agent sends on it on SIGHUP.
	Reload <-chan struct{}
}

// Listeners are the agent's network listeners, opened by the caller (so
// that addresses are flags, and tests can listen on port 0). Run owns them:
// they are closed when it returns.
type Listeners struct {
	// HTTP serves the Open Inference Protocol REST API and GET /metrics.
	HTTP net.Listener
	// GRPC serves the Open Inference Protocol gRPC API.
	GRPC net.Listener
	// Control, if not nil, serves the control API (pin, canary, shadow,
	// promote), which requires the token in <DataDir>/control.token, with
	// the TLS of the file's control.tls. The command always opens it
	// (--control-addr, or control.addr); without it nothing can change
	// pins or splits but the configuration file.
	Control net.Listener
	// Debug, if not nil, serves Go's pprof profiles under /debug/pprof/.
	Debug net.Listener
}

func (l Listeners) close() {
	for _, ln := range []net.Listener{l.HTTP, l.GRPC, l.Control, l.Debug} {
		if ln != nil {
			ln.Close()
		}
	}
}

// Run runs an agent until ctx is cancelled, then stops it in order (see
// the comment on the run group) and returns nil; or until a component
// fails, and then returns that failure after the same stop. Errors while
// building (a model directory that cannot be watched, a bad state file, no
// ONNX Runtime) are returned before anything serves.
func Run(ctx context.Context, cfg Config, ls Listeners, log *slog.Logger) error {
	if ls.HTTP == nil || ls.GRPC == nil {
		ls.close()
		return errors.New("agent: the HTTP and gRPC listeners are required")
	}
	if cfg.DataDir == "" {
		cfg.DataDir = "var/agent"
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 30 * time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a, err := build(cfg, log)
	if err != nil {
		ls.close()
		return err
	}
	defer a.shutdownTelemetry()
	return a.run(ctx, ls)
}

// agent is the assembled components.
type agent struct {
	cfg Config
	log *slog.Logger
	tel *telemetry.Telemetry
	set *versions.Set
	mon *monitor.Monitor
	w   *watch.Watcher
	srv *serve.Server
	// fleet follows the collectors' desired state; nil without
	// control.collectors.
	fleet *fleet.Client
	// fwd forwards labels this agent did not sample to the collectors;
	// nil without control.collectors.
	fwd *evaluate.ForwardQueue
	// slots follows the load with GOMAXPROCS; nil unless
	// process.adaptive_gomaxprocs.
	slots *procenv.Slots
}

func build(cfg Config, log *slog.Logger) (*agent, error) {
	file := cfg.File
	if err := runtime.Init(""); err != nil {
		return nil, err
	}
	log.Info("starting drover-agent", "version", buildinfo.Version, "onnxruntime", runtime.Version(), "model_dir", cfg.ModelDir)

	host, _ := os.Hostname()
	absData, _ := filepath.Abs(cfg.DataDir)
	if c := file.Control; len(c.Collectors) > 0 {
		// Following collectors, the agent sends OTLP with the same token,
		// where their registration answers say unless telemetry.endpoint
		// is set (docs/fleet.md).
		file.Telemetry = file.Telemetry.FollowingCollectors(c.TokenFile)
	}
	tel, err := telemetry.New(context.Background(), file.Telemetry, telemetry.ResourceInfo{
		AgentID: host + ":" + absData, HostName: host, Version: buildinfo.Version,
	}, log.With("component", "telemetry"))
	if err != nil {
		return nil, err
	}
	a := &agent{cfg: cfg, log: log, tel: tel, slots: file.Process.Slots(log)}
	var onLoad func() func()
	if a.slots != nil {
		onLoad = a.slots.Hold
	}
	// The set's hooks run only once the watcher reports versions, after
	// a.mon is set below.
	set, err := versions.New(versions.Config{
		Backend:            &runtime.ONNX{Options: file.Runtime, Log: log.With("component", "onnxruntime")},
		MaxConcurrentLoads: file.Loading.MaxConcurrentLoads,
		WarmupRuns:         file.Loading.WarmupRuns,
		RetryBackoff:       file.Loading.RetryBackoff,
		StateFile:          filepath.Join(cfg.DataDir, "state.json"),
		Policies:           file.Policies(),
		Logger:             log.With("component", "versions"),
		OnEvent:            func(e versions.Event) { recordEvent(tel, a.mon, e) },
		Gate: func(ctx context.Context, cand, cur *versions.Version) error {
			return a.mon.Gate(ctx, cand, cur)
		},
		OnLoad: onLoad,
	})
	if err != nil {
		a.shutdownTelemetry()
		return nil, err
	}
	a.set = set
	// The fleet client applies the persisted desired state to the set now,
	// before the watcher's first scan: a restart without a collector
	// serves the last desired versions.
	if c := file.Control; len(c.Collectors) > 0 {
		a.fleet, err = newFleet(cfg, host, set, a.followOTLP, log.With("component", "fleet"))
		if err != nil {
			a.closeVersions()
			a.shutdownTelemetry()
			return nil, err
		}
	}
	a.mon = monitor.New(file.Monitoring, file.MonitorSettings(), tel, set, log.With("component", "monitor"))
	if a.fleet != nil {
		// Labels of requests this agent did not sample go to a collector,
		// which joins them with the sample another agent sent.
		a.fwd = evaluate.NewForwardQueue(evaluate.ForwardOptions{
			Send: a.fleet.SendFeedback, Logger: log.With("component", "forward"),
		})
		a.mon.SetForwarder(a.fwd)
	}
	tel.SetLoadedVersions(set.Resident)
	// The watcher names itself (component=watch) in its log lines.
	a.w, err = watch.New(watch.Config{
		Root: cfg.ModelDir, Debounce: file.Watch.Debounce, Rescan: file.Watch.Rescan,
		DisableNotify: file.Watch.DisableNotify, Logger: log,
	}, set.Sync)
	if err != nil {
		a.closeVersions()
		a.shutdownTelemetry()
		return nil, err
	}
	controlToken, err := ControlToken(cfg.DataDir)
	if err != nil {
		a.closeVersions()
		a.shutdownTelemetry()
		return nil, err
	}
	clients, err := file.Serving.OpenClientTokens(log.With("component", "serve"))
	if err != nil {
		a.closeVersions()
		a.shutdownTelemetry()
		return nil, err
	}
	a.srv = serve.New(file.Serving, set, a.w.Scanned, log.With("component", "serve"),
		serve.WithTelemetry(tel), serve.WithMonitor(a.mon), serve.WithMetrics(tel.PrometheusHandler()),
		serve.WithClientTokens(clients), serve.WithControlToken(controlToken))
	return a, nil
}

// run runs the components until ctx is cancelled or one of them stops.
func (a *agent) run(ctx context.Context, ls Listeners) error {
	// Stop order. When ctx is cancelled, or any component returns, the run
	// group interrupts every component at once:
	//   - the servers stop accepting and drain: requests in flight finish
	//     (bounded by DrainTimeout), each holding a reference on the
	//     version it started on;
	//   - the watcher stops reporting changes, so no new load starts;
	//   - the shadow worker and the reload loop stop;
	//   - the label forwarder stops only after the servers returned, so
	//     that labels of the feedback calls they drain are still queued
	//     and sent; what is queued when it stops is dropped (counted).
	// Only once all of them have returned (g.Run) are the versions closed:
	// loading stops and every session is released after its last request,
	// which the drain has let finish. Telemetry shuts down last (Run's
	// defer), so the metrics and the events of the stop (version.unloaded)
	// are flushed.
	var g run.Group
	{
		stop := make(chan struct{})
		g.Add(func() error {
			select {
			case <-ctx.Done():
			case <-stop:
			}
			return nil
		}, func(error) { close(stop) })
	}
	if ls.Control != nil {
		a.log.Info("control listener: send Authorization: Bearer <token> with the token in "+filepath.Join(a.cfg.DataDir, ControlTokenFile),
			"addr", ls.Control.Addr().String(), "token_file", filepath.Join(a.cfg.DataDir, ControlTokenFile))
	}
	served := make(chan struct{}) // closed when the servers returned
	component(&g, "serve", func(ctx context.Context) error {
		defer close(served)
		return a.srv.Run(ctx, serve.Listeners{HTTP: ls.HTTP, GRPC: ls.GRPC, Control: ls.Control, ControlTLS: a.cfg.File.Control.TLS}, a.cfg.DrainTimeout)
	})
	if ls.Debug != nil {
		component(&g, "debug", func(ctx context.Context) error {
			return lifecycle.Serve(ctx, a.cfg.DrainTimeout, a.log, lifecycle.Listening{
				Name: "debug", Server: lifecycle.HTTP(debugServer()), Listener: ls.Debug,
			})
		})
	}
	component(&g, "watch", a.w.Run)
	if a.slots != nil {
		a.slots.InFlight, a.slots.Served = a.srv.InFlight, a.srv.Served
		component(&g, "adaptive_gomaxprocs", func(ctx context.Context) error {
			a.slots.Run(ctx)
			return nil
		})
	}
	if a.fleet != nil {
		component(&g, "fleet", a.fleet.Run)
	}
	component(&g, "monitor", a.mon.Run)
	if a.fwd != nil {
		fctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error {
			err := a.fwd.Run(fctx)
			if fctx.Err() != nil {
				return err // asked to stop
			}
			return errors.New("forward: stopped unexpectedly")
		}, func(error) {
			go func() { <-served; cancel() }()
		})
	}
	if a.cfg.Reload != nil {
		component(&g, "reload", a.reloadLoop)
	}
	err := g.Run()
	a.closeVersions()
	return err
}

// component adds a long-running component to g with a context of its own,
// cancelled when the group stops. A component that returns before it is
// asked to stop stops the agent with an error, also when it returned nil.
func component(g *run.Group, name string, run func(context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	g.Add(func() error {
		err := run(ctx)
		if ctx.Err() != nil {
			return err // asked to stop
		}
		if err == nil {
			err = errors.New("stopped unexpectedly")
		}
		return fmt.Errorf("%s: %w", name, err)
	}, func(error) { cancel() })
}

// closeVersions retires every version and waits, up to DrainTimeout, for
// them to close.
func (a *agent) closeVersions() {
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.DrainTimeout)
	defer cancel()
	if err := a.set.Close(ctx); err != nil {
		a.log.Error("close models", "err", err)
	}
}

func (a *agent) shutdownTelemetry() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.tel.Shutdown(ctx); err != nil {
		a.log.Warn("telemetry shutdown", "err", err)
	}
}

// debugServer serves Go's pprof profiles.
func debugServer() *http.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
}
