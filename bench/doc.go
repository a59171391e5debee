// Package bench holds Drover's benchmarks. Each one measures Drover and its
// baseline (the raw runtime, or the peer an issue names) in the same run and
// prints the ratio; `make bench` runs them all.
package bench
