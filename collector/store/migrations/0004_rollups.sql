-- Rollups: materialized views that aggregate every insert into the raw
-- tables into AggregatingMergeTree tables. Rows hold partial aggregate
-- states; read them with the -Merge combinators and GROUP BY (see
-- docs/schema.md). Source columns are qualified (src.time) because an alias
-- such as `... AS time` would otherwise replace the column inside the other
-- expressions.
--
-- Gauges: one row per minute (hour) per series, a series being model,
-- version, metric, host and the point attributes (by an order-independent
-- hash; the map itself is kept beside it). Without the attributes a gauge
-- such as drover.eval would average accuracy with f1.

CREATE TABLE IF NOT EXISTS {{table "metrics_gauge_1m"}} {{on_cluster}}
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
ENGINE = {{engine "AggregatingMergeTree"}}
PARTITION BY toDate(time)
ORDER BY (model, model_version, metric, host, attributes_hash, time)
TTL time + INTERVAL {{ttl_days}} DAY
SETTINGS ttl_only_drop_parts = 1, {{dedup}};

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.metrics_gauge_1m_mv {{on_cluster}}
TO {{local "metrics_gauge_1m"}} AS
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
FROM {{local "metrics_gauge"}} AS src
GROUP BY time, model, model_version, metric, host, attributes_hash;

{{distributed "metrics_gauge_1m" ""}};

CREATE TABLE IF NOT EXISTS {{table "metrics_gauge_1h"}} {{on_cluster}}
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
ENGINE = {{engine "AggregatingMergeTree"}}
PARTITION BY toDate(time)
ORDER BY (model, model_version, metric, host, attributes_hash, time)
TTL time + INTERVAL {{rollup_ttl_days}} DAY
SETTINGS ttl_only_drop_parts = 1, {{dedup}};

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.metrics_gauge_1h_mv {{on_cluster}}
TO {{local "metrics_gauge_1h"}} AS
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
FROM {{local "metrics_gauge"}} AS src
GROUP BY time, model, model_version, metric, host, attributes_hash;

{{distributed "metrics_gauge_1h" ""}};

-- Histograms: bucket counts summed per minute (hour) across hosts, per model,
-- version, metric, feature and bucket bounds. Summing is only right for delta
-- points, so only those are rolled up. Cumulative histograms are queried from
-- metrics_histogram by each series' increase over the window (docs/schema.md).

CREATE TABLE IF NOT EXISTS {{table "metrics_histogram_1m"}} {{on_cluster}}
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
ENGINE = {{engine "AggregatingMergeTree"}}
PARTITION BY toDate(time)
ORDER BY (model, model_version, metric, feature, bounds, time)
TTL time + INTERVAL {{ttl_days}} DAY
SETTINGS ttl_only_drop_parts = 1, {{dedup}};

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.metrics_histogram_1m_mv {{on_cluster}}
TO {{local "metrics_histogram_1m"}} AS
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
FROM {{local "metrics_histogram"}} AS src
WHERE src.temporality = 'delta'
GROUP BY time, model, model_version, metric, feature, bounds;

{{distributed "metrics_histogram_1m" ""}};

CREATE TABLE IF NOT EXISTS {{table "metrics_histogram_1h"}} {{on_cluster}}
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
ENGINE = {{engine "AggregatingMergeTree"}}
PARTITION BY toDate(time)
ORDER BY (model, model_version, metric, feature, bounds, time)
TTL time + INTERVAL {{rollup_ttl_days}} DAY
SETTINGS ttl_only_drop_parts = 1, {{dedup}};

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.metrics_histogram_1h_mv {{on_cluster}}
TO {{local "metrics_histogram_1h"}} AS
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
FROM {{local "metrics_histogram"}} AS src
WHERE src.temporality = 'delta'
GROUP BY time, model, model_version, metric, feature, bounds;

{{distributed "metrics_histogram_1h" ""}};
