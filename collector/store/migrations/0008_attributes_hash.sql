-- Attribute hashes computed once per row. Every view on metrics_gauge and
-- metrics_sum groups by attributes_hash, cityHash64(mapSort(attributes)),
-- and each computed it for every inserted row: three times for a gauge
-- point (the 1 min and 1 h rollups and attribute_sets). The two tables now
-- have it as a column whose DEFAULT ClickHouse computes once as the row is
-- inserted (the collector does not send it), and for parts written before
-- this migration when they are read. The views read the column; what they
-- store is unchanged.

{{range $t := list "metrics_gauge" "metrics_sum"}}
ALTER TABLE {{local $t}} {{on_cluster}}
    ADD COLUMN IF NOT EXISTS attributes_hash UInt64 DEFAULT cityHash64(mapSort(attributes)) CODEC(ZSTD(1)) AFTER attributes;
{{if cluster}}
ALTER TABLE {{db}}.{{$t}} {{on_cluster}}
    ADD COLUMN IF NOT EXISTS attributes_hash UInt64 DEFAULT cityHash64(mapSort(attributes)) AFTER attributes;
{{end}}
{{end}}

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

ALTER TABLE {{db}}.attribute_sets_mv {{on_cluster}} MODIFY QUERY
SELECT
    src.attributes_hash       AS attributes_hash,
    any(src.attributes)       AS attributes,
    max(toDateTime(src.time)) AS last_seen
FROM {{local "metrics_gauge"}} AS src
GROUP BY attributes_hash;

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
