-- Resources stored once. An OTLP resource (an agent: service, host, agent
-- id, version, environment, cloud and k8s attributes) used to be copied into
-- the resource_attributes map of every point it sent; that map was most of
-- the bytes of a point, and writing it most of the cost of an insert. Now a
-- point holds resource_id, and the resources table holds each resource's
-- attributes under that id (store.ResourceID: FNV-1a over the sorted
-- attributes, the same in every collector).
--
-- The ingest writes a resource when it first sees it and again every hour
-- while it sends data; ReplacingMergeTree keeps the latest row per id, and
-- the TTL (a day longer than the points') drops resources that stopped
-- sending. resource_attributes stays in the point tables for rows written
-- before this migration; new rows leave it empty. Query by resource
-- attribute with a join or an IN subquery on resources (docs/schema.md).

CREATE TABLE IF NOT EXISTS {{table "resources"}} {{on_cluster}}
(
    resource_id UInt64,
    last_seen   DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    service     LowCardinality(String) CODEC(ZSTD(1)),
    host        LowCardinality(String) CODEC(ZSTD(1)),
    agent_id    LowCardinality(String) CODEC(ZSTD(1)),
    attributes  Map(LowCardinality(String), String) CODEC(ZSTD(1))
)
ENGINE = {{engine "ReplacingMergeTree" "last_seen"}}
ORDER BY resource_id
TTL toDateTime(last_seen) + INTERVAL {{ttl_days}} DAY + INTERVAL 1 DAY
SETTINGS {{dedup}};

{{distributed "resources" "resource_id"}};

{{range $t := list "metrics_gauge" "metrics_sum" "metrics_histogram" "metrics_exp_histogram" "metrics_summary" "events"}}
ALTER TABLE {{local $t}} {{on_cluster}}
    ADD COLUMN IF NOT EXISTS resource_id UInt64 CODEC(ZSTD(1)) AFTER resource_attributes;
{{if cluster}}
ALTER TABLE {{db}}.{{$t}} {{on_cluster}}
    ADD COLUMN IF NOT EXISTS resource_id UInt64 AFTER resource_attributes;
{{end}}
{{end}}
