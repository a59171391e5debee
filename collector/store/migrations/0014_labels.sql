-- labels: the labels clients send for earlier requests, fleet-wide (issue
-- 14, docs/fleet.md): posted to a collector's POST /v2/models/{m}/feedback,
-- or forwarded there by an agent that did not sample the request. One row
-- per label received; a label sent again for the same id is a new row and
-- the latest one (by time) counts. Labels are joined with samples by
-- (model, request_id) at read time (collector/labels), never copied into
-- samples: a label may arrive before its sample is exported. source says
-- who sent it (collector: a client called the collector; agent: an agent
-- forwarded it), sender names the token or agent. Kept ttl_days, like
-- samples.
CREATE TABLE IF NOT EXISTS {{table "labels"}} {{on_cluster}}
(
    time       DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    model      LowCardinality(String) CODEC(ZSTD(1)),
    request_id String CODEC(ZSTD(1)),
    label      String CODEC(ZSTD(3)),
    source     LowCardinality(String) CODEC(ZSTD(1)),
    sender     LowCardinality(String) CODEC(ZSTD(1))
)
ENGINE = {{engine "MergeTree"}}
PARTITION BY toDate(time)
ORDER BY (model, request_id, time)
TTL toDateTime(time) + INTERVAL {{ttl_days}} DAY
SETTINGS ttl_only_drop_parts = 1, {{dedup}};

{{distributed "labels" "cityHash64(model, request_id)"}};
