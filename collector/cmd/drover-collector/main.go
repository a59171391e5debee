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
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/drover-ml/drover/collector/server"
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

func serve(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("drover-collector serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "YAML config file (flags override it)")
	chSpec := fs.String("clickhouse", "", `"embedded" (default) or a DSN such as clickhouse://host:9000/drover`)
	dataDir := fs.String("data-dir", "", "data directory: embedded ClickHouse, spool (default var/collector)")
	grpcAddr := fs.String("otlp-grpc-addr", "", "OTLP gRPC listen address (default :4317)")
	httpAddr := fs.String("otlp-http-addr", "", "OTLP HTTP listen address (default :4318)")
	adminAddr := fs.String("admin-addr", "", "admin API listen address (default :7070)")
	gossip := fs.String("gossip-addr", "", "memberlist gossip address (default :7946)")
	nodeName := fs.String("node-name", "", "cluster node name (default the host name)")
	join := fs.String("join", "", "comma-separated host:port (or DNS names) of cluster peers")
	keyFile := fs.String("gossip-key-file", "", "file with the base64 gossip encryption key (16, 24 or 32 bytes); or set DROVER_GOSSIP_KEY to the key's text")
	advertise := fs.String("gossip-advertise-addr", "", "IP or IP:port peers use to reach this node's gossip, when it differs from --gossip-addr")
	cluster := fs.String("cluster", "", "ClickHouse cluster name: create the schema ON CLUSTER with Replicated engines")
	noGossip := fs.Bool("no-gossip", false, "run a single node without memberlist")
	debugAddr := fs.String("debug-addr", "", "if set, serve Go's pprof profiles on this address (e.g. 127.0.0.1:6061)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	cfg, err := server.Load(*configPath)
	if err != nil {
		return err
	}
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&cfg.ClickHouse.DSN, *chSpec)
	set(&cfg.DataDir, *dataDir)
	set(&cfg.OTLP.GRPCAddr, *grpcAddr)
	set(&cfg.OTLP.HTTPAddr, *httpAddr)
	set(&cfg.Admin.Addr, *adminAddr)
	set(&cfg.Cluster.GossipAddr, *gossip)
	set(&cfg.Cluster.NodeName, *nodeName)
	set(&cfg.Cluster.KeyFile, *keyFile)
	set(&cfg.Cluster.AdvertiseAddr, *advertise)
	cfg.Cluster.Key = os.Getenv("DROVER_GOSSIP_KEY") // key_file wins when both are set
	set(&cfg.ClickHouse.Cluster, *cluster)
	if *join != "" {
		cfg.Cluster.Join = nil
		for _, p := range strings.Split(*join, ",") {
			if p = strings.TrimSpace(p); p != "" {
				cfg.Cluster.Join = append(cfg.Cluster.Join, p)
			}
		}
	}
	if *noGossip {
		cfg.Cluster.Disabled = true
	}
	if *debugAddr != "" {
		go func() {
			// net/http/pprof registers on the default mux.
			if err := http.ListenAndServe(*debugAddr, nil); err != nil {
				log.Error("debug listener", "err", err)
			}
		}()
	}
	// The garbage collector's settings belong to the process, not to one
	// collector: applied here, once.
	cfg.Memory.Apply(log)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// SIGHUP reloads what can change at run time (the tokens).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	return server.Run(ctx, cfg, server.Listeners{}, log, server.ReloadOn(hup))
}
