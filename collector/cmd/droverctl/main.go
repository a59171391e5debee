// Command droverctl administers a Drover collector cluster through its admin
// API. `droverctl --help` lists the commands.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/drover-ml/drover/collector/adminclient"
	"github.com/drover-ml/drover/shared/buildinfo"
)

const usage = `Usage: droverctl [flags] <command>

Commands:
  status     check that the collector is alive and ready
  version    print the version

Flags:
`

func main() { os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr)) }

func realMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("droverctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("collector", envOr("DROVER_COLLECTOR", "http://localhost:7070"), "collector admin API URL ($DROVER_COLLECTOR)")
	token := fs.String("token", os.Getenv("DROVER_TOKEN"), "admin API token ($DROVER_TOKEN)")
	version := fs.Bool("version", false, "print the version")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			fs.SetOutput(stdout)
			fs.Usage()
			return 0
		}
		return 2
	}
	if *version || fs.Arg(0) == "version" {
		fmt.Fprintln(stdout, buildinfo.String("droverctl"))
		return 0
	}
	c := adminclient.New(*addr, *token)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	switch fs.Arg(0) {
	case "status":
		if err := c.Health(ctx); err != nil {
			fmt.Fprintln(stderr, "droverctl: collector not alive:", err)
			return 1
		}
		if err := c.Ready(ctx); err != nil {
			fmt.Fprintln(stderr, "droverctl: collector alive but not ready:", err)
			return 1
		}
		fmt.Fprintf(stdout, "collector %s: alive and ready\n", *addr)
		return 0
	case "":
		fs.SetOutput(stderr)
		fs.Usage()
		return 2
	default:
		fmt.Fprintf(stderr, "droverctl: unknown command %q\n", fs.Arg(0))
		return 2
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
