-- Gauge attribute sets stored once. The gauge rollups kept any(attributes),
-- the series' map, in every row: the views copied a map into each new group,
-- and nearly every row of an insert starts a group (a series has about one
-- point per export), and the rollup parts carried the maps through every
-- merge. Now attribute_sets holds each distinct map of metrics_gauge once
-- under its attributes_hash (cityHash64(mapSort(attributes)), what the
-- rollups group by), with the last time it was seen: an insert adds a row
-- per distinct set in it, not per point. The gauge rollups' attributes
-- column stays for rows written before this migration and is empty in new
-- ones; join attribute_sets on attributes_hash for the map (docs/schema.md).
-- The sum and evaluation rollups, which the drift checker reads, keep theirs.
--
-- Every view on metrics_gauge and metrics_sum groups by attributes_hash and
-- computed it for each inserted row, three times for a gauge point. The two
-- tables now have it as a column whose DEFAULT ClickHouse computes once as
-- the row is inserted (the collector does not send it), and for parts
-- written before this migration when they are read; the views read it.

{{range $t := list "metrics_gauge" "metrics_sum"}}
ALTER TABLE {{local $t}} {{on_cluster}}
    ADD COLUMN IF NOT EXISTS attributes_hash UInt64 DEFAULT cityHash64(mapSort(attributes)) CODEC(ZSTD(1)) AFTER attributes;
{{if cluster}}
ALTER TABLE {{db}}.{{$t}} {{on_cluster}}
    ADD COLUMN IF NOT EXISTS attributes_hash UInt64 DEFAULT cityHash64(mapSort(attributes)) AFTER attributes;
{{end}}
{{end}}

CREATE TABLE IF NOT EXISTS {{table "attribute_sets"}} {{on_cluster}}
(
    attributes_hash UInt64,
    attributes      SimpleAggregateFunction(any, Map(String, String)) CODEC(ZSTD(1)),
    last_seen       SimpleAggregateFunction(max, DateTime('UTC'))
)
ENGINE = {{engine "AggregatingMergeTree"}}
ORDER BY attributes_hash
TTL last_seen + INTERVAL {{rollup_ttl_days}} DAY
SETTINGS {{dedup}};

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.attribute_sets_mv {{on_cluster}}
TO {{local "attribute_sets"}} AS
SELECT
    src.attributes_hash       AS attributes_hash,
    any(src.attributes)       AS attributes,
    max(toDateTime(src.time)) AS last_seen
FROM {{local "metrics_gauge"}} AS src
GROUP BY attributes_hash;

{{distributed "attribute_sets" "attributes_hash"}};

ALTER TABLE {{db}}.metrics_gauge_1m_mv {{on_cluster}} MODIFY QUERY
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
FROM {{local "metrics_gauge"}} AS src
GROUP BY time, model, model_version, metric, host, attributes_hash;

ALTER TABLE {{db}}.metrics_gauge_1h_mv {{on_cluster}} MODIFY QUERY
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
FROM {{local "metrics_gauge"}} AS src
GROUP BY time, model, model_version, metric, host, attributes_hash;

ALTER TABLE {{db}}.metrics_eval_1m_mv {{on_cluster}} MODIFY QUERY
SELECT
    toStartOfMinute(src.time) AS time,
    src.model                 AS model,
    src.model_version         AS model_version,
    src.attributes_hash       AS attributes_hash,
    any(src.attributes)       AS attributes,
    avgState(src.value)       AS value_avg,
    count()                   AS points
FROM {{local "metrics_gauge"}} AS src
WHERE src.metric = 'drover.eval' AND isFinite(src.value)
GROUP BY time, model, model_version, attributes_hash;

ALTER TABLE {{db}}.metrics_sum_1m_mv {{on_cluster}} MODIFY QUERY
SELECT
    toStartOfMinute(src.time) AS time,
    src.model                 AS model,
    src.model_version         AS model_version,
    src.metric                AS metric,
    src.attributes_hash       AS attributes_hash,
    any(src.attributes)       AS attributes,
    sum(src.value)            AS value,
    count()                   AS points
FROM {{local "metrics_sum"}} AS src
WHERE src.temporality = 'delta' AND src.is_monotonic
GROUP BY time, model, model_version, metric, attributes_hash;

ALTER TABLE {{db}}.metrics_sum_1h_mv {{on_cluster}} MODIFY QUERY
SELECT
    toStartOfHour(src.time) AS time,
    src.model               AS model,
    src.model_version       AS model_version,
    src.metric              AS metric,
    src.attributes_hash     AS attributes_hash,
    any(src.attributes)     AS attributes,
    sum(src.value)          AS value,
    count()                 AS points
FROM {{local "metrics_sum"}} AS src
WHERE src.temporality = 'delta' AND src.is_monotonic
GROUP BY time, model, model_version, metric, attributes_hash;
