package store

import (
	"context"
	"os"
	"regexp"
	"testing"
)

// TestSchemaDocQueriesRun runs every ```sql block of docs/schema.md against a
// migrated database holding a row of every kind, so that the documented
// queries stay valid as the schema changes.
func TestSchemaDocQueriesRun(t *testing.T) {
	doc, err := os.ReadFile("../../docs/schema.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```sql\n(.*?)```").FindAllStringSubmatch(string(doc), -1)
	if len(blocks) < 10 {
		t.Fatalf("docs/schema.md has %d sql blocks, want the example queries", len(blocks))
	}
	db, s := migrated(t)
	ctx := context.Background()
	if err := s.Insert(ctx, fullBatch(recent(0)), "docs"); err != nil {
		t.Fatal(err)
	}
	table := regexp.MustCompile(`\bFROM drover\.`)
	answered := 0
	for i, b := range blocks {
		q := table.ReplaceAllString(b[1], "FROM "+db.Name+".")
		rows, err := db.Conn.Query(ctx, q)
		if err != nil {
			t.Errorf("docs/schema.md query %d:\n%s\n%v", i+1, b[1], err)
			continue
		}
		n := 0
		for rows.Next() {
			n++
		}
		if err := rows.Err(); err != nil {
			t.Errorf("docs/schema.md query %d:\n%s\n%v", i+1, b[1], err)
		}
		rows.Close()
		if n > 0 {
			answered++
		}
	}
	// fullBatch has a row for the timeline, samples, drift, jobs, versions,
	// rate, distribution and gauge queries.
	if answered < 8 {
		t.Errorf("only %d of %d documented queries returned rows on a database with data", answered, len(blocks))
	}
}
