// Package optimize is the collector's built-in re-optimizer, the job
// executor "builtin": it loads a model's labelled samples (or an uploaded
// CSV), searches the families and grids of the serving version's manifest
// (or of the family detected from its ONNX graph) with k-fold
// cross-validation (package learn), exports the winner with the serving
// version's signature (package export), judges it against the serving
// version on held-out rows, and, only when it is better by the margin,
// publishes it through the registry and rolls it out as a canary with
// automatic analysis. docs/optimize.md is the operator's reference.
package optimize
