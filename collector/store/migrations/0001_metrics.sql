-- OTLP metric points, one table per point kind. Every table keeps the columns
-- of a point's identity and context (time, service, host, agent, model,
-- version, metric, unit, attributes, resource attributes, scope) and adds its
-- values. The sorting key starts with model, version, metric and host: nearly
-- every query names a model and a metric, fewer a version, fewest a host.
-- Attribute maps are never part of a key.

CREATE TABLE IF NOT EXISTS {{table "metrics_gauge"}} {{on_cluster}}
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
ENGINE = {{engine "MergeTree"}}
PARTITION BY toDate(time)
ORDER BY (model, model_version, metric, host, time)
TTL toDateTime(time) + INTERVAL {{ttl_days}} DAY
SETTINGS ttl_only_drop_parts = 1, {{dedup}};

{{distributed "metrics_gauge" "cityHash64(model, model_version, metric, host)"}};

CREATE TABLE IF NOT EXISTS {{table "metrics_sum"}} {{on_cluster}}
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
ENGINE = {{engine "MergeTree"}}
PARTITION BY toDate(time)
ORDER BY (model, model_version, metric, host, time)
TTL toDateTime(time) + INTERVAL {{ttl_days}} DAY
SETTINGS ttl_only_drop_parts = 1, {{dedup}};

{{distributed "metrics_sum" "cityHash64(model, model_version, metric, host)"}};

CREATE TABLE IF NOT EXISTS {{table "metrics_histogram"}} {{on_cluster}}
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
ENGINE = {{engine "MergeTree"}}
PARTITION BY toDate(time)
ORDER BY (model, model_version, metric, feature, host, time)
TTL toDateTime(time) + INTERVAL {{ttl_days}} DAY
SETTINGS ttl_only_drop_parts = 1, {{dedup}};

{{distributed "metrics_histogram" "cityHash64(model, model_version, metric, host)"}};

CREATE TABLE IF NOT EXISTS {{table "metrics_exp_histogram"}} {{on_cluster}}
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
ENGINE = {{engine "MergeTree"}}
PARTITION BY toDate(time)
ORDER BY (model, model_version, metric, feature, host, time)
TTL toDateTime(time) + INTERVAL {{ttl_days}} DAY
SETTINGS ttl_only_drop_parts = 1, {{dedup}};

{{distributed "metrics_exp_histogram" "cityHash64(model, model_version, metric, host)"}};

CREATE TABLE IF NOT EXISTS {{table "metrics_summary"}} {{on_cluster}}
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
ENGINE = {{engine "MergeTree"}}
PARTITION BY toDate(time)
ORDER BY (model, model_version, metric, host, time)
TTL toDateTime(time) + INTERVAL {{ttl_days}} DAY
SETTINGS ttl_only_drop_parts = 1, {{dedup}};

{{distributed "metrics_summary" "cityHash64(model, model_version, metric, host)"}};
