package main

import (
	"github.com/spf13/cobra"

	"github.com/drover-ml/drover/collector/cli"
)

// fleetCmds are the changes of a model's desired state (docs/fleet.md):
// rollout, rollback, pin, unpin, canary, promote, abort, shadow. Each takes
// --reason, and --wait [--timeout] to follow the fleet until it serves the
// change.
func fleetCmds(app *cli.App) []*cobra.Command {
	// complete: the model, then (when the command takes one) its versions.
	complete := func(versionArgs int) cobra.CompletionFunc {
		return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
			switch {
			case len(args) == 0:
				return app.CompleteModels(cmd.Context(), toComplete), cobra.ShellCompDirectiveNoFileComp
			case len(args) <= versionArgs:
				return app.CompleteVersions(cmd.Context(), args[0], toComplete), cobra.ShellCompDirectiveNoFileComp
			}
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
	}
	change := func(cmd *cobra.Command, cf *cli.ChangeFlags) *cobra.Command {
		cmd.Flags().StringVar(&cf.Reason, "reason", "", "why: recorded with the change in the desired state's history")
		cmd.Flags().BoolVar(&cf.Wait, "wait", false, "follow the fleet until every selected agent serves the change (exit 0) or one fails (exit 1)")
		cmd.Flags().DurationVar(&cf.Timeout, "timeout", cli.DefaultWaitTimeout, "how long --wait waits (exit 1 after it)")
		return cmd
	}

	var (
		rolloutF  cli.RolloutFlags
		rolloutCF cli.ChangeFlags
	)
	rollout := change(&cobra.Command{
		Use:   "rollout MODEL N",
		Short: "Move every selected agent to version N, or start a canary of N with --canary",
		Example: "  droverctl rollout iris 4 --reason \"nightly retrain\" --wait\n" +
			"  droverctl rollout iris 4 --canary 20 --auto --selector zone=eu-1\n" +
			"  droverctl rollout iris 4 --canary 10 --auto --analysis-duration 30m --min-samples 2000",
		Args:              exactArgs(2),
		ValidArgsFunction: complete(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.Rollout(cmd.Context(), args[0], args[1], rolloutF, rolloutCF)
		},
	}, &rolloutCF)
	rollout.Flags().StringVar(&rolloutF.Canary, "canary", "", "send PCT percent (0-100) of requests to N as a canary instead of moving everything")
	rollout.Flags().BoolVar(&rolloutF.Auto, "auto", false, "with --canary: the model's owner collector promotes or aborts the canary by its analysis")
	rollout.Flags().DurationVar(&rolloutF.AnalysisDuration, "analysis-duration", 0, "with --auto: how long the canary serves before it may be promoted (default the collector's, 10m)")
	rollout.Flags().Uint64Var(&rolloutF.MinSamples, "min-samples", 0, "with --auto: the fewest observations each side needs before a metric is judged (default the collector's, 500)")
	rollout.Flags().Float64Var(&rolloutF.MaxRegression, "max-regression", 0, "with --auto: the worsening tolerated, in [0, 1) (default the collector's, 0.02)")
	rollout.Flags().StringArrayVar(&rolloutF.Selector, "selector", nil, "only agents with this label, k=v (repeat or comma-separate: all must match)")

	var rollbackCF cli.ChangeFlags
	rollback := change(&cobra.Command{
		Use:     "rollback MODEL [N]",
		Short:   "Return every selected agent to version N (default: the version that served before the last change)",
		Example: "  droverctl rollback iris --reason \"error rate\" --wait",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return cli.Usagef("%s: want 1 or 2 arguments (%s), got %d", cmd.CommandPath(), cmd.Use, len(args))
			}
			return nil
		},
		ValidArgsFunction: complete(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n := ""
			if len(args) == 2 {
				n = args[1]
			}
			return app.Rollback(cmd.Context(), args[0], n, rollbackCF)
		},
	}, &rollbackCF)

	var pinCF cli.ChangeFlags
	pin := change(&cobra.Command{
		Use:               "pin MODEL N",
		Short:             "Serve version N everywhere selected, with no canary and no automatic change until unpin",
		Example:           "  droverctl pin iris 3 --reason \"freeze for the audit\"",
		Args:              exactArgs(2),
		ValidArgsFunction: complete(1),
		RunE:              func(cmd *cobra.Command, args []string) error { return app.Pin(cmd.Context(), args[0], args[1], pinCF) },
	}, &pinCF)

	var unpinCF cli.ChangeFlags
	unpin := change(&cobra.Command{
		Use:               "unpin MODEL",
		Short:             "Let automatic changes (canary analysis, the optimizer) touch the model again",
		Example:           "  droverctl unpin iris --reason \"audit done\"",
		Args:              exactArgs(1),
		ValidArgsFunction: complete(0),
		RunE:              func(cmd *cobra.Command, args []string) error { return app.Unpin(cmd.Context(), args[0], unpinCF) },
	}, &unpinCF)

	var canaryCF cli.ChangeFlags
	canary := change(&cobra.Command{
		Use:               "canary MODEL N PCT",
		Short:             "Send PCT percent (0-100) of each selected agent's requests to version N",
		Example:           "  droverctl canary iris 4 10 --reason \"try the retrain\"",
		Args:              exactArgs(3),
		ValidArgsFunction: complete(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.Canary(cmd.Context(), args[0], args[1], args[2], canaryCF)
		},
	}, &canaryCF)

	var promoteCF cli.ChangeFlags
	promote := change(&cobra.Command{
		Use:               "promote MODEL",
		Short:             "Make the canary the serving version (refused, exit 5, without a canary)",
		Example:           "  droverctl promote iris --wait",
		Args:              exactArgs(1),
		ValidArgsFunction: complete(0),
		RunE:              func(cmd *cobra.Command, args []string) error { return app.Promote(cmd.Context(), args[0], promoteCF) },
	}, &promoteCF)

	var abortCF cli.ChangeFlags
	abort := change(&cobra.Command{
		Use:               "abort MODEL",
		Short:             "Remove the canary (refused, exit 5, without a canary)",
		Example:           "  droverctl abort iris --reason \"p99 up\"",
		Args:              exactArgs(1),
		ValidArgsFunction: complete(0),
		RunE:              func(cmd *cobra.Command, args []string) error { return app.Abort(cmd.Context(), args[0], abortCF) },
	}, &abortCF)

	var shadowCF cli.ChangeFlags
	shadow := change(&cobra.Command{
		Use:               "shadow MODEL N PCT",
		Short:             "Copy PCT percent (0-100; 0 removes it) of the requests to version N, whose answers are discarded",
		Example:           "  droverctl shadow iris 5 10",
		Args:              exactArgs(3),
		ValidArgsFunction: complete(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return app.Shadow(cmd.Context(), args[0], args[1], args[2], shadowCF)
		},
	}, &shadowCF)

	return []*cobra.Command{rollout, rollback, pin, unpin, canary, promote, abort, shadow}
}
