-- The collector's own records: the model versions it has seen (lineage), the
-- results of drift checks, and re-optimization jobs.

-- model_versions is lineage, not telemetry: no TTL, no day partitions. A row
-- is replaced by a later insert for the same (model, version).
CREATE TABLE IF NOT EXISTS {{table "model_versions"}} {{on_cluster}}
(
    id         String CODEC(ZSTD(1)),
    model      LowCardinality(String) CODEC(ZSTD(1)),
    version    UInt64,
    author     String CODEC(ZSTD(1)),
    created    DateTime64(3, 'UTC'),
    message    String CODEC(ZSTD(3)),
    parent     UInt64,
    job_id     String CODEC(ZSTD(1)),
    manifest   String CODEC(ZSTD(3)),
    registered DateTime64(3, 'UTC')
)
ENGINE = {{engine "ReplacingMergeTree" "registered"}}
ORDER BY (model, version)
SETTINGS {{dedup}};

{{distributed "model_versions" "cityHash64(model, version)"}};

CREATE TABLE IF NOT EXISTS {{table "drift_results"}} {{on_cluster}}
(
    time          DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    model         LowCardinality(String) CODEC(ZSTD(1)),
    model_version LowCardinality(String) CODEC(ZSTD(1)),
    feature       LowCardinality(String) CODEC(ZSTD(1)),
    test          LowCardinality(String) CODEC(ZSTD(1)),
    value         Float64 CODEC(Gorilla, ZSTD(1)),
    threshold     Float64 CODEC(ZSTD(1)),
    drifted       UInt8,
    window_start  DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    window_end    DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    reference     String CODEC(ZSTD(1)),
    node          LowCardinality(String) CODEC(ZSTD(1))
)
ENGINE = {{engine "MergeTree"}}
PARTITION BY toDate(time)
ORDER BY (model, model_version, feature, test, time)
TTL toDateTime(time) + INTERVAL {{ttl_days}} DAY
SETTINGS ttl_only_drop_parts = 1, {{dedup}};

{{distributed "drift_results" "cityHash64(model, model_version)"}};

-- jobs: every state change inserts the whole row again with a higher
-- row_version; read with FINAL (or argMax by row_version). All rows of a job
-- share its created day, so they always share a partition and collapse.
CREATE TABLE IF NOT EXISTS {{table "jobs"}} {{on_cluster}}
(
    id             String CODEC(ZSTD(1)),
    model          LowCardinality(String) CODEC(ZSTD(1)),
    model_version  LowCardinality(String) CODEC(ZSTD(1)),
    incident_start DateTime64(3, 'UTC'),
    state          LowCardinality(String) CODEC(ZSTD(1)),
    attempt        UInt32,
    lease_owner    LowCardinality(String) CODEC(ZSTD(1)),
    lease_until    Nullable(DateTime64(3, 'UTC')),
    created        DateTime64(3, 'UTC'),
    updated        DateTime64(3, 'UTC'),
    started        Nullable(DateTime64(3, 'UTC')),
    finished       Nullable(DateTime64(3, 'UTC')),
    exit_code      Int32,
    result_version UInt64,
    error          String CODEC(ZSTD(3)),
    spec           String CODEC(ZSTD(3)),
    row_version    UInt64
)
ENGINE = {{engine "ReplacingMergeTree" "row_version"}}
PARTITION BY toDate(created)
ORDER BY id
TTL toDateTime(created) + INTERVAL {{ttl_days}} DAY
SETTINGS ttl_only_drop_parts = 1, {{dedup}};

{{distributed "jobs" "cityHash64(id)"}};
