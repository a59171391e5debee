-- job_attempts: one row per finished attempt of a re-optimization job (the
-- jobs table keeps only a job's latest row once merged): the collector that
-- ran it, when, how it ended and the end of its output. Written by the node
-- that records the outcome (or cancels the attempt); GET /v1/jobs/{id}
-- lists them. Partitioned like jobs, by the attempt's start.
CREATE TABLE IF NOT EXISTS {{table "job_attempts"}} {{on_cluster}}
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
ENGINE = {{engine "MergeTree"}}
PARTITION BY toDate(started)
ORDER BY (id, attempt, started)
TTL toDateTime(started) + INTERVAL {{ttl_days}} DAY
SETTINGS ttl_only_drop_parts = 1, {{dedup}};

{{distributed "job_attempts" "cityHash64(id)"}};
