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
    cityHash64(mapSort(src.attributes)) AS attributes_hash,
    any(src.attributes)                 AS attributes,
    max(toDateTime(src.time))           AS last_seen
FROM {{local "metrics_gauge"}} AS src
GROUP BY attributes_hash;

{{distributed "attribute_sets" "attributes_hash"}};

ALTER TABLE {{db}}.metrics_gauge_1m_mv {{on_cluster}} MODIFY QUERY
SELECT
    toStartOfMinute(src.time)           AS time,
    src.model                           AS model,
    src.model_version                   AS model_version,
    src.metric                          AS metric,
    src.host                            AS host,
    cityHash64(mapSort(src.attributes)) AS attributes_hash,
    avgState(src.value)                 AS value_avg,
    minState(src.value)                 AS value_min,
    maxState(src.value)                 AS value_max,
    argMaxState(src.value, src.time)    AS value_last,
    count()                             AS points
FROM {{local "metrics_gauge"}} AS src
GROUP BY time, model, model_version, metric, host, attributes_hash;

ALTER TABLE {{db}}.metrics_gauge_1h_mv {{on_cluster}} MODIFY QUERY
SELECT
    toStartOfHour(src.time)             AS time,
    src.model                           AS model,
    src.model_version                   AS model_version,
    src.metric                          AS metric,
    src.host                            AS host,
    cityHash64(mapSort(src.attributes)) AS attributes_hash,
    avgState(src.value)                 AS value_avg,
    minState(src.value)                 AS value_min,
    maxState(src.value)                 AS value_max,
    argMaxState(src.value, src.time)    AS value_last,
    count()                             AS points
FROM {{local "metrics_gauge"}} AS src
GROUP BY time, model, model_version, metric, host, attributes_hash;
