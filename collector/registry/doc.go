// Package registry is the collector's model registry: every file of every
// version stored once by content (sha256) in an object store through
// gocloud.dev/blob (Blobs), and a record per version in ClickHouse
// (registry_versions, migration 0009).
//
// A publish stages files (Registry.Stage: streamed, digest verified as the
// bytes arrive, nothing stored on a mismatch or a cut stream) and then
// commits them (Registry.Commit: the one call that allocates a version
// number, under a per-model lock; the version becomes visible when its
// record is inserted). Registry.Publish does both. Delete marks a record
// deleted (after asking an InUse hook); GC collects the blobs no active
// version uses, by mark and sweep with a grace period.
//
// Routes serves all of it over the admin API (publish as a streamed
// multipart upload, version records, files by digest with ranges, delete,
// merge); RecordOf is a record's JSON for every endpoint that shows one.
//
// docs/registry.md describes the storage layout, the record and how the
// collector is to route commits to a model's ring owner.
package registry
