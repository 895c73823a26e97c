-- 0100_prices_ptu_periods.sql: effective-dated prices, PTU commitments, billing period closes and late usage.
-- Money is numeric(20, 10); times are timestamptz; months are UTC and half-open, [start, next start).

-- The first instant of the UTC month containing `t`. IMMUTABLE is true: the time zone is spelled out, not the session's.
CREATE FUNCTION tollgate_month_start(t timestamptz) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN date_trunc('month', t AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';

-- The first instant of the following UTC month.
CREATE FUNCTION tollgate_month_end(t timestamptz) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN (date_trunc('month', t AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC';

-- One version of a model's price per 1M tokens of each kind. A version is in force from effective_from until the next
-- version of the same (model, backend, deployment) starts. Rows are never updated or deleted: a change is a new version.
CREATE TABLE model_prices (
    id                  bigint         GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    model               text           NOT NULL CHECK (model <> ''),
    backend             text           NOT NULL DEFAULT '',  -- '' = any backend
    deployment          text           NOT NULL DEFAULT '',  -- '' = any deployment; a deployment price names its backend too
    currency            text           NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    -- On a whole UTC hour, because usage is rolled up by the hour.
    effective_from      timestamptz    NOT NULL CHECK (effective_from = date_trunc('hour', effective_from AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'),
    input_per_1m        numeric(20, 10) NOT NULL CHECK (input_per_1m >= 0),
    cached_input_per_1m numeric(20, 10) CHECK (cached_input_per_1m >= 0),  -- NULL: cached input billed as input
    output_per_1m       numeric(20, 10) NOT NULL CHECK (output_per_1m >= 0),
    reasoning_per_1m    numeric(20, 10) CHECK (reasoning_per_1m >= 0),     -- NULL: reasoning billed as output
    -- The price list this version came from ("prices-2026-10.csv@1a2b3c4d5e6f"), reported as the price-list version used.
    price_list          text           NOT NULL,
    imported_at         timestamptz    NOT NULL DEFAULT now(),
    UNIQUE (model, backend, deployment, effective_from),
    CHECK (deployment = '' OR backend <> '')
);

-- Each price version with the end of its validity (the next version's start, or infinity).
CREATE VIEW model_price_versions AS
SELECT p.*, lead(p.effective_from, 1, 'infinity') OVER (PARTITION BY p.model, p.backend, p.deployment ORDER BY p.effective_from) AS effective_to
FROM model_prices p;

-- A fixed monthly commitment on a backend (provisioned throughput, PTU). In force from effective_from (the first of a
-- UTC month) until the backend's next row; a row with monthly_amount 0 ends the commitment.
CREATE TABLE ptu_commitments (
    backend        text            NOT NULL,
    effective_from timestamptz     NOT NULL CHECK (effective_from = tollgate_month_start(effective_from)),
    monthly_amount numeric(20, 10) NOT NULL CHECK (monthly_amount >= 0),
    currency       text            NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    description    text,
    created_at     timestamptz     NOT NULL DEFAULT now(),
    PRIMARY KEY (backend, effective_from)
);

CREATE VIEW ptu_commitment_versions AS
SELECT c.*, lead(c.effective_from, 1, 'infinity') OVER (PARTITION BY c.backend ORDER BY c.effective_from) AS effective_to
FROM ptu_commitments c;

-- Closed billing months. The books are closed through max(period_end): every hour before it is frozen. Months close
-- in order, so this is a prefix of time; usage that lands later for a frozen hour is booked in usage_corrections.
CREATE TABLE billing_period_closes (
    period_start timestamptz PRIMARY KEY CHECK (period_start = tollgate_month_start(period_start)),
    period_end   timestamptz NOT NULL UNIQUE CHECK (period_end = tollgate_month_end(period_start)),
    closed_at    timestamptz NOT NULL DEFAULT now(),
    closed_by    text        NOT NULL
);

-- Late usage: the part of an hourly rollup row that landed after its hour was closed, booked in the first open month
-- at the time it landed. Written only by the trigger below.
CREATE TABLE usage_corrections (
    id                  bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    booked_period_start timestamptz NOT NULL,
    hour_start          timestamptz NOT NULL,
    subscription_id     text        NOT NULL,
    product             text        NOT NULL,
    team                text        NOT NULL,
    cost_center         text        NOT NULL,
    backend             text        NOT NULL,
    deployment          text        NOT NULL,
    model               text        NOT NULL,
    usage_source        text        NOT NULL,
    requests            bigint      NOT NULL,
    prompt_tokens       bigint      NOT NULL,
    completion_tokens   bigint      NOT NULL,
    total_tokens        bigint      NOT NULL,
    cached_tokens       bigint      NOT NULL,
    reasoning_tokens    bigint      NOT NULL,
    recorded_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX usage_corrections_by_booking ON usage_corrections (booked_period_start);
CREATE INDEX usage_corrections_by_hour ON usage_corrections (hour_start);

-- A closed month's money must not move: prices are append-only and may not start inside closed time, and
-- commitments of closed months may not change.
CREATE FUNCTION tollgate_guard_closed_prices() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    closed_through timestamptz;
BEGIN
    IF TG_OP <> 'INSERT' THEN
        RAISE EXCEPTION 'prices are versioned: add a version with a later effective_from instead of changing or deleting one'
            USING ERRCODE = 'check_violation';
    END IF;
    SELECT max(period_end) INTO closed_through FROM billing_period_closes;
    IF closed_through IS NOT NULL AND NEW.effective_from < closed_through THEN
        RAISE EXCEPTION 'price for % starts at %, inside a closed billing period (closed through %)', NEW.model, NEW.effective_from, closed_through
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER model_prices_guard BEFORE INSERT OR UPDATE OR DELETE ON model_prices
    FOR EACH ROW EXECUTE FUNCTION tollgate_guard_closed_prices();

CREATE FUNCTION tollgate_guard_closed_commitments() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    closed_through timestamptz;
BEGIN
    SELECT max(period_end) INTO closed_through FROM billing_period_closes;
    IF closed_through IS NOT NULL AND (
        (TG_OP <> 'DELETE' AND NEW.effective_from < closed_through) OR (TG_OP <> 'INSERT' AND OLD.effective_from < closed_through)) THEN
        RAISE EXCEPTION 'the commitment of a closed billing period cannot change (closed through %)', closed_through
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END $$;
CREATE TRIGGER ptu_commitments_guard BEFORE INSERT OR UPDATE OR DELETE ON ptu_commitments
    FOR EACH ROW EXECUTE FUNCTION tollgate_guard_closed_commitments();

-- Daily aggregates of the hourly rollup, kept in step by statement-level triggers (one upsert per writer statement,
-- from the rows it inserted or increased). Monthly reports read a day from here unless a price version of its model
-- starts inside that day, in which case they read that day's hours: prices start on whole hours, not whole days.
CREATE TABLE usage_daily_rollup (
    day_start         timestamptz NOT NULL CHECK (day_start = date_trunc('day', day_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'),
    subscription_id   text        NOT NULL,
    product           text        NOT NULL,
    team              text        NOT NULL,
    cost_center       text        NOT NULL,
    backend           text        NOT NULL,
    deployment        text        NOT NULL,
    model             text        NOT NULL,
    usage_source      text        NOT NULL,
    requests          bigint      NOT NULL,
    prompt_tokens     bigint      NOT NULL,
    completion_tokens bigint      NOT NULL,
    total_tokens      bigint      NOT NULL,
    cached_tokens     bigint      NOT NULL,
    reasoning_tokens  bigint      NOT NULL,
    PRIMARY KEY (day_start, subscription_id, product, team, cost_center, backend, deployment, model, usage_source)
);

-- Statement-level, so the usage writer pays one upsert per statement, not one call per rollup row.
-- Late usage: the part of a rollup row that lands after its hour was closed is booked in usage_corrections, in the first
-- open month (the books' end, since months close in order). The close takes a SHARE lock on usage_hourly, so no writer
-- is mid-transaction across a close.
CREATE FUNCTION tollgate_usage_hourly_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    closed_through timestamptz;
BEGIN
    INSERT INTO usage_daily_rollup AS d (day_start, subscription_id, product, team, cost_center, backend, deployment, model, usage_source,
        requests, prompt_tokens, completion_tokens, total_tokens, cached_tokens, reasoning_tokens)
    SELECT date_trunc('day', n.hour_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', n.subscription_id, n.product, n.team, n.cost_center,
        n.backend, n.deployment, n.model, n.usage_source, sum(n.requests), sum(n.prompt_tokens), sum(n.completion_tokens),
        sum(n.total_tokens), sum(n.cached_tokens), sum(n.reasoning_tokens)
    FROM new_rows n
    GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
    ON CONFLICT (day_start, subscription_id, product, team, cost_center, backend, deployment, model, usage_source) DO UPDATE SET
        requests = d.requests + EXCLUDED.requests, prompt_tokens = d.prompt_tokens + EXCLUDED.prompt_tokens,
        completion_tokens = d.completion_tokens + EXCLUDED.completion_tokens, total_tokens = d.total_tokens + EXCLUDED.total_tokens,
        cached_tokens = d.cached_tokens + EXCLUDED.cached_tokens, reasoning_tokens = d.reasoning_tokens + EXCLUDED.reasoning_tokens;
    SELECT max(period_end) INTO closed_through FROM billing_period_closes;
    IF closed_through IS NOT NULL THEN
        INSERT INTO usage_corrections (booked_period_start, hour_start, subscription_id, product, team, cost_center, backend,
            deployment, model, usage_source, requests, prompt_tokens, completion_tokens, total_tokens, cached_tokens, reasoning_tokens)
        SELECT closed_through, n.hour_start, n.subscription_id, n.product, n.team, n.cost_center, n.backend, n.deployment, n.model,
            n.usage_source, n.requests, n.prompt_tokens, n.completion_tokens, n.total_tokens, n.cached_tokens, n.reasoning_tokens
        FROM new_rows n
        WHERE n.hour_start < closed_through;
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION tollgate_usage_hourly_updated() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    closed_through timestamptz;
BEGIN
    SELECT max(period_end) INTO closed_through FROM billing_period_closes;
    WITH delta AS (
        SELECT n.hour_start, n.subscription_id, n.product, n.team, n.cost_center, n.backend, n.deployment, n.model, n.usage_source,
            n.requests - o.requests AS requests, n.prompt_tokens - o.prompt_tokens AS prompt_tokens,
            n.completion_tokens - o.completion_tokens AS completion_tokens, n.total_tokens - o.total_tokens AS total_tokens,
            n.cached_tokens - o.cached_tokens AS cached_tokens, n.reasoning_tokens - o.reasoning_tokens AS reasoning_tokens
        FROM new_rows n
        JOIN old_rows o USING (hour_start, subscription_id, product, team, cost_center, backend, deployment, model, usage_source)
    ), daily AS (
        INSERT INTO usage_daily_rollup AS d (day_start, subscription_id, product, team, cost_center, backend, deployment, model, usage_source,
            requests, prompt_tokens, completion_tokens, total_tokens, cached_tokens, reasoning_tokens)
        SELECT date_trunc('day', x.hour_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', x.subscription_id, x.product, x.team, x.cost_center,
            x.backend, x.deployment, x.model, x.usage_source, sum(x.requests), sum(x.prompt_tokens), sum(x.completion_tokens),
            sum(x.total_tokens), sum(x.cached_tokens), sum(x.reasoning_tokens)
        FROM delta x
        GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
        ON CONFLICT (day_start, subscription_id, product, team, cost_center, backend, deployment, model, usage_source) DO UPDATE SET
            requests = d.requests + EXCLUDED.requests, prompt_tokens = d.prompt_tokens + EXCLUDED.prompt_tokens,
            completion_tokens = d.completion_tokens + EXCLUDED.completion_tokens, total_tokens = d.total_tokens + EXCLUDED.total_tokens,
            cached_tokens = d.cached_tokens + EXCLUDED.cached_tokens, reasoning_tokens = d.reasoning_tokens + EXCLUDED.reasoning_tokens
    )
    INSERT INTO usage_corrections (booked_period_start, hour_start, subscription_id, product, team, cost_center, backend,
        deployment, model, usage_source, requests, prompt_tokens, completion_tokens, total_tokens, cached_tokens, reasoning_tokens)
    SELECT closed_through, x.hour_start, x.subscription_id, x.product, x.team, x.cost_center, x.backend, x.deployment, x.model,
        x.usage_source, x.requests, x.prompt_tokens, x.completion_tokens, x.total_tokens, x.cached_tokens, x.reasoning_tokens
    FROM delta x
    WHERE closed_through IS NOT NULL AND x.hour_start < closed_through;
    RETURN NULL;
END $$;

CREATE TRIGGER usage_hourly_inserted AFTER INSERT ON usage_hourly
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION tollgate_usage_hourly_inserted();
CREATE TRIGGER usage_hourly_updated AFTER UPDATE ON usage_hourly
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION tollgate_usage_hourly_updated();

-- Usage that landed before this migration.
INSERT INTO usage_daily_rollup (day_start, subscription_id, product, team, cost_center, backend, deployment, model, usage_source,
    requests, prompt_tokens, completion_tokens, total_tokens, cached_tokens, reasoning_tokens)
SELECT date_trunc('day', hour_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', subscription_id, product, team, cost_center, backend,
    deployment, model, usage_source, sum(requests), sum(prompt_tokens), sum(completion_tokens), sum(total_tokens), sum(cached_tokens),
    sum(reasoning_tokens)
FROM usage_hourly GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9;
