-- Authentication (collector/auth): the API tokens every collector of a
-- cluster accepts, and the audit log of state-changing requests and denials.

-- tokens holds the sha256 of each token, never the token. Like
-- model_versions it is configuration, not telemetry: no TTL, no day
-- partitions. A revoke inserts the token's row again with revoked = 1 and a
-- row_version with the top bit set (1<<63 | revoke time in ms), a create has
-- row_version = its time in ms: ReplacingMergeTree keeps the highest, so a
-- revoke always wins over the create of the same name, whatever the clocks
-- of the collectors that wrote them. A name is never reused. Read with FINAL.
CREATE TABLE IF NOT EXISTS {{table "tokens"}} {{on_cluster}}
(
    name        String CODEC(ZSTD(1)),
    sha256      String CODEC(ZSTD(1)),
    role        LowCardinality(String) CODEC(ZSTD(1)),
    created     DateTime64(3, 'UTC'),
    created_by  String CODEC(ZSTD(1)),
    revoked     UInt8,
    revoked_at  Nullable(DateTime64(3, 'UTC')),
    revoked_by  String CODEC(ZSTD(1)),
    row_version UInt64
)
ENGINE = {{engine "ReplacingMergeTree" "row_version"}}
ORDER BY name
SETTINGS {{dedup}};

{{distributed "tokens" "cityHash64(name)"}};

-- audit_log: who (token name and role) did what (action: "METHOD /pattern"
-- or a gRPC method; target: the path or object) with which result (ok,
-- failed, denied), from where. Written asynchronously; denials are
-- rate-limited per remote address and token name.
CREATE TABLE IF NOT EXISTS {{table "audit_log"}} {{on_cluster}}
(
    time        DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    node        LowCardinality(String) CODEC(ZSTD(1)),
    token_name  LowCardinality(String) CODEC(ZSTD(1)),
    role        LowCardinality(String) CODEC(ZSTD(1)),
    action      LowCardinality(String) CODEC(ZSTD(1)),
    target      String CODEC(ZSTD(1)),
    result      LowCardinality(String) CODEC(ZSTD(1)),
    remote_addr String CODEC(ZSTD(1)),
    detail      String CODEC(ZSTD(3))
)
ENGINE = {{engine "MergeTree"}}
PARTITION BY toDate(time)
ORDER BY (token_name, action, time)
TTL toDateTime(time) + INTERVAL {{ttl_days}} DAY
SETTINGS ttl_only_drop_parts = 1, {{dedup}};

{{distributed "audit_log" "cityHash64(token_name)"}};
