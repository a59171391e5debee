// Command drover-collector receives the fleet's telemetry and keeps its
// history in ClickHouse. `drover-collector serve --help` lists the flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/oklog/run"

	"github.com/drover-ml/drover/collector/admin"
	"github.com/drover-ml/drover/collector/store"
	"github.com/drover-ml/drover/shared/buildinfo"
)

const usage = `Usage: drover-collector <command> [flags]

Commands:
  serve      run the collector (OTLP in, ClickHouse out, admin API)
  version    print the version

Run 'drover-collector serve --help' for the serve flags.
`

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

func realMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "-h", "--help", "-help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	case "-version", "--version", "version":
		fmt.Fprintln(stdout, buildinfo.String("drover-collector"))
		return 0
	case "serve":
		if err := serve(args[1:], stdout, stderr); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			fmt.Fprintln(stderr, "drover-collector:", err)
			return 1
		}
		return 0
	default:
		fmt.Fprintf(stderr, "drover-collector: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}

type serveFlags struct {
	config, clickhouse, dataDir                   string
	otlpGRPCAddr, otlpHTTPAddr, adminAddr, gossip string
	nodeName, join, logLevel                      string
}

func serve(args []string, stdout, stderr io.Writer) error {
	var f serveFlags
	host, _ := os.Hostname()
	fs := flag.NewFlagSet("drover-collector serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.config, "config", "", "YAML config file")
	fs.StringVar(&f.clickhouse, "clickhouse", store.Embedded, `"embedded" or a DSN such as clickhouse://host:9000/drover`)
	fs.StringVar(&f.dataDir, "data-dir", "var/collector", "data directory (embedded ClickHouse, spool)")
	fs.StringVar(&f.otlpGRPCAddr, "otlp-grpc-addr", ":4317", "OTLP gRPC listen address")
	fs.StringVar(&f.otlpHTTPAddr, "otlp-http-addr", ":4318", "OTLP HTTP listen address")
	fs.StringVar(&f.adminAddr, "admin-addr", ":7070", "admin API listen address")
	fs.StringVar(&f.gossip, "gossip-addr", ":7946", "memberlist gossip address")
	fs.StringVar(&f.nodeName, "node-name", host, "cluster node name")
	fs.StringVar(&f.join, "join", "", "comma-separated host:port of cluster peers")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	backend, err := store.Open(ctx, f.clickhouse, f.dataDir, log)
	if err != nil {
		return err
	}
	// The backend closes last, after every component that writes to it has
	// returned (run.Group waits for all actors before we get here).
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := backend.Close(cctx); err != nil {
			log.Error("close clickhouse", "err", err)
		}
	}()
	log.Info("clickhouse ready", "dsn", backend.DSN)

	var g run.Group
	{
		ctx, cancel := context.WithCancel(ctx)
		g.Add(func() error {
			<-ctx.Done()
			return nil
		}, func(error) { cancel() })
	}
	{
		ctx, cancel := context.WithCancel(context.Background())
		srv := admin.New(f.adminAddr, func(ctx context.Context) error { return backend.Conn.Ping(ctx) }, log)
		g.Add(func() error { return srv.Run(ctx) }, func(error) { cancel() })
	}
	if exited := backend.Exited(); exited != nil {
		ctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error {
			select {
			case <-exited:
				return errors.New("embedded clickhouse exited")
			case <-ctx.Done():
				return nil
			}
		}, func(error) { cancel() })
	}
	log.Info("drover-collector serving", "node", f.nodeName, "admin", f.adminAddr)
	return g.Run()
}
