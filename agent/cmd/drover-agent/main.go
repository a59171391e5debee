// Command drover-agent serves the models of one host's model store over the
// Open Inference Protocol. `drover-agent --help` lists the flags.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/drover-ml/drover/agent/runtime"
	"github.com/drover-ml/drover/shared/buildinfo"
)

func main() { os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr)) }

func realMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("drover-agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	modelDir := fs.String("model-dir", "", "model store root: <root>/<model>/<version>/model.onnx (required)")
	_ = fs.String("config", "", "YAML config file (version policies, sampling, limits)")
	_ = fs.String("http-addr", ":8080", "Open Inference Protocol REST listen address")
	_ = fs.String("grpc-addr", ":8081", "Open Inference Protocol gRPC listen address")
	_ = fs.String("data-dir", "var/agent", "agent state directory (pins)")
	version := fs.Bool("version", false, "print the version")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: drover-agent --model-dir DIR [flags]\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *version {
		fmt.Fprintln(stdout, buildinfo.String("drover-agent"))
		return 0
	}
	if *modelDir == "" {
		fmt.Fprintln(stderr, "drover-agent: --model-dir is required")
		fs.Usage()
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	if err := runtime.Init(""); err != nil {
		log.Error("load ONNX Runtime", "err", err)
		return 1
	}
	log.Info("ONNX Runtime loaded", "version", runtime.Version())
	log.Error("model serving is not part of this build yet")
	return 1
}
