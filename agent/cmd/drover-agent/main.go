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
	"syscall"
	"time"

	"github.com/oklog/run"

	"github.com/drover-ml/drover/agent/config"
	"github.com/drover-ml/drover/agent/registry"
	"github.com/drover-ml/drover/agent/runtime"
	"github.com/drover-ml/drover/agent/serve"
	"github.com/drover-ml/drover/agent/watch"
	"github.com/drover-ml/drover/shared/buildinfo"
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

	reg, err := registry.New(registry.Config{
		Backend:            &runtime.ONNX{Options: cfg.Runtime},
		MaxConcurrentLoads: cfg.Loading.MaxConcurrentLoads,
		WarmupRuns:         cfg.Loading.WarmupRuns,
		RetryBackoff:       cfg.Loading.RetryBackoff,
		StateFile:          filepath.Join(f.dataDir, "state.json"),
		Policies:           cfg.Policies(),
		Logger:             log.With("component", "registry"),
	})
	if err != nil {
		return err
	}
	w, err := watch.New(watch.Config{
		Root: f.modelDir, Debounce: cfg.Watch.Debounce, Rescan: cfg.Watch.Rescan,
		DisableNotify: cfg.Watch.DisableNotify, Logger: log,
	}, reg.Sync)
	if err != nil {
		return err
	}
	srv := serve.New(cfg.Serving, reg, w.Scanned, log.With("component", "serve"))

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
		g.Add(func() error { return srv.Run(ctx, httpL, grpcL, f.drainTimeout, nil) }, func(error) { cancel() })
	}
	{
		ctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error { return signals(ctx, f.configPath, reg, log) }, func(error) { cancel() })
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
func signals(ctx context.Context, configPath string, reg *registry.Registry, log *slog.Logger) error {
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
			log.Info("SIGHUP: version policies reloaded", "config", configPath)
		}
	}
}
