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
	"maps"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/drover-ml/drover/agent/agent"
	"github.com/drover-ml/drover/agent/config"
	"github.com/drover-ml/drover/shared/buildinfo"
	"github.com/drover-ml/drover/shared/procenv"
)

type flags struct {
	modelDir, configPath, httpAddr, grpcAddr, dataDir, logLevel, debugAddr string
	// controlAddr is --control-addr when given; "" takes control.addr.
	controlAddr  string
	drainTimeout time.Duration
	// fleet are --collector, --token-file and --label, applied over the
	// file's control section.
	fleet fleetFlags
	// startOver gives the process process.timer_slack and
	// process.sysmon_timer_slack (realMain's).
	startOver func(procenv.Slack) error
}

// fleetFlags are the fleet-control flags; each, when given, wins over the
// file's control.collectors, control.token_file; labels add to
// control.labels.
type fleetFlags struct {
	collectors string
	tokenFile  string
	labels     labelFlag
}

// labelFlag is a repeatable --label k=v.
type labelFlag map[string]string

func (l *labelFlag) String() string { return fmt.Sprint(map[string]string(*l)) }

func (l *labelFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok {
		return fmt.Errorf("want k=v, got %q", s)
	}
	if err := config.ValidLabel(k, v); err != nil {
		return err
	}
	if *l == nil {
		*l = labelFlag{}
	}
	(*l)[k] = v
	return nil
}

// apply puts the flags over the file's control section and validates it
// again.
func (ff fleetFlags) apply(c *config.Config) error {
	if ff.collectors != "" {
		c.Control.Collectors = strings.Split(ff.collectors, ",")
	}
	if ff.tokenFile != "" {
		c.Control.TokenFile = ff.tokenFile
	}
	if len(ff.labels) > 0 {
		labels := maps.Clone(c.Control.Labels)
		if labels == nil {
			labels = map[string]string{}
		}
		maps.Copy(labels, ff.labels)
		c.Control.Labels = labels
	}
	if err := c.Validate(); err != nil {
		return fmt.Errorf("--collector, --token-file, --label: %w", err)
	}
	return nil
}

func main() { os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr, procenv.ExecWithTimerSlack)) }

// realMain runs drover-agent with args; startOver is how it gives its
// threads process.timer_slack and sysmon process.sysmon_timer_slack (nil:
// it does not, as in tests, whose process it must not replace).
func realMain(args []string, stdout, stderr io.Writer, startOver func(procenv.Slack) error) int {
	f := flags{startOver: startOver}
	fs := flag.NewFlagSet("drover-agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.modelDir, "model-dir", "", "model store root: <root>/<model>/<version>/model.onnx (required)")
	fs.StringVar(&f.configPath, "config", "", "YAML config file (runtime, serving limits, version policies); SIGHUP reloads the policies")
	fs.StringVar(&f.httpAddr, "http-addr", ":8080", "Open Inference Protocol REST listen address")
	fs.StringVar(&f.grpcAddr, "grpc-addr", ":8081", "Open Inference Protocol gRPC listen address")
	controlAddr := fs.String("control-addr", config.DefaultControlAddr, "control API listen address (pin, canary, shadow; needs the token in <data-dir>/control.token); when not given, the config file's control.addr")
	fs.StringVar(&f.dataDir, "data-dir", "var/agent", "agent state directory (version pins, control.token)")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&f.debugAddr, "debug-addr", "", "if set, serve Go's pprof profiles on this address (e.g. 127.0.0.1:6060)")
	fs.DurationVar(&f.drainTimeout, "drain-timeout", 30*time.Second, "how long shutdown waits for in-flight requests")
	fs.StringVar(&f.fleet.collectors, "collector", "", "follow the fleet's desired state from these collectors (their admin URLs, comma-separated, tried in turn); when not given, the config file's control.collectors")
	fs.StringVar(&f.fleet.tokenFile, "token-file", "", "the agent's token for the collectors (role agent); when not given, control.token_file")
	fs.Var(&f.fleet.labels, "label", "an agent label k=v for the collectors' selectors, repeatable; added over control.labels")
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
	fs.Visit(func(fl *flag.Flag) {
		if fl.Name == "control-addr" {
			f.controlAddr = *controlAddr
		}
	})
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
	if err := runAgent(f, log); err != nil {
		log.Error("drover-agent stopped", "err", err)
		return 1
	}
	return 0
}

// runAgent loads the configuration file, opens the listeners and runs the
// agent until SIGINT or SIGTERM; SIGHUP reloads the configuration file.
func runAgent(f flags, log *slog.Logger) error {
	file, err := config.Load(f.configPath)
	if err != nil {
		return err
	}
	file.Process.ApplyTimerSlack(log, f.startOver)
	if f.controlAddr == "" {
		f.controlAddr = file.Control.Addr
	}
	if err := f.fleet.apply(&file); err != nil {
		return err
	}
	ls, err := listen(f)
	if err != nil {
		return err
	}
	file.Process.Apply(log)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reload := make(chan struct{}, 1)
	stopSignals := handleSignals(cancel, reload, log)
	defer stopSignals()
	return agent.Run(ctx, agent.Config{
		File: file, ConfigPath: f.configPath, ModelDir: f.modelDir, DataDir: f.dataDir,
		DrainTimeout: f.drainTimeout, Reload: reload,
	}, ls, log)
}

// listen opens the listeners the flags name; on error none stays open.
func listen(f flags) (ls agent.Listeners, err error) {
	defer func() {
		if err != nil {
			for _, ln := range []net.Listener{ls.HTTP, ls.GRPC, ls.Control, ls.Debug} {
				if ln != nil {
					ln.Close()
				}
			}
		}
	}()
	if ls.HTTP, err = net.Listen("tcp", f.httpAddr); err != nil {
		return ls, fmt.Errorf("listen --http-addr: %w", err)
	}
	if ls.GRPC, err = net.Listen("tcp", f.grpcAddr); err != nil {
		return ls, fmt.Errorf("listen --grpc-addr: %w", err)
	}
	if ls.Control, err = net.Listen("tcp", f.controlAddr); err != nil {
		return ls, fmt.Errorf("listen --control-addr (control.addr): %w", err)
	}
	if f.debugAddr != "" {
		if ls.Debug, err = net.Listen("tcp", f.debugAddr); err != nil {
			return ls, fmt.Errorf("listen --debug-addr: %w", err)
		}
	}
	return ls, nil
}

// handleSignals cancels the agent (stop) on SIGINT or SIGTERM and asks it
// to reload on SIGHUP, until the returned function is called. After the
// first SIGINT or SIGTERM the signals get their default action back, so a
// second one ends the process at once.
func handleSignals(stop context.CancelFunc, reload chan<- struct{}, log *slog.Logger) (release func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		defer signal.Stop(ch)
		for {
			select {
			case <-done:
				return
			case s := <-ch:
				if s != syscall.SIGHUP {
					log.Info("shutting down: draining in-flight requests", "signal", s.String())
					stop()
					return
				}
				select {
				case reload <- struct{}{}:
				default: // a reload is pending already
				}
			}
		}
	}()
	return func() {
		close(done)
		<-exited
	}
}
