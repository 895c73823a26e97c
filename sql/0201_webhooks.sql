-- 0201_webhooks.sql: Standard Webhooks endpoints, their signing secrets, and a durable outbox.
-- Messages are enqueued in the same transaction as the state change they announce, so a committed change is
-- always announced and a rolled-back one never is.

CREATE TABLE webhook_endpoints (
    id              uuid        PRIMARY KEY,
    url             text        NOT NULL CHECK (url ~ '^https?://'),
    description     text,
    -- Event types this endpoint receives; empty means all.
    event_types     text[]      NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- Set when the receiver answered 410 Gone, or by an administrator. Disabled endpoints get nothing new.
    disabled_at     timestamptz,
    disabled_reason text
);

-- Signing secrets, `whsec_` + base64. Several may be live during a rotation: each message carries one signature per
-- live secret, so receivers can switch at their own pace. A secret signs until `expires_at`.
-- Stored as given because signing needs the key itself; the database is the trust boundary, as for subscription state.
CREATE TABLE webhook_secrets (
    id          bigserial   PRIMARY KEY,
    endpoint_id uuid        NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    secret      text        NOT NULL CHECK (secret ~ '^whsec_[A-Za-z0-9+/]+={0,2}$'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz
);
CREATE INDEX webhook_secrets_by_endpoint ON webhook_secrets (endpoint_id);

-- One message per event; its id is the `webhook-id` header, the same on every retry and every endpoint.
-- The body is stored as sent, byte for byte, because the signature covers it.
CREATE TABLE webhook_messages (
    id         text        PRIMARY KEY CHECK (id ~ '^msg_[A-Za-z0-9]+$'),
    event_type text        NOT NULL,
    body       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- One row per message and endpoint: what remains to deliver.
CREATE TABLE webhook_outbox (
    message_id       text        NOT NULL REFERENCES webhook_messages (id),
    endpoint_id      uuid        NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    -- pending: to send at next_attempt_at; delivered: 2xx seen; failed: retries exhausted; cancelled: endpoint disabled.
    status           text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed', 'cancelled')),
    attempts         integer     NOT NULL DEFAULT 0,
    -- Also the lease: a dispatcher that claims a row pushes this forward, so a crash mid-send means a retry, not a loss.
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    first_attempt_at timestamptz,
    last_attempt_at  timestamptz,
    delivered_at     timestamptz,
    last_http_status integer,
    last_error       text,
    PRIMARY KEY (message_id, endpoint_id)
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (next_attempt_at) WHERE status = 'pending';

-- Every attempt, for `tollgate webhooks deliveries` and GET /admin/v1/webhooks/deliveries.
CREATE TABLE webhook_deliveries (
    id           bigserial   PRIMARY KEY,
    message_id   text        NOT NULL,
    endpoint_id  uuid        NOT NULL,
    event_type   text        NOT NULL,
    attempt      integer     NOT NULL,
    attempted_at timestamptz NOT NULL,
    duration_ms  integer     NOT NULL,
    http_status  integer,
    -- Transport or policy error in words (never the body or a secret).
    error        text,
    outcome      text        NOT NULL CHECK (outcome IN ('delivered', 'retrying', 'failed', 'endpoint_disabled'))
);
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint_id, attempted_at);
CREATE INDEX webhook_deliveries_by_message ON webhook_deliveries (message_id);

-- Wakes the dispatchers at commit.
CREATE FUNCTION tollgate_notify_webhooks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('tollgate_webhooks', '');
    RETURN NULL;
END $$;
CREATE TRIGGER webhook_outbox_enqueued AFTER INSERT ON webhook_outbox FOR EACH STATEMENT EXECUTE FUNCTION tollgate_notify_webhooks();
