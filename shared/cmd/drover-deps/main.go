// Command drover-deps fetches the native libraries Drover runs on (ONNX
// Runtime and the embedded ClickHouse engine) into the cache, verifying them
// against pinned checksums. `make deps` runs it; a second run downloads nothing.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/drover-ml/drover/shared/deps"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "drover-deps:", err)
		os.Exit(1)
	}
}

func run() error {
	fs := flag.NewFlagSet("drover-deps", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: drover-deps [flags]

Fetches what is missing or corrupt into the cache (%s, else
$XDG_CACHE_HOME/drover, else ~/.cache/drover):
  onnxruntime  libonnxruntime.so from the npm package onnxruntime-node
               (skipped when %s is set)
  chdb         libchdb.so from the npm package @chdb/lib-linux-x64-gnu
               (skipped when %s or %s is set,
               or when a clickhouse binary is on PATH)

Flags:
`, deps.EnvCache, deps.EnvONNXRuntimeLib, deps.EnvCHDBLib, deps.EnvClickHouseDSN)
		fs.PrintDefaults()
	}
	only := fs.String("only", "", "fetch only this artifact: onnxruntime or chdb")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if err == flag.ErrHelp {
			return nil
		}
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	cache, err := deps.CacheDir()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return fmt.Errorf("create cache %s: %w", cache, err)
	}

	type item struct {
		name string
		get  func() (deps.Artifact, error)
		skip string
	}
	items := []item{
		{"onnxruntime", deps.ONNXRuntime, skipReasonORT()},
		{"chdb", deps.CHDB, skipReasonCHDB()},
	}
	for _, it := range items {
		if *only != "" && *only != it.name {
			continue
		}
		if it.skip != "" {
			fmt.Printf("%s: skipped (%s)\n", it.name, it.skip)
			continue
		}
		a, err := it.get()
		if err != nil {
			return err
		}
		res, err := deps.Ensure(ctx, a, cache, os.Stdout)
		if err != nil {
			return err
		}
		if res.Fetched {
			fmt.Printf("%s: fetched %s (%s) -> %s\n", it.name, a.Spec(), res.Reason, res.Path)
		} else {
			fmt.Printf("%s: %s is cached and verified: %s\n", it.name, a.Spec(), res.Path)
		}
	}
	return nil
}

func skipReasonORT() string {
	if p := os.Getenv(deps.EnvONNXRuntimeLib); p != "" {
		return deps.EnvONNXRuntimeLib + "=" + p
	}
	return ""
}

func skipReasonCHDB() string {
	switch {
	case os.Getenv(deps.EnvCHDBLib) != "":
		return deps.EnvCHDBLib + "=" + os.Getenv(deps.EnvCHDBLib)
	case os.Getenv(deps.EnvClickHouseDSN) != "":
		return deps.EnvClickHouseDSN + " is set"
	case deps.ClickHouseBinary() != "":
		return "clickhouse binary at " + deps.ClickHouseBinary()
	}
	return ""
}
