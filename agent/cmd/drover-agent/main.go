// Command drover-agent serves the models of one host's model store over the
// Open Inference Protocol (REST and gRPC), hot-swapping new versions as they
// are published. `drover-agent --help` lists the flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/oklog/run"
	"go.opentelemetry.io/otel/attribute"

	"github.com/drover-ml/drover/agent/config"
	"github.com/drover-ml/drover/agent/monitor"
	"github.com/drover-ml/drover/agent/registry"
	"github.com/drover-ml/drover/agent/runtime"
	"github.com/drover-ml/drover/agent/serve"
	"github.com/drover-ml/drover/agent/telemetry"
	"github.com/drover-ml/drover/agent/watch"
	"github.com/drover-ml/drover/shared/buildinfo"
	"github.com/drover-ml/drover/shared/semconv"
)

type flags struct {
	modelDir, configPath, httpAddr, grpcAddr, dataDir, logLevel, debugAddr string
	drainTimeout                                                           time.Duration
}

func main() { os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr)) }

func realMain(args []string, stdout, stderr io.Writer) int {
	var f flags
	fs := flag.NewFlagSet("drover-agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.modelDir, "model-dir", "", "model store root: <root>/<model>/<version>/model.onnx (required)")
	fs.StringVar(&f.configPath, "config", "", "YAML config file (runtime, serving limits, version policies); SIGHUP reloads the policies")
	fs.StringVar(&f.httpAddr, "http-addr", ":8080", "Open Inference Protocol REST listen address")
	fs.StringVar(&f.grpcAddr, "grpc-addr", ":8081", "Open Inference Protocol gRPC listen address")
	fs.StringVar(&f.dataDir, "data-dir", "var/agent", "agent state directory (version pins)")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&f.debugAddr, "debug-addr", "", "if set, serve Go's pprof profiles on this address (e.g. 127.0.0.1:6060)")
	fs.DurationVar(&f.drainTimeout, "drain-timeout", 30*time.Second, "how long shutdown waits for in-flight requests")
	version := fs.Bool("version", false, "print the version")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: drover-agent --model-dir DIR [flags]\n\nServes <DIR>/<model>/<version>/model.onnx over the Open Inference Protocol v2.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *version {
		fmt.Fprintln(stdout, buildinfo.String("drover-agent"))
		return 0
	}
	if f.modelDir == "" {
		fmt.Fprintln(stderr, "drover-agent: --model-dir is required")
		fs.Usage()
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		fmt.Fprintln(stderr, "drover-agent: --log-level:", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if err := agent(f, log); err != nil {
		log.Error("drover-agent stopped", "err", err)
		return 1
	}
	return 0
}

func agent(f flags, log *slog.Logger) error {
	cfg, err := config.Load(f.configPath)
	if err != nil {
		return err
	}
	if err := runtime.Init(""); err != nil {
		return err
	}
	log.Info("starting drover-agent", "version", buildinfo.Version, "onnxruntime", runtime.Version(), "model_dir", f.modelDir)

	host, _ := os.Hostname()
	absData, _ := filepath.Abs(f.dataDir)
	tel, err := telemetry.New(context.Background(), cfg.Telemetry, telemetry.ResourceInfo{
		AgentID: host + ":" + absData, HostName: host, Version: buildinfo.Version,
	}, log.With("component", "telemetry"))
	if err != nil {
		return err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tel.Shutdown(ctx); err != nil {
			log.Warn("telemetry shutdown", "err", err)
		}
	}()

	var mon *monitor.Monitor // set below; the registry's hooks run only after Run starts
	reg, err := registry.New(registry.Config{
		Backend:            &runtime.ONNX{Options: cfg.Runtime},
		MaxConcurrentLoads: cfg.Loading.MaxConcurrentLoads,
		WarmupRuns:         cfg.Loading.WarmupRuns,
		RetryBackoff:       cfg.Loading.RetryBackoff,
		StateFile:          filepath.Join(f.dataDir, "state.json"),
		Policies:           cfg.Policies(),
		Logger:             log.With("component", "registry"),
		OnEvent:            func(e registry.Event) { recordEvent(tel, mon, e) },
		Gate: func(ctx context.Context, cand, cur *registry.Version) error {
			return mon.Gate(ctx, cand, cur)
		},
	})
	if err != nil {
		return err
	}
	mon = monitor.New(cfg.Monitoring, cfg.MonitorSettings(), tel, reg, log.With("component", "monitor"))
	tel.SetLoadedVersions(func() map[string]int {
		out := map[string]int{}
		for _, name := range reg.Models() {
			if st, err := reg.Status(name); err == nil {
				for _, v := range st.Versions {
					if v.State == "serving" || v.State == "loaded" || v.State == "draining" {
						out[name]++
					}
				}
			}
		}
		return out
	})
	w, err := watch.New(watch.Config{
		Root: f.modelDir, Debounce: cfg.Watch.Debounce, Rescan: cfg.Watch.Rescan,
		DisableNotify: cfg.Watch.DisableNotify, Logger: log,
	}, reg.Sync)
	if err != nil {
		return err
	}
	srv := serve.New(cfg.Serving, reg, w.Scanned, log.With("component", "serve"), serve.WithTelemetry(tel), serve.WithMonitor(mon))

	if f.debugAddr != "" {
		go func() {
			// net/http/pprof registers on the default mux.
			if err := http.ListenAndServe(f.debugAddr, nil); err != nil {
				log.Error("debug listener", "err", err)
			}
		}()
	}
	httpL, err := net.Listen("tcp", f.httpAddr)
	if err != nil {
		return fmt.Errorf("listen --http-addr: %w", err)
	}
	grpcL, err := net.Listen("tcp", f.grpcAddr)
	if err != nil {
		httpL.Close()
		return fmt.Errorf("listen --grpc-addr: %w", err)
	}

	// Stop order: the run group interrupts every actor at once; the watcher
	// stops reporting, the servers drain in-flight requests (each holds a
	// reference on its version), and only after Run returns does the
	// registry close the sessions.
	var g run.Group
	{
		ctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error { return w.Run(ctx) }, func(error) { cancel() })
	}
	{
		ctx, cancel := context.WithCancel(context.Background())
		metrics := func(h http.Handler) http.Handler {
			mux := http.NewServeMux()
			mux.Handle("GET /metrics", tel.PrometheusHandler())
			mux.Handle("/", h)
			return mux
		}
		g.Add(func() error { return srv.Run(ctx, httpL, grpcL, f.drainTimeout, metrics) }, func(error) { cancel() })
	}
	{
		ctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error { return mon.Run(ctx) }, func(error) { cancel() })
	}
	{
		ctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error { return signals(ctx, f.configPath, reg, mon, log) }, func(error) { cancel() })
	}
	err = g.Run()
	cctx, cancel := context.WithTimeout(context.Background(), f.drainTimeout)
	defer cancel()
	if cerr := reg.Close(cctx); cerr != nil {
		log.Error("close models", "err", cerr)
	}
	if errors.Is(err, errStop) {
		return nil
	}
	return err
}

var errStop = errors.New("stop requested")

// signals returns errStop on SIGINT/SIGTERM and reloads the version
// policies on SIGHUP.
func signals(ctx context.Context, configPath string, reg *registry.Registry, mon *monitor.Monitor, log *slog.Logger) error {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(ch)
	for {
		select {
		case <-ctx.Done():
			return nil
		case s := <-ch:
			if s != syscall.SIGHUP {
				log.Info("shutting down: draining in-flight requests", "signal", s.String())
				return errStop
			}
			cfg, err := config.Load(configPath)
			if err != nil {
				log.Error("SIGHUP: config not reloaded; keeping the current policies", "err", err)
				continue
			}
			if err := reg.SetPolicies(cfg.Policies()); err != nil {
				log.Error("SIGHUP: policies not applied", "err", err)
				continue
			}
			mon.SetSettings(cfg.MonitorSettings())
			log.Info("SIGHUP: version policies reloaded", "config", configPath)
		}
	}
}

// recordEvent turns a registry lifecycle event into telemetry: metrics and
// an OTLP log record, so the collector keeps the version history.
func recordEvent(tel *telemetry.Telemetry, mon *monitor.Monitor, e registry.Event) {
	version := strconv.FormatInt(e.Version, 10)
	var attrs []attribute.KeyValue
	if e.Reason != "" {
		attrs = append(attrs, attribute.String(semconv.AttrReason, e.Reason))
	}
	switch e.Kind {
	case registry.EventLoaded:
		tel.RecordLoad(e.Model, version, e.Duration, nil)
		tel.Event(semconv.EventLoaded, e.Model, version, append(attrs, attribute.Float64("drover.load.seconds", e.Duration.Seconds()))...)
	case registry.EventLoadFailed:
		tel.RecordLoad(e.Model, version, 0, errors.New(e.Reason))
		tel.Event(semconv.EventLoadFailed, e.Model, version, attrs...)
	case registry.EventRejected:
		tel.Event(semconv.EventRejected, e.Model, version, attrs...)
	case registry.EventSwapped:
		tel.RecordSwap(e.Model)
		tel.Event(semconv.EventSwapped, e.Model, version, append(attrs, attribute.String(semconv.AttrPrevious, strconv.FormatInt(e.Previous, 10)))...)
	case registry.EventUnloaded:
		tel.Event(semconv.EventUnloaded, e.Model, version, attrs...)
		tel.ForgetVersion(e.Model, version)
		if mon != nil {
			mon.Forget(e.Model, e.Version)
		}
	}
}
