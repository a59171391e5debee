-- Events (OTLP log records that carry drover.event) and sampled requests
-- (training data: the sample event's inputs and outputs, and a label once
-- feedback joins it).

CREATE TABLE IF NOT EXISTS {{table "events"}} {{on_cluster}}
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
ENGINE = {{engine "MergeTree"}}
PARTITION BY toDate(time)
ORDER BY (model, model_version, event, host, time)
TTL toDateTime(time) + INTERVAL {{ttl_days}} DAY
SETTINGS ttl_only_drop_parts = 1, {{dedup}};

{{distributed "events" "cityHash64(model, model_version, host)"}};

CREATE TABLE IF NOT EXISTS {{table "samples"}} {{on_cluster}}
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
ENGINE = {{engine "MergeTree"}}
PARTITION BY toDate(time)
ORDER BY (model, model_version, time)
TTL toDateTime(time) + INTERVAL {{ttl_days}} DAY
SETTINGS ttl_only_drop_parts = 1, {{dedup}};

{{distributed "samples" "cityHash64(model, model_version, request_id)"}};
