// Package store owns the collector's ClickHouse: where it runs (Open: the
// embedded engine or a server), the schema (Migrate: numbered, embedded
// migrations/NNNN_name.sql files, rendered for one server or for a cluster),
// and the typed writer (Store.Insert: a Batch of rows for every table,
// columnar, deduplicated by a token so that a retried batch is stored once).
//
// docs/schema.md describes every table, its keys and TTL, the rollups and
// how to query them, and the cluster mode.
package store
