-- The model registry's version records (collector/registry, docs/registry.md).
--
-- A new table rather than an ALTER of model_versions (0003): a record changes
-- state (active -> deleted) by inserting the whole row again, and which row
-- wins must not depend on the clocks of the collectors that wrote them, so the
-- ReplacingMergeTree's version column is a row_version counter;
-- model_versions replaces by its `registered` time and an engine's version
-- column cannot be altered. Its single `parent` and `job_id`/`id` columns do
-- not fit the record either (parents is an array for merges). Nothing ever
-- wrote model_versions; it stays until the store's ModelVersionRow goes.
--
-- Lineage, not telemetry: no TTL, no day partitions. Read with FINAL (or
-- argMax by row_version). In cluster mode rows are sharded by model, so all
-- versions of a model live on one shard.
CREATE TABLE IF NOT EXISTS {{table "registry_versions"}} {{on_cluster}}
(
    model        LowCardinality(String) CODEC(ZSTD(1)),
    version      UInt64,
    -- sha256 over the sorted (path, sha256) pairs of every file but drover.yaml
    content_id   String CODEC(ZSTD(1)),
    -- the version's files, drover.yaml (the registry's own) included; the
    -- three arrays are parallel and sorted by path
    file_paths   Array(String) CODEC(ZSTD(1)),
    file_sha256  Array(String) CODEC(ZSTD(1)),
    file_sizes   Array(UInt64) CODEC(ZSTD(1)),
    created      DateTime64(3, 'UTC'),
    author       String CODEC(ZSTD(1)),
    message      String CODEC(ZSTD(3)),
    parents      Array(UInt64),
    -- publish | optimize | merge
    source       LowCardinality(String),
    incident     String CODEC(ZSTD(1)),
    job          String CODEC(ZSTD(1)),
    -- the version's signature as JSON (inputs and outputs), '' if unknown
    signature    String CODEC(ZSTD(3)),
    -- active | deleted
    state        LowCardinality(String),
    updated      DateTime64(3, 'UTC'),
    row_version  UInt64
)
ENGINE = {{engine "ReplacingMergeTree" "row_version"}}
ORDER BY (model, version)
SETTINGS {{dedup}};

{{distributed "registry_versions" "cityHash64(model)"}};
