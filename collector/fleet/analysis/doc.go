// Package analysis decides automatic canaries (docs/fleet.md, "Automatic
// canary analysis"): it compares a model's canary version with its serving
// version on the live metrics both have sent since the canary started, and
// answers Promote, Abort (naming the metric that regressed and by how
// much) or Wait (naming what is still missing).
//
// Three layers, each usable alone:
//   - Decide is a pure function from what was observed (Observed) and the
//     canary's Params to a Verdict;
//   - Analyzer reads Observed from ClickHouse (the metric tables and
//     rollups of collector/store) and calls Decide;
//   - Runner checks every automatic canary that a Fleet lists every
//     Interval and hands each Promote or Abort back to the Fleet.
//
// The fleet package (collector/fleet) implements Fleet and runs one Runner
// on each collector; it lists only the models whose ring owner it is.
package analysis
