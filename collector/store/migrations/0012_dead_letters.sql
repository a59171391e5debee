-- dead_letters: rows ClickHouse refused for their data (a type mismatch, a
-- value out of range, points spanning too many days for one INSERT), set
-- aside by the writer so that the rest of their batch is stored and later
-- batches are not held behind them (docs/collector.md, "When ClickHouse
-- refuses an insert"). One row per refused row: the table it was for, the
-- row as JSON, the batch it came in (its spool range, as the insert's
-- deduplication token), the error code and message. Kept ttl_days, by the
-- time it was set aside.
CREATE TABLE IF NOT EXISTS {{table "dead_letters"}} {{on_cluster}}
(
    time       DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    table_name LowCardinality(String) CODEC(ZSTD(1)),
    code       Int32,
    code_name  LowCardinality(String) CODEC(ZSTD(1)),
    reason     String CODEC(ZSTD(3)),
    batch      String CODEC(ZSTD(1)),
    row        String CODEC(ZSTD(3))
)
ENGINE = {{engine "MergeTree"}}
PARTITION BY toDate(time)
ORDER BY (table_name, time)
TTL toDateTime(time) + INTERVAL {{ttl_days}} DAY
SETTINGS ttl_only_drop_parts = 1, {{dedup}};

{{distributed "dead_letters" "cityHash64(batch)"}};
