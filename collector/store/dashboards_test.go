package store

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDashboardQueriesRun runs every SQL query of the Grafana dashboards in
// dashboards/ against the schema, with Grafana's macros replaced, so a
// schema change that breaks a dashboard fails here.
func TestDashboardQueriesRun(t *testing.T) {
	files, err := filepath.Glob("../../dashboards/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards: %v", err)
	}
	db, s := migrated(t)
	ctx := context.Background()
	if err := s.Insert(ctx, fullBatch(recent(0)), "dashboards"); err != nil {
		t.Fatal(err)
	}
	macros := strings.NewReplacer(
		"$__timeFilter(time)", "time > now() - INTERVAL 1 DAY",
		"${model:singlequote}", "'iris'",
	)
	dbRef := regexp.MustCompile(`\bdrover\.`)
	n := 0
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var dash struct {
			Panels []struct {
				Title   string
				Targets []struct {
					RawSQL string `json:"rawSql"`
				}
			}
			Templating struct {
				List []struct{ Name, Type, Query string }
			}
		}
		if err := json.Unmarshal(raw, &dash); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		var queries []string
		for _, p := range dash.Panels {
			for _, tg := range p.Targets {
				queries = append(queries, tg.RawSQL)
			}
		}
		for _, v := range dash.Templating.List {
			if v.Type == "query" {
				queries = append(queries, v.Query)
			}
		}
		for _, q := range queries {
			sql := dbRef.ReplaceAllString(macros.Replace(q), db.Name+".")
			if strings.Contains(sql, "$") {
				t.Errorf("%s: unreplaced macro in %s", f, q)
				continue
			}
			rows, err := db.Conn.Query(ctx, sql)
			if err != nil {
				t.Errorf("%s: %v\n%s", filepath.Base(f), err, q)
				continue
			}
			for rows.Next() {
			}
			if err := rows.Err(); err != nil {
				t.Errorf("%s: %v\n%s", filepath.Base(f), err, q)
			}
			rows.Close()
			n++
		}
	}
	if n < 6 {
		t.Fatalf("ran %d dashboard queries, want at least 6", n)
	}
}
