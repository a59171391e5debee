package store

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"
)

// LocalSuffix is appended, in cluster mode, to the name of every table that
// stores data on a shard; the plain name is then a Distributed table over
// those local tables. In single-server mode the plain name is the table.
const LocalSuffix = "_local"

// Deduplication windows. A retried insert is recognised by its
// insert_deduplication_token among the last dedupWindow blocks of a table
// (and, on replicated tables, blocks younger than dedupWindowSeconds). The
// writer retries a batch after an outage, during which nothing was inserted,
// so a count of blocks is the limit that matters; the replicated age limit
// (3600 s by default on ClickHouse 26) is raised so that an outage longer than
// an hour does not turn the retry into a duplicate.
const (
	dedupWindow        = 10000
	dedupWindowSeconds = 7 * 24 * 3600
)

// MigrateOptions says where and how the schema is created.
type MigrateOptions struct {
	// Database holds every table; default "drover".
	Database string
	// Cluster, when set, creates every object ON CLUSTER Cluster with
	// Replicated engines, data in <table>_local tables and a Distributed
	// <table> over them. Empty means a single server.
	Cluster string
	// TTLDays is how long raw data, events, samples, drift results, jobs and
	// the 1-minute rollups are kept; default 30.
	TTLDays int
	// RollupTTLDays is how long the 1-hour rollups are kept; default 365.
	RollupTTLDays int
	// CreateDatabases are more databases to create when missing: the one
	// the DSN names (Backend.DSNDatabase), which the jobs' DSN uses.
	CreateDatabases []string
}

var (
	identRE   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	clusterRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`)
	fileRE    = regexp.MustCompile(`^([0-9]{4})_([a-z0-9_]+)\.sql$`)
)

func (o MigrateOptions) withDefaults() (MigrateOptions, error) {
	if o.Database == "" {
		o.Database = "drover"
	}
	if o.TTLDays == 0 {
		o.TTLDays = 30
	}
	if o.RollupTTLDays == 0 {
		o.RollupTTLDays = 365
	}
	var errs []error
	if !identRE.MatchString(o.Database) {
		errs = append(errs, fmt.Errorf("database %q: must be letters, digits and _, not starting with a digit", o.Database))
	}
	for _, d := range o.CreateDatabases {
		if !identRE.MatchString(d) {
			errs = append(errs, fmt.Errorf("database %q (of the DSN): must be letters, digits and _, not starting with a digit", d))
		}
	}
	if o.Cluster != "" && !clusterRE.MatchString(o.Cluster) {
		errs = append(errs, fmt.Errorf("cluster %q: must be letters, digits, _, . and -", o.Cluster))
	}
	if o.TTLDays < 0 {
		errs = append(errs, fmt.Errorf("ttl_days %d: must be > 0", o.TTLDays))
	}
	if o.RollupTTLDays < 0 {
		errs = append(errs, fmt.Errorf("rollup_ttl_days %d: must be > 0", o.RollupTTLDays))
	}
	return o, errors.Join(errs...)
}

// Migration is one numbered schema change, rendered for a MigrateOptions.
type Migration struct {
	// Version is the file's number (0001_metrics.sql is 1).
	Version uint32
	// Name is the file name without ".sql", e.g. "0001_metrics".
	Name string
	// Checksum is the hex sha256 of the embedded SQL before rendering, so
	// that options (TTL, cluster) do not change it but any edit of the file
	// does.
	Checksum string
	// Statements are the rendered statements, in order, without the final
	// semicolon.
	Statements []string
}

// RenderMigrations renders the embedded migrations for opts, in version
// order, without touching a server. Cluster DDL is tested this way.
func RenderMigrations(opts MigrateOptions) ([]Migration, error) {
	return renderMigrations(migrationFiles, opts)
}

func renderMigrations(fsys fs.FS, opts MigrateOptions) ([]Migration, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("migration options: %w", err)
	}
	names, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		return nil, fmt.Errorf("list migrations: %w", err)
	}
	sort.Strings(names)
	var out []Migration
	seen := map[uint32]string{}
	for _, name := range names {
		base := path.Base(name)
		m := fileRE.FindStringSubmatch(base)
		if m == nil {
			return nil, fmt.Errorf("migration file %s: name must be NNNN_name.sql (lower case)", base)
		}
		v, _ := strconv.ParseUint(m[1], 10, 32)
		version := uint32(v)
		if version == 0 {
			return nil, fmt.Errorf("migration file %s: versions start at 0001", base)
		}
		if prev, dup := seen[version]; dup {
			return nil, fmt.Errorf("migration files %s and %s have the same version %d", prev, base, version)
		}
		seen[version] = base
		src, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", base, err)
		}
		sum := sha256.Sum256(src)
		stmts, err := renderSQL(base, string(src), opts)
		if err != nil {
			return nil, err
		}
		out = append(out, Migration{
			Version:    version,
			Name:       strings.TrimSuffix(base, ".sql"),
			Checksum:   hex.EncodeToString(sum[:]),
			Statements: stmts,
		})
	}
	return out, nil
}

// renderSQL executes the template in src and splits the result into
// statements. The template functions are:
//
//	{{db}}                     the database name
//	{{cluster}}                true in cluster mode (for {{if cluster}})
//	{{list "a" "b"}}           a list of strings (for {{range}})
//	{{on_cluster}}             "ON CLUSTER '<cluster>'", or nothing
//	{{table "t"}}              db.t (db.t_local in cluster mode); names the
//	                           table that a following {{engine}} creates
//	{{local "t"}}              db.t or db.t_local, for MV sources and targets
//	{{engine "Kind" args...}}  Kind(args), or ReplicatedKind('/clickhouse/
//	                           tables/{shard}/{database}/t_local',
//	                           '{replica}', args) in cluster mode
//	{{distributed "t" "key"}}  in cluster mode a whole statement creating
//	                           db.t as Distributed over db.t_local (sharded
//	                           by key, if any); nothing on a single server
//	{{dedup}}                  the deduplication-window table settings
//	{{ttl_days}}, {{rollup_ttl_days}}
//
// A statement ends with a semicolon at the end of a line; lines starting
// with -- are comments and are dropped.
func renderSQL(name, src string, opts MigrateOptions) ([]string, error) {
	cluster := opts.Cluster != ""
	qualify := func(table string) string {
		if cluster {
			table += LocalSuffix
		}
		return opts.Database + "." + table
	}
	var current string // the table the last {{table}} named
	funcs := template.FuncMap{
		"db":      func() string { return opts.Database },
		"cluster": func() bool { return cluster },
		"list":    func(s ...string) []string { return s },
		"on_cluster": func() string {
			if !cluster {
				return ""
			}
			return "ON CLUSTER '" + opts.Cluster + "'"
		},
		"table": func(t string) (string, error) {
			if !identRE.MatchString(t) {
				return "", fmt.Errorf("table %q: not an identifier", t)
			}
			current = t
			return qualify(t), nil
		},
		"local": func(t string) (string, error) {
			if !identRE.MatchString(t) {
				return "", fmt.Errorf("table %q: not an identifier", t)
			}
			return qualify(t), nil
		},
		"engine": func(kind string, args ...string) (string, error) {
			if current == "" {
				return "", errors.New("{{engine}} before any {{table}}")
			}
			if !cluster {
				return kind + "(" + strings.Join(args, ", ") + ")", nil
			}
			zk := []string{
				"'/clickhouse/tables/{shard}/{database}/" + current + LocalSuffix + "'",
				"'{replica}'",
			}
			return "Replicated" + kind + "(" + strings.Join(append(zk, args...), ", ") + ")", nil
		},
		"distributed": func(t, shardingKey string) (string, error) {
			if !identRE.MatchString(t) {
				return "", fmt.Errorf("table %q: not an identifier", t)
			}
			if !cluster {
				return "", nil
			}
			args := []string{"'" + opts.Cluster + "'", "'" + opts.Database + "'", "'" + t + LocalSuffix + "'"}
			if shardingKey != "" {
				args = append(args, shardingKey)
			}
			return fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s.%s ON CLUSTER '%s' AS %s\nENGINE = Distributed(%s)",
				opts.Database, t, opts.Cluster, qualify(t), strings.Join(args, ", ")), nil
		},
		"dedup": func() string {
			if cluster {
				return fmt.Sprintf("replicated_deduplication_window = %d, replicated_deduplication_window_seconds = %d",
					dedupWindow, dedupWindowSeconds)
			}
			return fmt.Sprintf("non_replicated_deduplication_window = %d", dedupWindow)
		},
		"ttl_days":        func() int { return opts.TTLDays },
		"rollup_ttl_days": func() int { return opts.RollupTTLDays },
	}
	tmpl, err := template.New(name).Funcs(funcs).Option("missingkey=error").Parse(src)
	if err != nil {
		return nil, fmt.Errorf("parse migration %s: %w", name, err)
	}
	var b strings.Builder
	if err := tmpl.Execute(&b, nil); err != nil {
		return nil, fmt.Errorf("render migration %s: %w", name, err)
	}
	return splitStatements(b.String()), nil
}

// splitStatements splits SQL at semicolons that end a line, dropping comment
// lines, blank lines and empty statements.
func splitStatements(sql string) []string {
	var stmts []string
	var cur []string
	flush := func() {
		if s := strings.TrimSpace(strings.Join(cur, "\n")); s != "" {
			stmts = append(stmts, s)
		}
		cur = cur[:0]
	}
	for _, line := range strings.Split(sql, "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "--") {
			continue
		}
		line = strings.TrimRight(line, " \t\r")
		if strings.HasSuffix(line, ";") {
			cur = append(cur, strings.TrimSuffix(line, ";"))
			flush()
			continue
		}
		cur = append(cur, line)
	}
	flush()
	return stmts
}
