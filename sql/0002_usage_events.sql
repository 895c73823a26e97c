-- 0002_usage_events.sql: the usage ledger and its hourly rollup.
-- The ledger is append-only and holds quantities, not money: cost is derived from the price in force at
-- started_at, so a late price import re-prices nothing by hand.

CREATE TABLE usage_events (
    request_id         uuid        PRIMARY KEY,  -- minted by the gateway (UUIDv7) or the event id of an ingested event; retries reuse it
    response_id        text,                     -- the upstream's own id (chatcmpl-…)
    started_at         timestamptz NOT NULL,
    ended_at           timestamptz NOT NULL,
    -- No foreign key: the writer must keep landing rows at full speed; the gateway and the ingest API only
    -- write subscriptions that exist, and subscriptions are never deleted.
    subscription_id    text        NOT NULL,
    -- Snapshots of the subscription's attributes when the request was made, so chargeback follows history.
    product            text,
    team               text,
    cost_center        text,
    backend            text        NOT NULL,
    deployment         text,
    model              text        NOT NULL,     -- as reported by the upstream; the requested one when it did not say
    route              text        NOT NULL,
    http_status        smallint    NOT NULL,
    latency_ms         integer     NOT NULL CHECK (latency_ms >= 0),
    streamed           boolean     NOT NULL,
    prompt_tokens      integer     NOT NULL CHECK (prompt_tokens >= 0),
    completion_tokens  integer     NOT NULL CHECK (completion_tokens >= 0),
    total_tokens       integer     NOT NULL CHECK (total_tokens >= 0),
    cached_tokens      integer     NOT NULL CHECK (cached_tokens >= 0 AND cached_tokens <= prompt_tokens),
    reasoning_tokens   integer     NOT NULL CHECK (reasoning_tokens >= 0 AND reasoning_tokens <= completion_tokens),
    usage_source       text        NOT NULL CHECK (usage_source IN ('reported', 'estimated', 'missing')),
    source             text        NOT NULL DEFAULT 'gateway',
    recorded_at        timestamptz NOT NULL DEFAULT now(),
    CHECK (ended_at >= started_at)
);
CREATE INDEX usage_events_by_subscription_time ON usage_events (subscription_id, started_at);
CREATE INDEX usage_events_by_time ON usage_events USING brin (started_at);

-- Hourly aggregates, maintained in the same transaction that lands the events (only rows actually inserted count,
-- so a replayed batch adds nothing). Reports, budgets and the reporting views read this, not the ledger.
CREATE TABLE usage_hourly (
    hour_start        timestamptz NOT NULL,
    subscription_id   text        NOT NULL,
    product           text        NOT NULL DEFAULT '',
    team              text        NOT NULL DEFAULT '',
    cost_center       text        NOT NULL DEFAULT '',
    backend           text        NOT NULL,
    deployment        text        NOT NULL DEFAULT '',
    model             text        NOT NULL,
    usage_source      text        NOT NULL,
    requests          bigint      NOT NULL,
    prompt_tokens     bigint      NOT NULL,
    completion_tokens bigint      NOT NULL,
    total_tokens      bigint      NOT NULL,
    cached_tokens     bigint      NOT NULL,
    reasoning_tokens  bigint      NOT NULL,
    PRIMARY KEY (hour_start, subscription_id, product, team, cost_center, backend, deployment, model, usage_source),
    CHECK (hour_start = date_trunc('hour', hour_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')
);
CREATE INDEX usage_hourly_by_subscription ON usage_hourly (subscription_id, hour_start);
