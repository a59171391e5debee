package main

import (
	"github.com/spf13/cobra"

	"github.com/drover-ml/drover/collector/cli"
)

// optimizeCmd is `droverctl optimize MODEL`: a manual incident and its
// job, or with --data the search on a CSV file (docs/droverctl.md).
func optimizeCmd(app *cli.App, completeModel cobra.CompletionFunc) *cobra.Command {
	var f cli.OptimizeFlags
	cmd := &cobra.Command{
		Use:   "optimize MODEL",
		Short: "Re-optimize a model now: a manual incident and its job, or with --data a search on a CSV file (role publisher)",
		Long: `Without --data: record a manual incident of MODEL (reason "manual", started
--since ago) and schedule its re-optimization job, as a drift incident would.
With --wait, follow the job until it ends and print its report; exit 1 if it
does not succeed.

With --data: upload the CSV file (a header row; the label column and the
model's inputs) and run the optimizer's search on it against the model's
serving (or latest) version, judged on the same held-out rows; the report
is the answer. With --dry-run nothing is published.`,
		Example: "  droverctl optimize iris\n" +
			"  droverctl optimize iris --since 6h --wait\n" +
			"  droverctl optimize iris --data labelled.csv --label species --dry-run\n" +
			"  droverctl optimize iris --data labelled.csv --label species --family random_forest --folds 10 -o json",
		Args:              exactArgs(1),
		ValidArgsFunction: completeModel,
		RunE: func(cmd *cobra.Command, args []string) error {
			f.SinceSet = cmd.Flags().Changed("since")
			f.FoldsSet = cmd.Flags().Changed("folds")
			return app.Optimize(cmd.Context(), args[0], f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.Since, "since", "24h", "the manual incident starts this long ago: the job trains on the labelled data since then")
	fl.BoolVar(&f.Wait, "wait", false, "follow the job, printing its state changes, until it ends; then print its report (exit 1 unless it succeeded)")
	fl.DurationVar(&f.Timeout, "timeout", 0, "with --wait: how long to wait (default: until the job ends)")
	fl.StringVar(&f.Data, "data", "", "a CSV file (header row) to search on instead of the fleet's labelled data")
	fl.StringVar(&f.Label, "label", "", "with --data: the label column")
	fl.StringVar(&f.Family, "family", "", "with --data: search this family only (logistic_regression, linear_regression, ridge, decision_tree, random_forest, gradient_boosting)")
	fl.IntVar(&f.Folds, "folds", 0, "with --data: cross-validation folds, at least 2 (default the model's optimize.folds, else 5)")
	fl.BoolVar(&f.DryRun, "dry-run", false, "with --data: publish nothing, only print the report")
	return cmd
}
