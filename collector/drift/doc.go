// Package drift detects drift of the models a collector owns.
//
// Every policy Interval, the Scheduler asks the Checker to compare, for
// each serving version of each owned model, the current window
// [now−Window, now) with a reference (the version's first Window of data,
// or the distribution its manifest bins imply). The Checker aggregates
// the agents' delta and cumulative histograms, counters and gauges in
// ClickHouse (per-series increases, summed bucket by bucket), computes PSI,
// Jensen-Shannon, Kolmogorov-Smirnov, normed Wasserstein-1 and, for
// categorical features, chi² per feature in Go, plus evaluation metric
// degradation, error rate and p99 latency signals, and writes every result
// to drift_results. The Detector confirms drift when M of the last N
// checks drifted, opens one incident with a deterministic start, stays
// quiet for the cooldown, and can be restored from drift_results by the
// next owner of a model. docs/drift.md is the operator's reference.
//
// Files by concern:
//   - reads.go: every query drift makes (the windows of the metric tables,
//     serving versions, version starts, the drift_results history); the
//     model listing is collector/store's RecentModels.
//   - verdict.go: the verdict, a pure function of the two windows' data
//     (which features and signals drifted, the dataset share, the reasons).
//   - stats.go: the statistics (gonum where it has them).
//   - checker.go: Check (read, judge, record) and the drift_results rows.
//   - detector.go: M of N, cooldown, Restore; no I/O of its own.
//   - scheduler.go: the loop, through the Checks interface.
//   - policy.go: the configuration.
package drift
