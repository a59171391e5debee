// Command droverctl administers a Drover collector cluster through its admin
// API. `droverctl --help` lists the commands; docs/droverctl.md describes
// them. This file declares the flags and the command tree; the commands'
// logic lives in collector/cli.
package main

import (
	"context"
	"errors"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/drover-ml/drover/collector/adminclient"
	"github.com/drover-ml/drover/collector/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := realMain(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// pollInterval is how often --wait asks for a fleet status; tests
// shorten it.
var pollInterval = cli.DefaultPollInterval

// realMain runs one command line and returns its exit code.
func realMain(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	app := &cli.App{Getenv: getenv, Out: stdout, Err: stderr, PollInterval: pollInterval}
	defer app.Close()
	root := newRoot(app)
	if args == nil {
		args = []string{} // nil would make cobra read os.Args
	}
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err != nil && !cli.IsUsage(err) && isCobraUsage(err) {
		err = &cli.UsageError{Err: err}
	}
	cli.PrintError(stderr, err)
	return cli.ExitCode(err)
}

// isCobraUsage recognises the command-line errors cobra makes itself and
// does not type (most go through SetFlagErrorFunc and the Args checks
// already). Errors from the API are never usage errors, whatever they say.
func isCobraUsage(err error) bool {
	var (
		ae *adminclient.APIError
		ue *adminclient.UnreachableError
	)
	if errors.As(err, &ae) || errors.As(err, &ue) {
		return false
	}
	msg := err.Error()
	for _, p := range []string{"unknown command ", "unknown flag: ", "unknown shorthand flag: ", "required flag(s) ", "flag needs an argument: ", "bad flag syntax: "} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

func newRoot(app *cli.App) *cobra.Command {
	root := &cobra.Command{
		Use:   "droverctl",
		Short: "Administer a Drover collector cluster",
		Long: `droverctl administers a Drover collector cluster through its admin API.

Exit codes: 0 ok, 1 error (collector unreachable: the URLs tried and why;
with --wait, an agent failed or the timeout passed), 2 usage, 3 not found,
4 denied (401/403), 5 refused (409).`,
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cmd.SetOut(cmd.ErrOrStderr())
			_ = cmd.Help()
			return cli.Usagef("no command given")
		},
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error { return app.Validate() },
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &cli.UsageError{Err: err} })
	f := root.PersistentFlags()
	f.StringVar(&app.Opts.Collector, "collector", "", "collector admin API URLs, comma-separated, tried in turn ($DROVER_COLLECTOR; default "+cli.DefaultCollector+")")
	f.StringVar(&app.Opts.Token, "token", "", "admin API token ($DROVER_TOKEN)")
	f.StringVar(&app.Opts.TokenFile, "token-file", "", "file holding the admin API token")
	f.StringVar(&app.Opts.TLSCA, "tls-ca", "", "PEM file of CA certificates that verify the collector's TLS certificate ($DROVER_TLS_CA; default the system's roots)")
	f.StringVar(&app.Opts.TLSCert, "tls-cert", "", "PEM client certificate for collectors that verify client certificates ($DROVER_TLS_CERT; with --tls-key)")
	f.StringVar(&app.Opts.TLSKey, "tls-key", "", "PEM key of --tls-cert ($DROVER_TLS_KEY)")
	f.StringVarP(&app.Opts.Output, "output", "o", cli.OutputTable, "output format: table, json or yaml")
	f.BoolVar(&app.Opts.NoColor, "no-color", false, "no colour in tables (also $NO_COLOR; colour is used only on a terminal)")

	completeModel := func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return app.CompleteModels(cmd.Context(), toComplete), cobra.ShellCompDirectiveNoFileComp
	}
	completeModelFlag := func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		return app.CompleteModels(cmd.Context(), toComplete), cobra.ShellCompDirectiveNoFileComp
	}

	root.AddCommand(
		&cobra.Command{
			Use:   "status [MODEL]",
			Short: "Check the collector is alive and ready (no token); with MODEL: desired vs actual version per agent, rollout progress",
			Example: "  droverctl status\n" +
				"  droverctl status iris",
			Args: func(cmd *cobra.Command, args []string) error {
				if len(args) > 1 {
					return cli.Usagef("%s: want at most 1 argument (%s), got %d", cmd.CommandPath(), cmd.Use, len(args))
				}
				return nil
			},
			ValidArgsFunction: completeModel,
			RunE: func(cmd *cobra.Command, args []string) error {
				if len(args) == 1 {
					return app.FleetStatus(cmd.Context(), args[0])
				}
				return app.Status(cmd.Context())
			},
		},
		&cobra.Command{
			Use:   "version",
			Short: "Print droverctl's version",
			Args:  noArgs,
			RunE:  func(cmd *cobra.Command, args []string) error { return app.Version() },
		},
		&cobra.Command{
			Use:     "cluster",
			Short:   "Show the collectors of the cluster, their state and the models each owns",
			Example: "  droverctl cluster",
			Args:    noArgs,
			RunE:    func(cmd *cobra.Command, args []string) error { return app.Cluster(cmd.Context()) },
		},
		&cobra.Command{
			Use:     "models",
			Short:   "List the models the fleet reports: versions serving, hosts, requests/s, error rate",
			Example: "  droverctl models -o json",
			Args:    noArgs,
			RunE:    func(cmd *cobra.Command, args []string) error { return app.Models(cmd.Context()) },
		},
		versionsCmd(app, completeModel),
		&cobra.Command{
			Use:               "drift MODEL",
			Short:             "Show the latest drift check per feature and the open incidents of a model",
			Example:           "  droverctl drift iris",
			Args:              exactArgs(1),
			ValidArgsFunction: completeModel,
			RunE:              func(cmd *cobra.Command, args []string) error { return app.Drift(cmd.Context(), args[0]) },
		},
		incidentsCmd(app, completeModelFlag),
		jobsCmd(app, completeModelFlag),
		&cobra.Command{
			Use:               "history MODEL",
			Short:             "Show a model's timeline: versions, loads, swaps, rollbacks, incidents, jobs",
			Example:           "  droverctl history iris",
			Args:              exactArgs(1),
			ValidArgsFunction: completeModel,
			RunE:              func(cmd *cobra.Command, args []string) error { return app.History(cmd.Context(), args[0]) },
		},
		&cobra.Command{
			Use:     "agents",
			Short:   "List the agents that follow the collectors: host, labels, versions serving, last heartbeat, errors",
			Example: "  droverctl agents",
			Args:    noArgs,
			RunE:    func(cmd *cobra.Command, args []string) error { return app.Agents(cmd.Context()) },
		},
		tokenCmd(app),
		publishCmd(app, completeModel),
		optimizeCmd(app, completeModel),
		mergeCmd(app),
		pullCmd(app),
	)
	root.AddCommand(fleetCmds(app)...)
	return root
}

func publishCmd(app *cli.App, completeModel cobra.CompletionFunc) *cobra.Command {
	var f cli.PublishFlags
	cmd := &cobra.Command{
		Use:   "publish MODEL DIR",
		Short: "Publish the files of DIR (model.onnx, optionally drover.yaml) as a new version of MODEL",
		Example: "  droverctl publish iris ./iris-model --message \"retrain on november data\" --parent 3\n" +
			"  droverctl publish iris ./iris-model --training-data train.csv --label species -o json\n" +
			"  DROVER_COLLECTOR=$DROVER_PUBLISH_URL DROVER_TOKEN=$DROVER_PUBLISH_TOKEN droverctl publish \"$DROVER_MODEL\" ./out --job \"$DROVER_JOB_ID\"",
		Args: exactArgs(2),
		ValidArgsFunction: func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
			if len(args) == 0 {
				return completeModel(cmd, args, toComplete)
			}
			return nil, cobra.ShellCompDirectiveFilterDirs
		},
		RunE: func(cmd *cobra.Command, args []string) error { return app.Publish(cmd.Context(), args[0], args[1], f) },
	}
	cmd.Flags().StringVar(&f.Message, "message", "", "what this version is")
	cmd.Flags().StringVar(&f.Author, "author", "", "who made it")
	cmd.Flags().Uint64Var(&f.Parent, "parent", 0, "the version it derives from")
	cmd.Flags().StringVar(&f.TrainingData, "training-data", "", "CSV of training data (header row) to store with the version; the registry computes the feature bins")
	cmd.Flags().StringVar(&f.Label, "label", "", "the label column of --training-data")
	cmd.Flags().StringVar(&f.Job, "job", "", "the re-optimization job that made it (in a job's command: \"$DROVER_JOB_ID\"); the version becomes the job's result")
	return cmd
}

func mergeCmd(app *cli.App) *cobra.Command {
	var weights, message string
	cmd := &cobra.Command{
		Use:     "merge MODEL N1 N2",
		Short:   "Publish a version that is the weighted ensemble of versions N1 and N2",
		Example: "  droverctl merge iris 3 4 --weights 0.7,0.3 --message \"ensemble\"",
		Args:    exactArgs(3),
		ValidArgsFunction: func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
			if len(args) == 0 {
				return app.CompleteModels(cmd.Context(), toComplete), cobra.ShellCompDirectiveNoFileComp
			}
			return app.CompleteVersions(cmd.Context(), args[0], toComplete), cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.Merge(cmd.Context(), args[0], args[1], args[2], weights, message)
		},
	}
	cmd.Flags().StringVar(&weights, "weights", "", "the two weights, like 0.5,0.5 (default: equal)")
	cmd.Flags().StringVar(&message, "message", "", "what this version is")
	return cmd
}

func pullCmd(app *cli.App) *cobra.Command {
	return &cobra.Command{
		Use:     "pull MODEL N DIR",
		Short:   "Download version N of MODEL into DIR (written as DIR.tmp, verified, then renamed; resumes)",
		Example: "  droverctl pull iris 3 /srv/models/iris/3",
		Args:    exactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.Pull(cmd.Context(), args[0], args[1], args[2])
		},
	}
}

func versionsCmd(app *cli.App, completeModel cobra.CompletionFunc) *cobra.Command {
	var since time.Duration
	cmd := &cobra.Command{
		Use:               "versions MODEL",
		Short:             "Compare every version of a model: requests, errors, latency, accuracy, drift, hosts",
		Example:           "  droverctl versions iris --since 1h",
		Args:              exactArgs(1),
		ValidArgsFunction: completeModel,
		RunE:              func(cmd *cobra.Command, args []string) error { return app.Versions(cmd.Context(), args[0], since) },
	}
	cmd.Flags().DurationVar(&since, "since", 24*time.Hour, "window of the metrics")
	cmd.AddCommand(&cobra.Command{
		Use:     "diff MODEL N1 N2",
		Short:   "Show what differs between two versions: records, signatures, metrics and their deltas",
		Example: "  droverctl versions diff iris 3 4",
		Args:    exactArgs(3),
		ValidArgsFunction: func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
			switch len(args) {
			case 0:
				return app.CompleteModels(cmd.Context(), toComplete), cobra.ShellCompDirectiveNoFileComp
			case 1, 2:
				return app.CompleteVersions(cmd.Context(), args[0], toComplete), cobra.ShellCompDirectiveNoFileComp
			}
			return nil, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.VersionDiff(cmd.Context(), args[0], args[1], args[2])
		},
	})
	completeVersion := func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		switch len(args) {
		case 0:
			return app.CompleteModels(cmd.Context(), toComplete), cobra.ShellCompDirectiveNoFileComp
		case 1:
			return app.CompleteVersions(cmd.Context(), args[0], toComplete), cobra.ShellCompDirectiveNoFileComp
		}
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	cmd.AddCommand(
		&cobra.Command{
			Use:               "show MODEL N",
			Short:             "Show a version's record: author, message, parents, source, signature, files",
			Example:           "  droverctl versions show iris 3",
			Args:              exactArgs(2),
			ValidArgsFunction: completeVersion,
			RunE:              func(cmd *cobra.Command, args []string) error { return app.VersionShow(cmd.Context(), args[0], args[1]) },
		},
		&cobra.Command{
			Use:               "delete MODEL N",
			Short:             "Delete a version (refused, exit 5, while it is desired or serving)",
			Example:           "  droverctl versions delete iris 2",
			Args:              exactArgs(2),
			ValidArgsFunction: completeVersion,
			RunE: func(cmd *cobra.Command, args []string) error {
				return app.VersionDelete(cmd.Context(), args[0], args[1])
			},
		},
	)
	return cmd
}

func incidentsCmd(app *cli.App, completeModelFlag cobra.CompletionFunc) *cobra.Command {
	var model string
	cmd := &cobra.Command{
		Use:     "incidents",
		Short:   "List drift incidents",
		Example: "  droverctl incidents --model iris",
		Args:    noArgs,
		RunE:    func(cmd *cobra.Command, args []string) error { return app.Incidents(cmd.Context(), model) },
	}
	cmd.Flags().StringVar(&model, "model", "", "only this model's incidents")
	_ = cmd.RegisterFlagCompletionFunc("model", completeModelFlag)
	return cmd
}

func jobsCmd(app *cli.App, completeModelFlag cobra.CompletionFunc) *cobra.Command {
	var f adminclient.JobFilter
	cmd := &cobra.Command{
		Use:     "jobs",
		Short:   "List re-optimization jobs",
		Example: "  droverctl jobs --model iris --state failed",
		Args:    noArgs,
		RunE:    func(cmd *cobra.Command, args []string) error { return app.Jobs(cmd.Context(), f) },
	}
	cmd.Flags().StringVar(&f.Model, "model", "", "only this model's jobs")
	cmd.Flags().StringVar(&f.State, "state", "", "only jobs in this state: queued, running, succeeded, failed, timed_out, cancelled")
	_ = cmd.RegisterFlagCompletionFunc("model", completeModelFlag)
	_ = cmd.RegisterFlagCompletionFunc("state", cobra.FixedCompletions(
		[]string{"queued", "running", "succeeded", "failed", "timed_out", "cancelled"}, cobra.ShellCompDirectiveNoFileComp))
	cmd.AddCommand(
		&cobra.Command{
			Use:     "show ID",
			Short:   "Show a job: spec, attempts, output tail, result version, report",
			Example: "  droverctl jobs show job-3f2a9c0d1e2b4a5f6c7d8e9f",
			Args:    exactArgs(1),
			RunE:    func(cmd *cobra.Command, args []string) error { return app.JobShow(cmd.Context(), args[0]) },
		},
		&cobra.Command{
			Use:     "retry ID",
			Short:   "Run a finished job again",
			Example: "  droverctl jobs retry job-3f2a9c0d1e2b4a5f6c7d8e9f",
			Args:    exactArgs(1),
			RunE:    func(cmd *cobra.Command, args []string) error { return app.JobRetry(cmd.Context(), args[0]) },
		},
		&cobra.Command{
			Use:     "cancel ID",
			Short:   "Cancel a queued or running job",
			Example: "  droverctl jobs cancel job-3f2a9c0d1e2b4a5f6c7d8e9f",
			Args:    exactArgs(1),
			RunE:    func(cmd *cobra.Command, args []string) error { return app.JobCancel(cmd.Context(), args[0]) },
		},
	)
	return cmd
}

func tokenCmd(app *cli.App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create, list and revoke admin API tokens",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cmd.SetOut(cmd.ErrOrStderr())
			_ = cmd.Help()
			return cli.Usagef("token needs a subcommand: create, list or revoke")
		},
	}
	var name, role string
	create := &cobra.Command{
		Use:     "create --role R --name N",
		Short:   "Create a token; its secret is printed once",
		Example: "  droverctl token create --role publisher --name ci",
		Args:    noArgs,
		RunE:    func(cmd *cobra.Command, args []string) error { return app.TokenCreate(cmd.Context(), name, role) },
	}
	create.Flags().StringVar(&name, "name", "", "the token's name (unique)")
	create.Flags().StringVar(&role, "role", "", "admin, reader, publisher, agent or client")
	_ = create.RegisterFlagCompletionFunc("role", cobra.FixedCompletions(adminclient.Roles, cobra.ShellCompDirectiveNoFileComp))
	cmd.AddCommand(
		create,
		&cobra.Command{
			Use:     "list",
			Short:   "List tokens (never their secrets)",
			Example: "  droverctl token list",
			Args:    noArgs,
			RunE:    func(cmd *cobra.Command, args []string) error { return app.TokenList(cmd.Context()) },
		},
		&cobra.Command{
			Use:     "revoke NAME",
			Short:   "Revoke a token",
			Example: "  droverctl token revoke ci",
			Args:    exactArgs(1),
			RunE:    func(cmd *cobra.Command, args []string) error { return app.TokenRevoke(cmd.Context(), args[0]) },
		},
	)
	return cmd
}

// noArgs rejects arguments as a usage error, naming an unknown command.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	if cmd.HasSubCommands() {
		return cli.Usagef("unknown command %q for %q", args[0], cmd.CommandPath())
	}
	return cli.Usagef("%s takes no arguments, got %q", cmd.CommandPath(), args)
}

// exactArgs wants n arguments, as a usage error otherwise.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return cli.Usagef("%s: want %d argument(s) (%s), got %d", cmd.CommandPath(), n, cmd.Use, len(args))
		}
		return nil
	}
}
