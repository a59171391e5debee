// Package demo is `make run`'s demonstration of Drover's closed loop: the
// data set it ships (data/breast_cancer.csv, CC BY 4.0, see
// data/LICENSE.md), the initial model trained on it (a logistic regression
// exported as skl2onnx exports scikit-learn's Pipeline(StandardScaler,
// LogisticRegression): Scaler, LinearClassifier, ZipMap, int64 labels), the
// drift it injects (a covariate shift and a concept change), the workload
// that sends the rows through the agents' Open Inference Protocol API and
// posts their labels, and the watcher that prints each stage of the loop
// (drift detected, job, search, version, canary, promotion, every agent
// serving) from the collector's admin API.
//
// cmd/drover-demo is the program deploy/local/run.sh runs; the loop's
// end-to-end test (collector/server's TestLoopEndToEnd) uses the same
// pieces with faster settings.
package demo
