// Command gen writes Drover's Grafana dashboards (JSON) into a folder:
// `go generate ./dashboards` runs it on dashboards/. The dashboards are
// built with the Grafana Foundation SDK on the ClickHouse data source that
// deploy/grafana/provisioning provisions (uid drover-clickhouse, default
// database drover, so the queries name their tables without a database).
package main

//lint:file-ignore SA1019 the v1 dashboard schema (dashboard.DashboardBuilder) is the one Grafana's file provisioning loads without the v2 feature flag; the v2 builder is not adopted yet

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"

	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

func main() {
	out := flag.String("out", ".", "folder to write the dashboards' JSON files into")
	flag.Parse()
	if err := write(*out); err != nil {
		slog.Error("generate dashboards", "err", err)
		os.Exit(1)
	}
}

// write renders every dashboard into dir as <uid>.json.
func write(dir string) error {
	files, err := render()
	if err != nil {
		return err
	}
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for n := range files {
			if !yield(n) {
				return
			}
		}
	}) {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, files[name], 0o644); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	return nil
}

// render builds every dashboard and returns its JSON by file name
// (<uid>.json), indented, with a final newline: the bytes checked in.
func render() (map[string][]byte, error) {
	files := map[string][]byte{}
	for _, b := range all() {
		d, err := b.Build()
		if err != nil {
			return nil, fmt.Errorf("build dashboard: %w", err)
		}
		if d.Uid == nil || *d.Uid == "" {
			return nil, fmt.Errorf("dashboard %q has no uid", str(d.Title))
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetIndent("", "  ")
		if err := enc.Encode(d); err != nil {
			return nil, fmt.Errorf("encode dashboard %s: %w", *d.Uid, err)
		}
		files[*d.Uid+".json"] = buf.Bytes()
	}
	return files, nil
}

// all returns the dashboards, in the order of docs/dashboards.md.
func all() []*dashboard.DashboardBuilder {
	return []*dashboard.DashboardBuilder{fleet(), model(), drift(), jobs()}
}
