// Command drover-demo is `make run`'s demonstration (deploy/local/run.sh
// runs it): `drover-demo model DIR` trains the initial demo model on the
// shipped data set and writes what `droverctl publish` takes;
// `drover-demo run` sends the data set through the agents, posts the
// labels, injects drift and prints each stage of the loop until every
// agent serves the re-optimized version and the live accuracy is back,
// then keeps the traffic going until it is stopped. Package demo holds
// the logic; docs/demo.md describes the demo.
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
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/drover-ml/drover/collector/adminclient"
	"github.com/drover-ml/drover/deploy/local/demo"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := realMain(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "drover-demo:", err)
		os.Exit(1)
	}
}

func realMain(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: drover-demo model DIR | drover-demo run [flags] (-h for the flags)")
	}
	switch args[0] {
	case "model":
		if len(args) != 2 {
			return errors.New("usage: drover-demo model DIR")
		}
		d, err := demo.Load()
		if err != nil {
			return err
		}
		acc, err := demo.WriteVersion(ctx, d, args[1])
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "drover-demo: %s: logistic regression on %d rows × %d features (breast cancer Wisconsin, CC BY 4.0), training accuracy %.3f\n",
			args[1], d.Rows(), len(d.Features), acc)
		return nil
	case "run":
		return run(ctx, args[1:], out)
	}
	return fmt.Errorf("unknown command %q: want model or run", args[0])
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("drover-demo run", flag.ContinueOnError)
	collector := fs.String("collector", "http://127.0.0.1:7070", "the collector's admin API")
	tokenFile := fs.String("token-file", "var/collector/admin.token", "an admin token (reads the loop's stages, creates the workload's client token)")
	agents := fs.String("agents", "http://127.0.0.1:8080,http://127.0.0.1:8090", "the agents' OIP REST URLs, comma-separated")
	rate := fs.Float64("rate", 50, "requests per second over all agents")
	driftAfter := fs.Duration("drift-after", 45*time.Second, "when the drift starts, from now (≤ 60s)")
	sizeFactor := fs.Float64("size-factor", demo.DefaultSizeFactor, "the covariate shift: the size features are multiplied by it")
	report := fs.Duration("report", 15*time.Second, "how often the live accuracy is printed")
	startedAt := fs.String("started-at", "", "unix time (seconds, fractions allowed) elapsed times count from (make run's start); default now")
	exit := fs.Bool("exit", false, "exit once the loop completed (default: keep the traffic going until stopped)")
	timeout := fs.Duration("timeout", 15*time.Minute, "give up when the loop has not completed after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	start := time.Now()
	if *startedAt != "" {
		f, err := strconv.ParseFloat(*startedAt, 64)
		if err != nil {
			return fmt.Errorf("-started-at %q: %w", *startedAt, err)
		}
		start = time.Unix(0, int64(f*1e9))
	}
	tok, err := os.ReadFile(*tokenFile)
	if err != nil {
		return fmt.Errorf("the admin token: %w", err)
	}
	cl := adminclient.New(*collector, strings.TrimSpace(string(tok)))
	defer cl.Close()
	// A client token for the labels (the collector's feedback route takes
	// role client or agent), one per run.
	nt, _, err := cl.CreateToken(ctx, adminclient.TokenRequest{Name: "demo-workload-" + strconv.FormatInt(time.Now().Unix(), 10), Role: adminclient.RoleClient})
	if err != nil {
		return fmt.Errorf("create the workload's client token: %w", err)
	}
	d, err := demo.Load()
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	w, err := demo.NewWorkload(demo.WorkloadConfig{Model: demo.ModelName, Agents: adminclient.SplitURLs(*agents),
		Collector: *collector, CollectorToken: nt.Token, Rate: *rate, DriftAfter: *driftAfter, SizeFactor: *sizeFactor, Logger: log}, d)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "demo: sending the %d rows at %.0f/s through %s, labels to the agents and the collector; drift in %s\n",
		d.Rows(), *rate, *agents, *driftAfter)

	wctx, stopWork := context.WithCancel(ctx)
	workDone := make(chan error, 1)
	go func() { workDone <- w.Run(wctx) }()
	defer func() { stopWork(); <-workDone }()

	watcher := &demo.Watcher{Client: cl, Model: demo.ModelName, Workload: w, Out: out, Start: start, Report: *report}
	lctx, cancel := context.WithTimeout(ctx, *timeout)
	err = watcher.Watch(lctx)
	cancel()
	loop := watcher.Measure()
	if err == nil || errors.Is(err, demo.ErrNotImproved) || errors.Is(err, context.DeadlineExceeded) {
		loop.Summary(out, start)
		commands(out, *tokenFile, loop)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped (Ctrl-C)
		}
		return fmt.Errorf("the loop did not complete: %w", err)
	}
	if *exit {
		return nil
	}
	fmt.Fprintln(out, "demo: the loop is closed; the traffic goes on (Ctrl-C stops everything)")
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(*report):
			rs := w.Responses(time.Now().Add(-*report))
			acc, n := demo.LiveAccuracy(rs, nil)
			fmt.Fprintf(out, "demo [%6s] live: %d answers in %s, accuracy %.3f\n", time.Since(start).Round(time.Second), n, *report, acc)
		}
	}
}

// commands prints the droverctl commands to look closer.
func commands(out io.Writer, tokenFile string, l demo.Loop) {
	ctl := "./bin/droverctl --token-file " + tokenFile
	job := l.Job.ID
	if job == "" {
		job = "JOB"
	}
	fmt.Fprintf(out, `demo: look closer:
  %[1]s drift %[2]s               # drift checks
  %[1]s incidents --model %[2]s   # the incident
  %[1]s jobs --model %[2]s        # the job the incident opened
  %[1]s jobs show %[3]s           # its report: grid, CV, held-out scores
  %[1]s versions %[2]s            # versions side by side with live metrics
  %[1]s versions show %[2]s %[4]d   # lineage: incident → job → version
  %[1]s history %[2]s             # the timeline: published, canary, promoted
  %[1]s status %[2]s              # every agent and what it serves
`, ctl, demo.ModelName, job, l.Version)
}
