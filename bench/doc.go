// Package bench holds Drover's benchmarks. Each one measures Drover and its
// baseline in the same run and prints the ratio; `make bench` runs them:
//
//   - bench/overhead: drover-agent over gRPC, REST binary and REST JSON
//     versus the raw ONNX Runtime in-process, with the transport floor.
//   - bench/swap: hot swaps of 100 versions under constant load (failures,
//     p99 ratio, publish-to-serving latency, RSS).
//   - bench/monitoring: throughput with telemetry off and sampling 0/5/100 %,
//     and the primary p99 with a 100 % shadow.
//   - bench/ingest: drover-collector versus the OTel Collector's
//     clickhouseexporter on the same ClickHouse (CPU per point, rows
//     stored), and an outage drill.
//   - bench/optimize: the built-in optimizer's grid search versus
//     scikit-learn's GridSearchCV (same data, grid and folds; wall time and
//     best CV score) for logistic regression and a random forest.
//
// Package benchmarks (go test -bench) live beside their code, e.g.
// shared/oip, agent/telemetry, collector/store, collector/spool,
// collector/drift and collector/ring.
package bench
