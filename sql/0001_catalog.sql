-- 0001_catalog.sql: what `tollgate apply` writes: backends and the names they route, products, subscriptions,
-- and subscription keys. Every instance reads these; PostgreSQL is the single source of truth.

CREATE TABLE backends (
    name                    text        PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,63}$'),
    kind                    text        NOT NULL CHECK (kind IN ('openai', 'azure', 'mock')),
    base_url                text,
    -- The NAME of the environment variable holding the upstream key; the key itself is never stored.
    credential_env          text        CHECK (credential_env ~ '^[A-Za-z_][A-Za-z0-9_]*$'),
    api_version             text,
    connect_timeout_seconds integer     NOT NULL DEFAULT 5 CHECK (connect_timeout_seconds BETWEEN 1 AND 600),
    read_timeout_seconds    integer     NOT NULL DEFAULT 300 CHECK (read_timeout_seconds BETWEEN 1 AND 3600),
    mock_latency_ms         integer     NOT NULL DEFAULT 0 CHECK (mock_latency_ms BETWEEN 0 AND 60000),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    CHECK (kind = 'mock' OR base_url IS NOT NULL)
);

-- A routable name (OpenAI-style `model`, Azure-style `{deployment}`) and the model the upstream serves under it.
CREATE TABLE backend_deployments (
    name    text PRIMARY KEY CHECK (name <> '' AND position('/' IN name) = 0),
    backend text NOT NULL REFERENCES backends (name) ON DELETE CASCADE,
    model   text NOT NULL
);

CREATE TABLE products (
    name              text        PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,63}$'),
    display_name      text,
    tokens_per_minute integer     CHECK (tokens_per_minute > 0),
    token_quota       bigint      CHECK (token_quota > 0),
    quota_period      text        NOT NULL DEFAULT 'monthly' CHECK (quota_period IN ('daily', 'weekly', 'monthly', 'yearly')),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE subscriptions (
    id           text        PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9._-]{0,63}$'),
    display_name text,
    team         text,
    cost_center  text,
    product      text        REFERENCES products (name),
    state        text        NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'suspended', 'cancelled')),
    -- Why the subscription is not active, in words a caller can read (shown in the 403).
    state_reason text,
    -- Who set the state: 'config', 'admin:<name>', 'rules-engine'. Rollover re-enables only what the rules engine suspended.
    state_actor  text        NOT NULL DEFAULT 'config',
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- Subscription keys: only a SHA-256 of the key and a short visible prefix are stored.
CREATE TABLE subscription_keys (
    id              uuid        PRIMARY KEY,
    subscription_id text        NOT NULL REFERENCES subscriptions (id),
    slot            text        NOT NULL CHECK (slot IN ('primary', 'secondary')),
    prefix          text        NOT NULL,
    key_hash        bytea       NOT NULL UNIQUE CHECK (octet_length(key_hash) = 32),
    created_at      timestamptz NOT NULL DEFAULT now(),
    revoked_at      timestamptz
);
-- At most one live key per slot, so rotation is: create secondary, move clients, revoke primary.
CREATE UNIQUE INDEX subscription_keys_one_live_per_slot ON subscription_keys (subscription_id, slot) WHERE revoked_at IS NULL;

-- Wakes every instance's catalog cache when keys, subscriptions or backends change.
CREATE FUNCTION tollgate_notify_catalog() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('tollgate_catalog', TG_TABLE_NAME);
    RETURN NULL;
END $$;
CREATE TRIGGER backends_changed AFTER INSERT OR UPDATE OR DELETE ON backends FOR EACH STATEMENT EXECUTE FUNCTION tollgate_notify_catalog();
CREATE TRIGGER deployments_changed AFTER INSERT OR UPDATE OR DELETE ON backend_deployments FOR EACH STATEMENT EXECUTE FUNCTION tollgate_notify_catalog();
CREATE TRIGGER products_changed AFTER INSERT OR UPDATE OR DELETE ON products FOR EACH STATEMENT EXECUTE FUNCTION tollgate_notify_catalog();
CREATE TRIGGER subscriptions_changed AFTER INSERT OR UPDATE OR DELETE ON subscriptions FOR EACH STATEMENT EXECUTE FUNCTION tollgate_notify_catalog();
CREATE TRIGGER keys_changed AFTER INSERT OR UPDATE OR DELETE ON subscription_keys FOR EACH STATEMENT EXECUTE FUNCTION tollgate_notify_catalog();
