-- Rendered by TestRenderClusterGolden with MigrateOptions{Cluster: "drover_cluster"}.
-- Regenerate: go test ./collector/store -run TestRenderClusterGolden -update

-- bootstrap

CREATE DATABASE IF NOT EXISTS drover ON CLUSTER 'drover_cluster';

CREATE TABLE IF NOT EXISTS drover.schema_migrations ON CLUSTER 'drover_cluster'
(
    version    UInt32,
    name       String,
    checksum   String,
    applied_at DateTime64(3, 'UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/all/{database}/schema_migrations', '{shard}-{replica}', applied_at)
ORDER BY version;

-- 0001_metrics

CREATE TABLE IF NOT EXISTS drover.metrics_gauge_local ON CLUSTER 'drover_cluster'
(
    time                DateTime64(9, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    start_time          DateTime64(9, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    service             LowCardinality(String) CODEC(ZSTD(1)),
    host                LowCardinality(String) CODEC(ZSTD(1)),
    agent_id            LowCardinality(String) CODEC(ZSTD(1)),
    model               LowCardinality(String) CODEC(ZSTD(1)),
    model_version       LowCardinality(String) CODEC(ZSTD(1)),
    metric              LowCardinality(String) CODEC(ZSTD(1)),
    unit                LowCardinality(String) CODEC(ZSTD(1)),
    attributes          Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    resource_attributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    scope_name          LowCardinality(String) CODEC(ZSTD(1)),
    scope_version       LowCardinality(String) CODEC(ZSTD(1)),
    value               Float64 CODEC(Gorilla, ZSTD(1))
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/metrics_gauge_local', '{replica}')
PARTITION BY toDate(time)
ORDER BY (model, model_version, metric, host, time)
TTL toDateTime(time) + INTERVAL 30 DAY
SETTINGS ttl_only_drop_parts = 1, replicated_deduplication_window = 10000, replicated_deduplication_window_seconds = 604800;

CREATE TABLE IF NOT EXISTS drover.metrics_gauge ON CLUSTER 'drover_cluster' AS drover.metrics_gauge_local
ENGINE = Distributed('drover_cluster', 'drover', 'metrics_gauge_local', cityHash64(model, model_version, metric, host));

CREATE TABLE IF NOT EXISTS drover.metrics_sum_local ON CLUSTER 'drover_cluster'
(
    time                DateTime64(9, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    start_time          DateTime64(9, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    service             LowCardinality(String) CODEC(ZSTD(1)),
    host                LowCardinality(String) CODEC(ZSTD(1)),
    agent_id            LowCardinality(String) CODEC(ZSTD(1)),
    model               LowCardinality(String) CODEC(ZSTD(1)),
    model_version       LowCardinality(String) CODEC(ZSTD(1)),
    metric              LowCardinality(String) CODEC(ZSTD(1)),
    unit                LowCardinality(String) CODEC(ZSTD(1)),
    attributes          Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    resource_attributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    scope_name          LowCardinality(String) CODEC(ZSTD(1)),
    scope_version       LowCardinality(String) CODEC(ZSTD(1)),
    temporality         Enum8('unspecified' = 0, 'delta' = 1, 'cumulative' = 2),
    is_monotonic        Bool,
    value               Float64 CODEC(Gorilla, ZSTD(1))
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/metrics_sum_local', '{replica}')
PARTITION BY toDate(time)
ORDER BY (model, model_version, metric, host, time)
TTL toDateTime(time) + INTERVAL 30 DAY
SETTINGS ttl_only_drop_parts = 1, replicated_deduplication_window = 10000, replicated_deduplication_window_seconds = 604800;

CREATE TABLE IF NOT EXISTS drover.metrics_sum ON CLUSTER 'drover_cluster' AS drover.metrics_sum_local
ENGINE = Distributed('drover_cluster', 'drover', 'metrics_sum_local', cityHash64(model, model_version, metric, host));

CREATE TABLE IF NOT EXISTS drover.metrics_histogram_local ON CLUSTER 'drover_cluster'
(
    time                DateTime64(9, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    start_time          DateTime64(9, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    service             LowCardinality(String) CODEC(ZSTD(1)),
    host                LowCardinality(String) CODEC(ZSTD(1)),
    agent_id            LowCardinality(String) CODEC(ZSTD(1)),
    model               LowCardinality(String) CODEC(ZSTD(1)),
    model_version       LowCardinality(String) CODEC(ZSTD(1)),
    metric              LowCardinality(String) CODEC(ZSTD(1)),
    unit                LowCardinality(String) CODEC(ZSTD(1)),
    attributes          Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    resource_attributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    scope_name          LowCardinality(String) CODEC(ZSTD(1)),
    scope_version       LowCardinality(String) CODEC(ZSTD(1)),
    feature             LowCardinality(String) CODEC(ZSTD(1)),
    temporality         Enum8('unspecified' = 0, 'delta' = 1, 'cumulative' = 2),
    count               UInt64 CODEC(T64, ZSTD(1)),
    sum                 Float64 CODEC(Gorilla, ZSTD(1)),
    min                 Nullable(Float64) CODEC(Gorilla, ZSTD(1)),
    max                 Nullable(Float64) CODEC(Gorilla, ZSTD(1)),
    bounds              Array(Float64) CODEC(ZSTD(1)),
    counts              Array(UInt64) CODEC(T64, ZSTD(1))
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/metrics_histogram_local', '{replica}')
PARTITION BY toDate(time)
ORDER BY (model, model_version, metric, feature, host, time)
TTL toDateTime(time) + INTERVAL 30 DAY
SETTINGS ttl_only_drop_parts = 1, replicated_deduplication_window = 10000, replicated_deduplication_window_seconds = 604800;

CREATE TABLE IF NOT EXISTS drover.metrics_histogram ON CLUSTER 'drover_cluster' AS drover.metrics_histogram_local
ENGINE = Distributed('drover_cluster', 'drover', 'metrics_histogram_local', cityHash64(model, model_version, metric, host));

CREATE TABLE IF NOT EXISTS drover.metrics_exp_histogram_local ON CLUSTER 'drover_cluster'
(
    time                   DateTime64(9, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    start_time             DateTime64(9, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    service                LowCardinality(String) CODEC(ZSTD(1)),
    host                   LowCardinality(String) CODEC(ZSTD(1)),
    agent_id               LowCardinality(String) CODEC(ZSTD(1)),
    model                  LowCardinality(String) CODEC(ZSTD(1)),
    model_version          LowCardinality(String) CODEC(ZSTD(1)),
    metric                 LowCardinality(String) CODEC(ZSTD(1)),
    unit                   LowCardinality(String) CODEC(ZSTD(1)),
    attributes             Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    resource_attributes    Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    scope_name             LowCardinality(String) CODEC(ZSTD(1)),
    scope_version          LowCardinality(String) CODEC(ZSTD(1)),
    feature                LowCardinality(String) CODEC(ZSTD(1)),
    temporality            Enum8('unspecified' = 0, 'delta' = 1, 'cumulative' = 2),
    count                  UInt64 CODEC(T64, ZSTD(1)),
    sum                    Float64 CODEC(Gorilla, ZSTD(1)),
    min                    Nullable(Float64) CODEC(Gorilla, ZSTD(1)),
    max                    Nullable(Float64) CODEC(Gorilla, ZSTD(1)),
    scale                  Int32 CODEC(ZSTD(1)),
    zero_count             UInt64 CODEC(T64, ZSTD(1)),
    zero_threshold         Float64 CODEC(ZSTD(1)),
    positive_offset        Int32 CODEC(ZSTD(1)),
    positive_bucket_counts Array(UInt64) CODEC(T64, ZSTD(1)),
    negative_offset        Int32 CODEC(ZSTD(1)),
    negative_bucket_counts Array(UInt64) CODEC(T64, ZSTD(1))
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/metrics_exp_histogram_local', '{replica}')
PARTITION BY toDate(time)
ORDER BY (model, model_version, metric, feature, host, time)
TTL toDateTime(time) + INTERVAL 30 DAY
SETTINGS ttl_only_drop_parts = 1, replicated_deduplication_window = 10000, replicated_deduplication_window_seconds = 604800;

CREATE TABLE IF NOT EXISTS drover.metrics_exp_histogram ON CLUSTER 'drover_cluster' AS drover.metrics_exp_histogram_local
ENGINE = Distributed('drover_cluster', 'drover', 'metrics_exp_histogram_local', cityHash64(model, model_version, metric, host));

CREATE TABLE IF NOT EXISTS drover.metrics_summary_local ON CLUSTER 'drover_cluster'
(
    time                DateTime64(9, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    start_time          DateTime64(9, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    service             LowCardinality(String) CODEC(ZSTD(1)),
    host                LowCardinality(String) CODEC(ZSTD(1)),
    agent_id            LowCardinality(String) CODEC(ZSTD(1)),
    model               LowCardinality(String) CODEC(ZSTD(1)),
    model_version       LowCardinality(String) CODEC(ZSTD(1)),
    metric              LowCardinality(String) CODEC(ZSTD(1)),
    unit                LowCardinality(String) CODEC(ZSTD(1)),
    attributes          Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    resource_attributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    scope_name          LowCardinality(String) CODEC(ZSTD(1)),
    scope_version       LowCardinality(String) CODEC(ZSTD(1)),
    count               UInt64 CODEC(T64, ZSTD(1)),
    sum                 Float64 CODEC(Gorilla, ZSTD(1)),
    quantiles           Array(Float64) CODEC(ZSTD(1)),
    quantile_values     Array(Float64) CODEC(ZSTD(1))
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/metrics_summary_local', '{replica}')
PARTITION BY toDate(time)
ORDER BY (model, model_version, metric, host, time)
TTL toDateTime(time) + INTERVAL 30 DAY
SETTINGS ttl_only_drop_parts = 1, replicated_deduplication_window = 10000, replicated_deduplication_window_seconds = 604800;

CREATE TABLE IF NOT EXISTS drover.metrics_summary ON CLUSTER 'drover_cluster' AS drover.metrics_summary_local
ENGINE = Distributed('drover_cluster', 'drover', 'metrics_summary_local', cityHash64(model, model_version, metric, host));

-- 0002_events_samples

CREATE TABLE IF NOT EXISTS drover.events_local ON CLUSTER 'drover_cluster'
(
    time                DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    observed_time       DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    service             LowCardinality(String) CODEC(ZSTD(1)),
    host                LowCardinality(String) CODEC(ZSTD(1)),
    agent_id            LowCardinality(String) CODEC(ZSTD(1)),
    model               LowCardinality(String) CODEC(ZSTD(1)),
    model_version       LowCardinality(String) CODEC(ZSTD(1)),
    event               LowCardinality(String) CODEC(ZSTD(1)),
    severity_number     UInt8,
    severity_text       LowCardinality(String) CODEC(ZSTD(1)),
    body                String CODEC(ZSTD(3)),
    attributes          Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    resource_attributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    trace_id            String CODEC(ZSTD(1)),
    span_id             String CODEC(ZSTD(1))
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/events_local', '{replica}')
PARTITION BY toDate(time)
ORDER BY (model, model_version, event, host, time)
TTL toDateTime(time) + INTERVAL 30 DAY
SETTINGS ttl_only_drop_parts = 1, replicated_deduplication_window = 10000, replicated_deduplication_window_seconds = 604800;

CREATE TABLE IF NOT EXISTS drover.events ON CLUSTER 'drover_cluster' AS drover.events_local
ENGINE = Distributed('drover_cluster', 'drover', 'events_local', cityHash64(model, model_version, host));

CREATE TABLE IF NOT EXISTS drover.samples_local ON CLUSTER 'drover_cluster'
(
    time          DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    model         LowCardinality(String) CODEC(ZSTD(1)),
    model_version LowCardinality(String) CODEC(ZSTD(1)),
    host          LowCardinality(String) CODEC(ZSTD(1)),
    request_id    String CODEC(ZSTD(1)),
    inputs        String CODEC(ZSTD(3)),
    outputs       String CODEC(ZSTD(3)),
    label         String CODEC(ZSTD(3)),
    attributes    Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    INDEX request_id_bf request_id TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/samples_local', '{replica}')
PARTITION BY toDate(time)
ORDER BY (model, model_version, time)
TTL toDateTime(time) + INTERVAL 30 DAY
SETTINGS ttl_only_drop_parts = 1, replicated_deduplication_window = 10000, replicated_deduplication_window_seconds = 604800;

CREATE TABLE IF NOT EXISTS drover.samples ON CLUSTER 'drover_cluster' AS drover.samples_local
ENGINE = Distributed('drover_cluster', 'drover', 'samples_local', cityHash64(model, model_version, request_id));

-- 0003_versions_drift_jobs

CREATE TABLE IF NOT EXISTS drover.model_versions_local ON CLUSTER 'drover_cluster'
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/model_versions_local', '{replica}', registered)
ORDER BY (model, version)
SETTINGS replicated_deduplication_window = 10000, replicated_deduplication_window_seconds = 604800;

CREATE TABLE IF NOT EXISTS drover.model_versions ON CLUSTER 'drover_cluster' AS drover.model_versions_local
ENGINE = Distributed('drover_cluster', 'drover', 'model_versions_local', cityHash64(model, version));

CREATE TABLE IF NOT EXISTS drover.drift_results_local ON CLUSTER 'drover_cluster'
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
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/drift_results_local', '{replica}')
PARTITION BY toDate(time)
ORDER BY (model, model_version, feature, test, time)
TTL toDateTime(time) + INTERVAL 30 DAY
SETTINGS ttl_only_drop_parts = 1, replicated_deduplication_window = 10000, replicated_deduplication_window_seconds = 604800;

CREATE TABLE IF NOT EXISTS drover.drift_results ON CLUSTER 'drover_cluster' AS drover.drift_results_local
ENGINE = Distributed('drover_cluster', 'drover', 'drift_results_local', cityHash64(model, model_version));

CREATE TABLE IF NOT EXISTS drover.jobs_local ON CLUSTER 'drover_cluster'
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/jobs_local', '{replica}', row_version)
PARTITION BY toDate(created)
ORDER BY id
TTL toDateTime(created) + INTERVAL 30 DAY
SETTINGS ttl_only_drop_parts = 1, replicated_deduplication_window = 10000, replicated_deduplication_window_seconds = 604800;

CREATE TABLE IF NOT EXISTS drover.jobs ON CLUSTER 'drover_cluster' AS drover.jobs_local
ENGINE = Distributed('drover_cluster', 'drover', 'jobs_local', cityHash64(id));

-- 0004_rollups

CREATE TABLE IF NOT EXISTS drover.metrics_gauge_1m_local ON CLUSTER 'drover_cluster'
(
    time            DateTime('UTC') CODEC(DoubleDelta, ZSTD(1)),
    model           LowCardinality(String) CODEC(ZSTD(1)),
    model_version   LowCardinality(String) CODEC(ZSTD(1)),
    metric          LowCardinality(String) CODEC(ZSTD(1)),
    host            LowCardinality(String) CODEC(ZSTD(1)),
    attributes_hash UInt64,
    attributes      SimpleAggregateFunction(any, Map(String, String)) CODEC(ZSTD(1)),
    value_avg       AggregateFunction(avg, Float64),
    value_min       AggregateFunction(min, Float64),
    value_max       AggregateFunction(max, Float64),
    value_last      AggregateFunction(argMax, Float64, DateTime64(9, 'UTC')),
    points          SimpleAggregateFunction(sum, UInt64)
)
ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/{database}/metrics_gauge_1m_local', '{replica}')
PARTITION BY toDate(time)
ORDER BY (model, model_version, metric, host, attributes_hash, time)
TTL time + INTERVAL 30 DAY
SETTINGS ttl_only_drop_parts = 1, replicated_deduplication_window = 10000, replicated_deduplication_window_seconds = 604800;

CREATE MATERIALIZED VIEW IF NOT EXISTS drover.metrics_gauge_1m_mv ON CLUSTER 'drover_cluster'
TO drover.metrics_gauge_1m_local AS
SELECT
    toStartOfMinute(src.time)           AS time,
    src.model                           AS model,
    src.model_version                   AS model_version,
    src.metric                          AS metric,
    src.host                            AS host,
    cityHash64(mapSort(src.attributes)) AS attributes_hash,
    any(src.attributes)                 AS attributes,
    avgState(src.value)                 AS value_avg,
    minState(src.value)                 AS value_min,
    maxState(src.value)                 AS value_max,
    argMaxState(src.value, src.time)    AS value_last,
    count()                             AS points
FROM drover.metrics_gauge_local AS src
GROUP BY time, model, model_version, metric, host, attributes_hash;

CREATE TABLE IF NOT EXISTS drover.metrics_gauge_1m ON CLUSTER 'drover_cluster' AS drover.metrics_gauge_1m_local
ENGINE = Distributed('drover_cluster', 'drover', 'metrics_gauge_1m_local');

CREATE TABLE IF NOT EXISTS drover.metrics_gauge_1h_local ON CLUSTER 'drover_cluster'
(
    time            DateTime('UTC') CODEC(DoubleDelta, ZSTD(1)),
    model           LowCardinality(String) CODEC(ZSTD(1)),
    model_version   LowCardinality(String) CODEC(ZSTD(1)),
    metric          LowCardinality(String) CODEC(ZSTD(1)),
    host            LowCardinality(String) CODEC(ZSTD(1)),
    attributes_hash UInt64,
    attributes      SimpleAggregateFunction(any, Map(String, String)) CODEC(ZSTD(1)),
    value_avg       AggregateFunction(avg, Float64),
    value_min       AggregateFunction(min, Float64),
    value_max       AggregateFunction(max, Float64),
    value_last      AggregateFunction(argMax, Float64, DateTime64(9, 'UTC')),
    points          SimpleAggregateFunction(sum, UInt64)
)
ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/{database}/metrics_gauge_1h_local', '{replica}')
PARTITION BY toDate(time)
ORDER BY (model, model_version, metric, host, attributes_hash, time)
TTL time + INTERVAL 365 DAY
SETTINGS ttl_only_drop_parts = 1, replicated_deduplication_window = 10000, replicated_deduplication_window_seconds = 604800;

CREATE MATERIALIZED VIEW IF NOT EXISTS drover.metrics_gauge_1h_mv ON CLUSTER 'drover_cluster'
TO drover.metrics_gauge_1h_local AS
SELECT
    toStartOfHour(src.time)             AS time,
    src.model                           AS model,
    src.model_version                   AS model_version,
    src.metric                          AS metric,
    src.host                            AS host,
    cityHash64(mapSort(src.attributes)) AS attributes_hash,
    any(src.attributes)                 AS attributes,
    avgState(src.value)                 AS value_avg,
    minState(src.value)                 AS value_min,
    maxState(src.value)                 AS value_max,
    argMaxState(src.value, src.time)    AS value_last,
    count()                             AS points
FROM drover.metrics_gauge_local AS src
GROUP BY time, model, model_version, metric, host, attributes_hash;

CREATE TABLE IF NOT EXISTS drover.metrics_gauge_1h ON CLUSTER 'drover_cluster' AS drover.metrics_gauge_1h_local
ENGINE = Distributed('drover_cluster', 'drover', 'metrics_gauge_1h_local');

CREATE TABLE IF NOT EXISTS drover.metrics_histogram_1m_local ON CLUSTER 'drover_cluster'
(
    time          DateTime('UTC') CODEC(DoubleDelta, ZSTD(1)),
    model         LowCardinality(String) CODEC(ZSTD(1)),
    model_version LowCardinality(String) CODEC(ZSTD(1)),
    metric        LowCardinality(String) CODEC(ZSTD(1)),
    feature       LowCardinality(String) CODEC(ZSTD(1)),
    bounds        Array(Float64) CODEC(ZSTD(1)),
    counts        AggregateFunction(sumForEach, Array(UInt64)),
    count         AggregateFunction(sum, UInt64),
    sum           AggregateFunction(sum, Float64)
)
ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/{database}/metrics_histogram_1m_local', '{replica}')
PARTITION BY toDate(time)
ORDER BY (model, model_version, metric, feature, bounds, time)
TTL time + INTERVAL 30 DAY
SETTINGS ttl_only_drop_parts = 1, replicated_deduplication_window = 10000, replicated_deduplication_window_seconds = 604800;

CREATE MATERIALIZED VIEW IF NOT EXISTS drover.metrics_histogram_1m_mv ON CLUSTER 'drover_cluster'
TO drover.metrics_histogram_1m_local AS
SELECT
    toStartOfMinute(src.time)    AS time,
    src.model                    AS model,
    src.model_version            AS model_version,
    src.metric                   AS metric,
    src.feature                  AS feature,
    src.bounds                   AS bounds,
    sumForEachState(src.counts)  AS counts,
    sumState(src.count)          AS count,
    sumState(src.sum)            AS sum
FROM drover.metrics_histogram_local AS src
WHERE src.temporality = 'delta'
GROUP BY time, model, model_version, metric, feature, bounds;

CREATE TABLE IF NOT EXISTS drover.metrics_histogram_1m ON CLUSTER 'drover_cluster' AS drover.metrics_histogram_1m_local
ENGINE = Distributed('drover_cluster', 'drover', 'metrics_histogram_1m_local');

CREATE TABLE IF NOT EXISTS drover.metrics_histogram_1h_local ON CLUSTER 'drover_cluster'
(
    time          DateTime('UTC') CODEC(DoubleDelta, ZSTD(1)),
    model         LowCardinality(String) CODEC(ZSTD(1)),
    model_version LowCardinality(String) CODEC(ZSTD(1)),
    metric        LowCardinality(String) CODEC(ZSTD(1)),
    feature       LowCardinality(String) CODEC(ZSTD(1)),
    bounds        Array(Float64) CODEC(ZSTD(1)),
    counts        AggregateFunction(sumForEach, Array(UInt64)),
    count         AggregateFunction(sum, UInt64),
    sum           AggregateFunction(sum, Float64)
)
ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/{database}/metrics_histogram_1h_local', '{replica}')
PARTITION BY toDate(time)
ORDER BY (model, model_version, metric, feature, bounds, time)
TTL time + INTERVAL 365 DAY
SETTINGS ttl_only_drop_parts = 1, replicated_deduplication_window = 10000, replicated_deduplication_window_seconds = 604800;

CREATE MATERIALIZED VIEW IF NOT EXISTS drover.metrics_histogram_1h_mv ON CLUSTER 'drover_cluster'
TO drover.metrics_histogram_1h_local AS
SELECT
    toStartOfHour(src.time)      AS time,
    src.model                    AS model,
    src.model_version            AS model_version,
    src.metric                   AS metric,
    src.feature                  AS feature,
    src.bounds                   AS bounds,
    sumForEachState(src.counts)  AS counts,
    sumState(src.count)          AS count,
    sumState(src.sum)            AS sum
FROM drover.metrics_histogram_local AS src
WHERE src.temporality = 'delta'
GROUP BY time, model, model_version, metric, feature, bounds;

CREATE TABLE IF NOT EXISTS drover.metrics_histogram_1h ON CLUSTER 'drover_cluster' AS drover.metrics_histogram_1h_local
ENGINE = Distributed('drover_cluster', 'drover', 'metrics_histogram_1h_local');

-- 0005_delta_rollups

CREATE TABLE IF NOT EXISTS drover.metrics_sum_1m_local ON CLUSTER 'drover_cluster'
(
    time            DateTime('UTC') CODEC(DoubleDelta, ZSTD(1)),
    model           LowCardinality(String) CODEC(ZSTD(1)),
    model_version   LowCardinality(String) CODEC(ZSTD(1)),
    metric          LowCardinality(String) CODEC(ZSTD(1)),
    attributes_hash UInt64,
    attributes      SimpleAggregateFunction(any, Map(String, String)) CODEC(ZSTD(1)),
    value           SimpleAggregateFunction(sum, Float64),
    points          SimpleAggregateFunction(sum, UInt64)
)
ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/{database}/metrics_sum_1m_local', '{replica}')
PARTITION BY toDate(time)
ORDER BY (model, model_version, metric, attributes_hash, time)
TTL time + INTERVAL 30 DAY
SETTINGS ttl_only_drop_parts = 1, replicated_deduplication_window = 10000, replicated_deduplication_window_seconds = 604800;

CREATE MATERIALIZED VIEW IF NOT EXISTS drover.metrics_sum_1m_mv ON CLUSTER 'drover_cluster'
TO drover.metrics_sum_1m_local AS
SELECT
    toStartOfMinute(src.time)           AS time,
    src.model                           AS model,
    src.model_version                   AS model_version,
    src.metric                          AS metric,
    cityHash64(mapSort(src.attributes)) AS attributes_hash,
    any(src.attributes)                 AS attributes,
    sum(src.value)                      AS value,
    count()                             AS points
FROM drover.metrics_sum_local AS src
WHERE src.temporality = 'delta' AND src.is_monotonic
GROUP BY time, model, model_version, metric, attributes_hash;

CREATE TABLE IF NOT EXISTS drover.metrics_sum_1m ON CLUSTER 'drover_cluster' AS drover.metrics_sum_1m_local
ENGINE = Distributed('drover_cluster', 'drover', 'metrics_sum_1m_local');

CREATE TABLE IF NOT EXISTS drover.metrics_sum_1h_local ON CLUSTER 'drover_cluster'
(
    time            DateTime('UTC') CODEC(DoubleDelta, ZSTD(1)),
    model           LowCardinality(String) CODEC(ZSTD(1)),
    model_version   LowCardinality(String) CODEC(ZSTD(1)),
    metric          LowCardinality(String) CODEC(ZSTD(1)),
    attributes_hash UInt64,
    attributes      SimpleAggregateFunction(any, Map(String, String)) CODEC(ZSTD(1)),
    value           SimpleAggregateFunction(sum, Float64),
    points          SimpleAggregateFunction(sum, UInt64)
)
ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/{database}/metrics_sum_1h_local', '{replica}')
PARTITION BY toDate(time)
ORDER BY (model, model_version, metric, attributes_hash, time)
TTL time + INTERVAL 365 DAY
SETTINGS ttl_only_drop_parts = 1, replicated_deduplication_window = 10000, replicated_deduplication_window_seconds = 604800;

CREATE MATERIALIZED VIEW IF NOT EXISTS drover.metrics_sum_1h_mv ON CLUSTER 'drover_cluster'
TO drover.metrics_sum_1h_local AS
SELECT
    toStartOfHour(src.time)             AS time,
    src.model                           AS model,
    src.model_version                   AS model_version,
    src.metric                          AS metric,
    cityHash64(mapSort(src.attributes)) AS attributes_hash,
    any(src.attributes)                 AS attributes,
    sum(src.value)                      AS value,
    count()                             AS points
FROM drover.metrics_sum_local AS src
WHERE src.temporality = 'delta' AND src.is_monotonic
GROUP BY time, model, model_version, metric, attributes_hash;

CREATE TABLE IF NOT EXISTS drover.metrics_sum_1h ON CLUSTER 'drover_cluster' AS drover.metrics_sum_1h_local
ENGINE = Distributed('drover_cluster', 'drover', 'metrics_sum_1h_local');

CREATE TABLE IF NOT EXISTS drover.metrics_eval_1m_local ON CLUSTER 'drover_cluster'
(
    time            DateTime('UTC') CODEC(DoubleDelta, ZSTD(1)),
    model           LowCardinality(String) CODEC(ZSTD(1)),
    model_version   LowCardinality(String) CODEC(ZSTD(1)),
    attributes_hash UInt64,
    attributes      SimpleAggregateFunction(any, Map(String, String)) CODEC(ZSTD(1)),
    value_avg       AggregateFunction(avg, Float64),
    points          SimpleAggregateFunction(sum, UInt64)
)
ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/{database}/metrics_eval_1m_local', '{replica}')
PARTITION BY toDate(time)
ORDER BY (model, model_version, attributes_hash, time)
TTL time + INTERVAL 30 DAY
SETTINGS ttl_only_drop_parts = 1, replicated_deduplication_window = 10000, replicated_deduplication_window_seconds = 604800;

CREATE MATERIALIZED VIEW IF NOT EXISTS drover.metrics_eval_1m_mv ON CLUSTER 'drover_cluster'
TO drover.metrics_eval_1m_local AS
SELECT
    toStartOfMinute(src.time)           AS time,
    src.model                           AS model,
    src.model_version                   AS model_version,
    cityHash64(mapSort(src.attributes)) AS attributes_hash,
    any(src.attributes)                 AS attributes,
    avgState(src.value)                 AS value_avg,
    count()                             AS points
FROM drover.metrics_gauge_local AS src
WHERE src.metric = 'drover.eval' AND isFinite(src.value)
GROUP BY time, model, model_version, attributes_hash;

CREATE TABLE IF NOT EXISTS drover.metrics_eval_1m ON CLUSTER 'drover_cluster' AS drover.metrics_eval_1m_local
ENGINE = Distributed('drover_cluster', 'drover', 'metrics_eval_1m_local');

ALTER TABLE drover.metrics_sum_local ON CLUSTER 'drover_cluster'
    ADD INDEX IF NOT EXISTS temporality_idx temporality TYPE set(3) GRANULARITY 1;

ALTER TABLE drover.metrics_histogram_local ON CLUSTER 'drover_cluster'
    ADD INDEX IF NOT EXISTS temporality_idx temporality TYPE set(3) GRANULARITY 1;

ALTER TABLE drover.metrics_exp_histogram_local ON CLUSTER 'drover_cluster'
    ADD INDEX IF NOT EXISTS temporality_idx temporality TYPE set(3) GRANULARITY 1;

-- 0006_resources

CREATE TABLE IF NOT EXISTS drover.resources_local ON CLUSTER 'drover_cluster'
(
    resource_id UInt64,
    last_seen   DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    service     LowCardinality(String) CODEC(ZSTD(1)),
    host        LowCardinality(String) CODEC(ZSTD(1)),
    agent_id    LowCardinality(String) CODEC(ZSTD(1)),
    attributes  Map(LowCardinality(String), String) CODEC(ZSTD(1))
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/resources_local', '{replica}', last_seen)
ORDER BY resource_id
TTL toDateTime(last_seen) + INTERVAL 30 DAY + INTERVAL 1 DAY
SETTINGS replicated_deduplication_window = 10000, replicated_deduplication_window_seconds = 604800;

CREATE TABLE IF NOT EXISTS drover.resources ON CLUSTER 'drover_cluster' AS drover.resources_local
ENGINE = Distributed('drover_cluster', 'drover', 'resources_local', resource_id);

ALTER TABLE drover.metrics_gauge_local ON CLUSTER 'drover_cluster'
    ADD COLUMN IF NOT EXISTS resource_id UInt64 CODEC(ZSTD(1)) AFTER resource_attributes;

ALTER TABLE drover.metrics_gauge ON CLUSTER 'drover_cluster'
    ADD COLUMN IF NOT EXISTS resource_id UInt64 AFTER resource_attributes;

ALTER TABLE drover.metrics_sum_local ON CLUSTER 'drover_cluster'
    ADD COLUMN IF NOT EXISTS resource_id UInt64 CODEC(ZSTD(1)) AFTER resource_attributes;

ALTER TABLE drover.metrics_sum ON CLUSTER 'drover_cluster'
    ADD COLUMN IF NOT EXISTS resource_id UInt64 AFTER resource_attributes;

ALTER TABLE drover.metrics_histogram_local ON CLUSTER 'drover_cluster'
    ADD COLUMN IF NOT EXISTS resource_id UInt64 CODEC(ZSTD(1)) AFTER resource_attributes;

ALTER TABLE drover.metrics_histogram ON CLUSTER 'drover_cluster'
    ADD COLUMN IF NOT EXISTS resource_id UInt64 AFTER resource_attributes;

ALTER TABLE drover.metrics_exp_histogram_local ON CLUSTER 'drover_cluster'
    ADD COLUMN IF NOT EXISTS resource_id UInt64 CODEC(ZSTD(1)) AFTER resource_attributes;

ALTER TABLE drover.metrics_exp_histogram ON CLUSTER 'drover_cluster'
    ADD COLUMN IF NOT EXISTS resource_id UInt64 AFTER resource_attributes;

ALTER TABLE drover.metrics_summary_local ON CLUSTER 'drover_cluster'
    ADD COLUMN IF NOT EXISTS resource_id UInt64 CODEC(ZSTD(1)) AFTER resource_attributes;

ALTER TABLE drover.metrics_summary ON CLUSTER 'drover_cluster'
    ADD COLUMN IF NOT EXISTS resource_id UInt64 AFTER resource_attributes;

ALTER TABLE drover.events_local ON CLUSTER 'drover_cluster'
    ADD COLUMN IF NOT EXISTS resource_id UInt64 CODEC(ZSTD(1)) AFTER resource_attributes;

ALTER TABLE drover.events ON CLUSTER 'drover_cluster'
    ADD COLUMN IF NOT EXISTS resource_id UInt64 AFTER resource_attributes;

-- 0007_attribute_sets

ALTER TABLE drover.metrics_gauge_local ON CLUSTER 'drover_cluster'
    ADD COLUMN IF NOT EXISTS attributes_hash UInt64 DEFAULT cityHash64(mapSort(attributes)) CODEC(ZSTD(1)) AFTER attributes;

ALTER TABLE drover.metrics_gauge ON CLUSTER 'drover_cluster'
    ADD COLUMN IF NOT EXISTS attributes_hash UInt64 DEFAULT cityHash64(mapSort(attributes)) AFTER attributes;

ALTER TABLE drover.metrics_sum_local ON CLUSTER 'drover_cluster'
    ADD COLUMN IF NOT EXISTS attributes_hash UInt64 DEFAULT cityHash64(mapSort(attributes)) CODEC(ZSTD(1)) AFTER attributes;

ALTER TABLE drover.metrics_sum ON CLUSTER 'drover_cluster'
    ADD COLUMN IF NOT EXISTS attributes_hash UInt64 DEFAULT cityHash64(mapSort(attributes)) AFTER attributes;

CREATE TABLE IF NOT EXISTS drover.attribute_sets_local ON CLUSTER 'drover_cluster'
(
    attributes_hash UInt64,
    attributes      SimpleAggregateFunction(any, Map(String, String)) CODEC(ZSTD(1)),
    last_seen       SimpleAggregateFunction(max, DateTime('UTC'))
)
ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/{database}/attribute_sets_local', '{replica}')
ORDER BY attributes_hash
TTL last_seen + INTERVAL 365 DAY
SETTINGS replicated_deduplication_window = 10000, replicated_deduplication_window_seconds = 604800;

CREATE MATERIALIZED VIEW IF NOT EXISTS drover.attribute_sets_mv ON CLUSTER 'drover_cluster'
TO drover.attribute_sets_local AS
SELECT
    src.attributes_hash       AS attributes_hash,
    any(src.attributes)       AS attributes,
    max(toDateTime(src.time)) AS last_seen
FROM drover.metrics_gauge_local AS src
GROUP BY attributes_hash;

CREATE TABLE IF NOT EXISTS drover.attribute_sets ON CLUSTER 'drover_cluster' AS drover.attribute_sets_local
ENGINE = Distributed('drover_cluster', 'drover', 'attribute_sets_local', attributes_hash);

ALTER TABLE drover.metrics_gauge_1m_mv ON CLUSTER 'drover_cluster' MODIFY QUERY
SELECT
    toStartOfMinute(src.time)        AS time,
    src.model                        AS model,
    src.model_version                AS model_version,
    src.metric                       AS metric,
    src.host                         AS host,
    src.attributes_hash              AS attributes_hash,
    avgState(src.value)              AS value_avg,
    minState(src.value)              AS value_min,
    maxState(src.value)              AS value_max,
    argMaxState(src.value, src.time) AS value_last,
    count()                          AS points
FROM drover.metrics_gauge_local AS src
GROUP BY time, model, model_version, metric, host, attributes_hash;

ALTER TABLE drover.metrics_gauge_1h_mv ON CLUSTER 'drover_cluster' MODIFY QUERY
SELECT
    toStartOfHour(src.time)          AS time,
    src.model                        AS model,
    src.model_version                AS model_version,
    src.metric                       AS metric,
    src.host                         AS host,
    src.attributes_hash              AS attributes_hash,
    avgState(src.value)              AS value_avg,
    minState(src.value)              AS value_min,
    maxState(src.value)              AS value_max,
    argMaxState(src.value, src.time) AS value_last,
    count()                          AS points
FROM drover.metrics_gauge_local AS src
GROUP BY time, model, model_version, metric, host, attributes_hash;

ALTER TABLE drover.metrics_eval_1m_mv ON CLUSTER 'drover_cluster' MODIFY QUERY
SELECT
    toStartOfMinute(src.time) AS time,
    src.model                 AS model,
    src.model_version         AS model_version,
    src.attributes_hash       AS attributes_hash,
    any(src.attributes)       AS attributes,
    avgState(src.value)       AS value_avg,
    count()                   AS points
FROM drover.metrics_gauge_local AS src
WHERE src.metric = 'drover.eval' AND isFinite(src.value)
GROUP BY time, model, model_version, attributes_hash;

ALTER TABLE drover.metrics_sum_1m_mv ON CLUSTER 'drover_cluster' MODIFY QUERY
SELECT
    toStartOfMinute(src.time) AS time,
    src.model                 AS model,
    src.model_version         AS model_version,
    src.metric                AS metric,
    src.attributes_hash       AS attributes_hash,
    any(src.attributes)       AS attributes,
    sum(src.value)            AS value,
    count()                   AS points
FROM drover.metrics_sum_local AS src
WHERE src.temporality = 'delta' AND src.is_monotonic
GROUP BY time, model, model_version, metric, attributes_hash;

ALTER TABLE drover.metrics_sum_1h_mv ON CLUSTER 'drover_cluster' MODIFY QUERY
SELECT
    toStartOfHour(src.time) AS time,
    src.model               AS model,
    src.model_version       AS model_version,
    src.metric              AS metric,
    src.attributes_hash     AS attributes_hash,
    any(src.attributes)     AS attributes,
    sum(src.value)          AS value,
    count()                 AS points
FROM drover.metrics_sum_local AS src
WHERE src.temporality = 'delta' AND src.is_monotonic
GROUP BY time, model, model_version, metric, attributes_hash;

-- 0008_auth

CREATE TABLE IF NOT EXISTS drover.tokens_local ON CLUSTER 'drover_cluster'
(
    name        String CODEC(ZSTD(1)),
    sha256      String CODEC(ZSTD(1)),
    role        LowCardinality(String) CODEC(ZSTD(1)),
    created     DateTime64(3, 'UTC'),
    created_by  String CODEC(ZSTD(1)),
    revoked     UInt8,
    revoked_at  Nullable(DateTime64(3, 'UTC')),
    revoked_by  String CODEC(ZSTD(1)),
    row_version UInt64
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/tokens_local', '{replica}', row_version)
ORDER BY name
SETTINGS replicated_deduplication_window = 10000, replicated_deduplication_window_seconds = 604800;

CREATE TABLE IF NOT EXISTS drover.tokens ON CLUSTER 'drover_cluster' AS drover.tokens_local
ENGINE = Distributed('drover_cluster', 'drover', 'tokens_local', cityHash64(name));

CREATE TABLE IF NOT EXISTS drover.audit_log_local ON CLUSTER 'drover_cluster'
(
    time        DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    node        LowCardinality(String) CODEC(ZSTD(1)),
    token_name  LowCardinality(String) CODEC(ZSTD(1)),
    role        LowCardinality(String) CODEC(ZSTD(1)),
    action      LowCardinality(String) CODEC(ZSTD(1)),
    target      String CODEC(ZSTD(1)),
    result      LowCardinality(String) CODEC(ZSTD(1)),
    remote_addr String CODEC(ZSTD(1)),
    detail      String CODEC(ZSTD(3))
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/audit_log_local', '{replica}')
PARTITION BY toDate(time)
ORDER BY (token_name, action, time)
TTL toDateTime(time) + INTERVAL 30 DAY
SETTINGS ttl_only_drop_parts = 1, replicated_deduplication_window = 10000, replicated_deduplication_window_seconds = 604800;

CREATE TABLE IF NOT EXISTS drover.audit_log ON CLUSTER 'drover_cluster' AS drover.audit_log_local
ENGINE = Distributed('drover_cluster', 'drover', 'audit_log_local', cityHash64(token_name));

-- 0009_registry

CREATE TABLE IF NOT EXISTS drover.registry_versions_local ON CLUSTER 'drover_cluster'
(
    model        LowCardinality(String) CODEC(ZSTD(1)),
    version      UInt64,
    content_id   String CODEC(ZSTD(1)),
    file_paths   Array(String) CODEC(ZSTD(1)),
    file_sha256  Array(String) CODEC(ZSTD(1)),
    file_sizes   Array(UInt64) CODEC(ZSTD(1)),
    created      DateTime64(3, 'UTC'),
    author       String CODEC(ZSTD(1)),
    message      String CODEC(ZSTD(3)),
    parents      Array(UInt64),
    source       LowCardinality(String),
    incident     String CODEC(ZSTD(1)),
    job          String CODEC(ZSTD(1)),
    signature    String CODEC(ZSTD(3)),
    state        LowCardinality(String),
    updated      DateTime64(3, 'UTC'),
    row_version  UInt64
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/registry_versions_local', '{replica}', row_version)
ORDER BY (model, version)
SETTINGS replicated_deduplication_window = 10000, replicated_deduplication_window_seconds = 604800;

CREATE TABLE IF NOT EXISTS drover.registry_versions ON CLUSTER 'drover_cluster' AS drover.registry_versions_local
ENGINE = Distributed('drover_cluster', 'drover', 'registry_versions_local', cityHash64(model));

-- 0010_job_attempts

CREATE TABLE IF NOT EXISTS drover.job_attempts_local ON CLUSTER 'drover_cluster'
(
    id        String CODEC(ZSTD(1)),
    attempt   UInt32,
    node      LowCardinality(String) CODEC(ZSTD(1)),
    started   DateTime64(3, 'UTC'),
    finished  DateTime64(3, 'UTC'),
    state     LowCardinality(String) CODEC(ZSTD(1)),
    exit_code Int32,
    error     String CODEC(ZSTD(3)),
    output    String CODEC(ZSTD(3))
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/job_attempts_local', '{replica}')
PARTITION BY toDate(started)
ORDER BY (id, attempt, started)
TTL toDateTime(started) + INTERVAL 30 DAY
SETTINGS ttl_only_drop_parts = 1, replicated_deduplication_window = 10000, replicated_deduplication_window_seconds = 604800;

CREATE TABLE IF NOT EXISTS drover.job_attempts ON CLUSTER 'drover_cluster' AS drover.job_attempts_local
ENGINE = Distributed('drover_cluster', 'drover', 'job_attempts_local', cityHash64(id));

-- 0011_drop_model_versions

DROP TABLE IF EXISTS drover.model_versions ON CLUSTER 'drover_cluster';

DROP TABLE IF EXISTS drover.model_versions_local ON CLUSTER 'drover_cluster';

-- 0012_dead_letters

CREATE TABLE IF NOT EXISTS drover.dead_letters_local ON CLUSTER 'drover_cluster'
(
    time       DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    table_name LowCardinality(String) CODEC(ZSTD(1)),
    code       Int32,
    code_name  LowCardinality(String) CODEC(ZSTD(1)),
    reason     String CODEC(ZSTD(3)),
    batch      String CODEC(ZSTD(1)),
    row        String CODEC(ZSTD(3))
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/dead_letters_local', '{replica}')
PARTITION BY toDate(time)
ORDER BY (table_name, time)
TTL toDateTime(time) + INTERVAL 30 DAY
SETTINGS ttl_only_drop_parts = 1, replicated_deduplication_window = 10000, replicated_deduplication_window_seconds = 604800;

CREATE TABLE IF NOT EXISTS drover.dead_letters ON CLUSTER 'drover_cluster' AS drover.dead_letters_local
ENGINE = Distributed('drover_cluster', 'drover', 'dead_letters_local', cityHash64(batch));

-- 0013_fleet

CREATE TABLE IF NOT EXISTS drover.desired_state_local ON CLUSTER 'drover_cluster'
(
    model            LowCardinality(String) CODEC(ZSTD(1)),
    revision         UInt64,
    serving          UInt64,
    previous         UInt64,
    canary_version   UInt64,
    canary_share     UInt8,
    canary_auto      Bool,
    canary_analysis  String CODEC(ZSTD(1)),
    canary_started   DateTime64(3, 'UTC'),
    shadow_version   UInt64,
    shadow_share     UInt8,
    pinned           Bool,
    selector         Map(String, String),
    changed_by       String CODEC(ZSTD(1)),
    changed_at       DateTime64(3, 'UTC'),
    reason           String CODEC(ZSTD(3)),
    change           LowCardinality(String)
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/desired_state_local', '{replica}')
ORDER BY (model, revision)
SETTINGS replicated_deduplication_window = 10000, replicated_deduplication_window_seconds = 604800;

CREATE TABLE IF NOT EXISTS drover.desired_state ON CLUSTER 'drover_cluster' AS drover.desired_state_local
ENGINE = Distributed('drover_cluster', 'drover', 'desired_state_local', cityHash64(model));

CREATE TABLE IF NOT EXISTS drover.agents_local ON CLUSTER 'drover_cluster'
(
    agent      String CODEC(ZSTD(1)),
    host       LowCardinality(String),
    labels     Map(String, String),
    build      String CODEC(ZSTD(1)),
    serving    Map(String, UInt64),
    inventory  String CODEC(ZSTD(3)),
    collector  String CODEC(ZSTD(1)),
    updated    DateTime64(3, 'UTC'),
    last_seen  DateTime64(3, 'UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/agents_local', '{replica}', last_seen)
ORDER BY agent
SETTINGS replicated_deduplication_window = 10000, replicated_deduplication_window_seconds = 604800;

CREATE TABLE IF NOT EXISTS drover.agents ON CLUSTER 'drover_cluster' AS drover.agents_local
ENGINE = Distributed('drover_cluster', 'drover', 'agents_local', cityHash64(agent));

-- 0014_labels

CREATE TABLE IF NOT EXISTS drover.labels_local ON CLUSTER 'drover_cluster'
(
    time       DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    model      LowCardinality(String) CODEC(ZSTD(1)),
    request_id String CODEC(ZSTD(1)),
    label      String CODEC(ZSTD(3)),
    source     LowCardinality(String) CODEC(ZSTD(1)),
    sender     LowCardinality(String) CODEC(ZSTD(1))
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/labels_local', '{replica}')
PARTITION BY toDate(time)
ORDER BY (model, request_id, time)
TTL toDateTime(time) + INTERVAL 30 DAY
SETTINGS ttl_only_drop_parts = 1, replicated_deduplication_window = 10000, replicated_deduplication_window_seconds = 604800;

CREATE TABLE IF NOT EXISTS drover.labels ON CLUSTER 'drover_cluster' AS drover.labels_local
ENGINE = Distributed('drover_cluster', 'drover', 'labels_local', cityHash64(model, request_id));

-- 0015_job_report

ALTER TABLE drover.jobs_local ON CLUSTER 'drover_cluster'
    ADD COLUMN IF NOT EXISTS report String CODEC(ZSTD(3)) AFTER spec;

ALTER TABLE drover.jobs ON CLUSTER 'drover_cluster'
    ADD COLUMN IF NOT EXISTS report String AFTER spec;

