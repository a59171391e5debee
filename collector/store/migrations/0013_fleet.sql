-- Fleet control (collector/fleet, docs/fleet.md).
--
-- desired_state: one row per revision of a model's desired state, never
-- updated; the current state of a model is its row with the highest
-- revision. Revisions are assigned by the model's ring owner, which reads
-- the highest revision (through the sorting key) under its per-model lock
-- before inserting the next. Sharded by model in cluster mode, like
-- registry_versions. History: no TTL.
CREATE TABLE IF NOT EXISTS {{table "desired_state"}} {{on_cluster}}
(
    model            LowCardinality(String) CODEC(ZSTD(1)),
    revision         UInt64,
    serving          UInt64,
    previous         UInt64,
    -- 0: no canary
    canary_version   UInt64,
    canary_share     UInt8,
    canary_auto      Bool,
    -- the canary's analysis settings as JSON, '' if none
    canary_analysis  String CODEC(ZSTD(1)),
    canary_started   DateTime64(3, 'UTC'),
    -- 0: no shadow
    shadow_version   UInt64,
    shadow_share     UInt8,
    pinned           Bool,
    -- agent labels that must all match; empty: every agent
    selector         Map(String, String),
    -- the name of the token that made the change
    changed_by       String CODEC(ZSTD(1)),
    changed_at       DateTime64(3, 'UTC'),
    reason           String CODEC(ZSTD(3)),
    -- rollout | rollback | pin | unpin | canary | promote | abort | shadow | analysis
    change           LowCardinality(String)
)
ENGINE = {{engine "MergeTree"}}
ORDER BY (model, revision)
SETTINGS {{dedup}};

{{distributed "desired_state" "cityHash64(model)"}};

-- agents: the last inventory of each agent, written when it changes (and
-- its last_seen refreshed at most once a minute, so that every collector
-- of a cluster can tell a live agent from an offline one). Read FINAL.
CREATE TABLE IF NOT EXISTS {{table "agents"}} {{on_cluster}}
(
    agent      String CODEC(ZSTD(1)),
    host       LowCardinality(String),
    labels     Map(String, String),
    build      String CODEC(ZSTD(1)),
    -- model -> the version the agent reports serving (the registry's
    -- delete refusal reads it)
    serving    Map(String, UInt64),
    -- the inventory as the agent sent it (JSON)
    inventory  String CODEC(ZSTD(3)),
    -- the collector the agent last reported to
    collector  String CODEC(ZSTD(1)),
    updated    DateTime64(3, 'UTC'),
    last_seen  DateTime64(3, 'UTC')
)
ENGINE = {{engine "ReplacingMergeTree" "last_seen"}}
ORDER BY agent
SETTINGS {{dedup}};

{{distributed "agents" "cityHash64(agent)"}};
