-- Delta sums and evaluation metrics rolled up, and skip indexes on
-- temporality.
--
-- Drover agents export their counters and histograms with delta temporality
-- (docs/metrics.md), so fleet-wide questions (requests and errors of a
-- model version per minute, a feature's distribution over an hour) are sums
-- of rollup rows, independent of the number of hosts. The histogram rollups
-- of 0004 already take delta points; this adds the same for monotonic sums,
-- per attribute set (drover.requests has one series per protocol and
-- status) but across hosts.
--
-- Cumulative points (other OTLP senders, agents configured for cumulative)
-- are still read from the raw tables by each series' increase. The set
-- indexes on temporality let those queries skip every granule that holds
-- only delta points. Parts written before this migration have no index and
-- are read as before (no MATERIALIZE INDEX: that would rewrite them).

CREATE TABLE IF NOT EXISTS {{table "metrics_sum_1m"}} {{on_cluster}}
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
ENGINE = {{engine "AggregatingMergeTree"}}
PARTITION BY toDate(time)
ORDER BY (model, model_version, metric, attributes_hash, time)
TTL time + INTERVAL {{ttl_days}} DAY
SETTINGS ttl_only_drop_parts = 1, {{dedup}};

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.metrics_sum_1m_mv {{on_cluster}}
TO {{local "metrics_sum_1m"}} AS
SELECT
    toStartOfMinute(src.time)           AS time,
    src.model                           AS model,
    src.model_version                   AS model_version,
    src.metric                          AS metric,
    cityHash64(mapSort(src.attributes)) AS attributes_hash,
    any(src.attributes)                 AS attributes,
    sum(src.value)                      AS value,
    count()                             AS points
FROM {{local "metrics_sum"}} AS src
WHERE src.temporality = 'delta' AND src.is_monotonic
GROUP BY time, model, model_version, metric, attributes_hash;

{{distributed "metrics_sum_1m" ""}};

CREATE TABLE IF NOT EXISTS {{table "metrics_sum_1h"}} {{on_cluster}}
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
ENGINE = {{engine "AggregatingMergeTree"}}
PARTITION BY toDate(time)
ORDER BY (model, model_version, metric, attributes_hash, time)
TTL time + INTERVAL {{rollup_ttl_days}} DAY
SETTINGS ttl_only_drop_parts = 1, {{dedup}};

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.metrics_sum_1h_mv {{on_cluster}}
TO {{local "metrics_sum_1h"}} AS
SELECT
    toStartOfHour(src.time)             AS time,
    src.model                           AS model,
    src.model_version                   AS model_version,
    src.metric                          AS metric,
    cityHash64(mapSort(src.attributes)) AS attributes_hash,
    any(src.attributes)                 AS attributes,
    sum(src.value)                      AS value,
    count()                             AS points
FROM {{local "metrics_sum"}} AS src
WHERE src.temporality = 'delta' AND src.is_monotonic
GROUP BY time, model, model_version, metric, attributes_hash;

{{distributed "metrics_sum_1h" ""}};

-- Evaluation metrics (drover.eval gauges) averaged per minute across hosts,
-- per attribute set (metric, source, class): what drift checks compare.
-- Non-finite values (an undefined AUC, say) are left out of the average.

CREATE TABLE IF NOT EXISTS {{table "metrics_eval_1m"}} {{on_cluster}}
(
    time            DateTime('UTC') CODEC(DoubleDelta, ZSTD(1)),
    model           LowCardinality(String) CODEC(ZSTD(1)),
    model_version   LowCardinality(String) CODEC(ZSTD(1)),
    attributes_hash UInt64,
    attributes      SimpleAggregateFunction(any, Map(String, String)) CODEC(ZSTD(1)),
    value_avg       AggregateFunction(avg, Float64),
    points          SimpleAggregateFunction(sum, UInt64)
)
ENGINE = {{engine "AggregatingMergeTree"}}
PARTITION BY toDate(time)
ORDER BY (model, model_version, attributes_hash, time)
TTL time + INTERVAL {{ttl_days}} DAY
SETTINGS ttl_only_drop_parts = 1, {{dedup}};

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.metrics_eval_1m_mv {{on_cluster}}
TO {{local "metrics_eval_1m"}} AS
SELECT
    toStartOfMinute(src.time)           AS time,
    src.model                           AS model,
    src.model_version                   AS model_version,
    cityHash64(mapSort(src.attributes)) AS attributes_hash,
    any(src.attributes)                 AS attributes,
    avgState(src.value)                 AS value_avg,
    count()                             AS points
FROM {{local "metrics_gauge"}} AS src
WHERE src.metric = 'drover.eval' AND isFinite(src.value)
GROUP BY time, model, model_version, attributes_hash;

{{distributed "metrics_eval_1m" ""}};

ALTER TABLE {{local "metrics_sum"}} {{on_cluster}}
    ADD INDEX IF NOT EXISTS temporality_idx temporality TYPE set(3) GRANULARITY 1;

ALTER TABLE {{local "metrics_histogram"}} {{on_cluster}}
    ADD INDEX IF NOT EXISTS temporality_idx temporality TYPE set(3) GRANULARITY 1;

ALTER TABLE {{local "metrics_exp_histogram"}} {{on_cluster}}
    ADD INDEX IF NOT EXISTS temporality_idx temporality TYPE set(3) GRANULARITY 1;
