-- 0200_budgets.sql: budgets, the state that makes each threshold fire once per period, what the rules engine
-- suspended (so rollover re-enables exactly that), one-off increases, and the append-only audit trail.

CREATE TABLE budgets (
    name         text          PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,63}$'),
    scope_kind   text          NOT NULL CHECK (scope_kind IN ('subscription', 'product', 'team', 'cost_center', 'all')),
    scope_value  text,
    metric       text          NOT NULL CHECK (metric IN ('tokens', 'cost')),
    -- ISO 4217; cost budgets only. Cost is summed in this currency alone.
    currency     text          CHECK (currency ~ '^[A-Z]{3}$'),
    period       text          NOT NULL CHECK (period IN ('daily', 'weekly', 'monthly', 'yearly')),
    -- Periods start at midnight in this IANA zone. Usage is rolled up per UTC hour, so zones with a non-whole-hour
    -- offset (Asia/Kolkata) see their period edges at the enclosing UTC hour.
    time_zone    text          NOT NULL DEFAULT 'UTC',
    -- Tokens or an amount of `currency`: numeric, never float. Wider than money columns since yearly token limits run to 10^11.
    limit_amount numeric(30, 10) NOT NULL CHECK (limit_amount > 0),
    forecast     boolean       NOT NULL DEFAULT true,
    -- 'config' (tollgate apply replaces these) or 'admin:<name>' (admin API; apply leaves them alone).
    source       text          NOT NULL DEFAULT 'config',
    created_at   timestamptz   NOT NULL DEFAULT now(),
    updated_at   timestamptz   NOT NULL DEFAULT now(),
    CHECK ((scope_kind = 'all') = (scope_value IS NULL)),
    CHECK ((metric = 'cost') = (currency IS NOT NULL))
);

CREATE TABLE budget_thresholds (
    budget  text    NOT NULL REFERENCES budgets (name) ON DELETE CASCADE,
    percent integer NOT NULL CHECK (percent BETWEEN 1 AND 1000),
    action  text    NOT NULL CHECK (action IN ('alert', 'suspend')),
    PRIMARY KEY (budget, percent)
);

-- A threshold (or the forecast alert, percent 0) fires once per budget per period: the primary key is the guarantee,
-- even if two evaluators ever overlap during a leader change.
CREATE TABLE budget_firings (
    budget       text            NOT NULL REFERENCES budgets (name) ON DELETE CASCADE,
    period_start timestamptz     NOT NULL,
    signal       text            NOT NULL CHECK (signal IN ('threshold', 'forecast')),
    percent      integer         NOT NULL,
    measured     numeric(30, 10) NOT NULL,
    limit_amount numeric(30, 10) NOT NULL,
    fired_at     timestamptz     NOT NULL DEFAULT now(),
    PRIMARY KEY (budget, period_start, signal, percent),
    CHECK ((signal = 'forecast') = (percent = 0))
);

-- One-off increases of a budget's limit for one period (`tollgate subscriptions resume ID --increase N`).
CREATE TABLE budget_adjustments (
    id           bigserial       PRIMARY KEY,
    budget       text            NOT NULL REFERENCES budgets (name) ON DELETE CASCADE,
    period_start timestamptz     NOT NULL,
    amount       numeric(30, 10) NOT NULL CHECK (amount > 0),
    actor        text            NOT NULL,
    reason       text            NOT NULL,
    created_at   timestamptz     NOT NULL DEFAULT now()
);
CREATE INDEX budget_adjustments_by_period ON budget_adjustments (budget, period_start);

-- What the rules engine suspended, for which budget and period. Rollover releases exactly these rows, and only while
-- the subscription is still suspended by the rules engine (an administrator's later suspension wins).
CREATE TABLE budget_suspensions (
    budget          text        NOT NULL REFERENCES budgets (name) ON DELETE CASCADE,
    subscription_id text        NOT NULL REFERENCES subscriptions (id),
    period_start    timestamptz NOT NULL,
    period_end      timestamptz NOT NULL,
    -- pending: decided, adapter not yet confirmed (retried every evaluation); suspended: in force;
    -- released: reactivated at rollover or resumed by hand; superseded: someone else changed the state since.
    status          text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'suspended', 'released', 'superseded')),
    requested_at    timestamptz NOT NULL DEFAULT now(),
    suspended_at    timestamptz,
    released_at     timestamptz,
    released_by     text,
    adapter_result  text,
    PRIMARY KEY (budget, subscription_id, period_start),
    CHECK (period_start < period_end)
);
CREATE INDEX budget_suspensions_open ON budget_suspensions (period_end) WHERE status IN ('pending', 'suspended');

-- Every action the rules engine or an administrator took: append-only (a trigger refuses UPDATE and DELETE).
-- No foreign keys: the record outlives a budget removed from tollgate.yaml.
CREATE TABLE budget_audit (
    id                bigserial       PRIMARY KEY,
    occurred_at       timestamptz     NOT NULL DEFAULT clock_timestamp(),
    budget            text,
    subscription_id   text,
    period_start      timestamptz,
    period_end        timestamptz,
    event             text            NOT NULL CHECK (event IN (
                          'threshold_crossed', 'exceeded', 'forecast_exceeded', 'suspended', 'reactivated',
                          'suspend_failed', 'resume_failed', 'suspend_skipped', 'resume_skipped', 'limit_increased')),
    measured          numeric(30, 10),
    limit_amount      numeric(30, 10),
    threshold_percent integer,
    action            text            NOT NULL CHECK (action IN ('alert', 'suspend', 'resume', 'increase')),
    adapter           text,
    adapter_result    text,
    -- 'rules-engine' or 'admin:<name>'.
    actor             text            NOT NULL,
    reason            text
);
CREATE INDEX budget_audit_by_budget ON budget_audit (budget, occurred_at);
CREATE INDEX budget_audit_by_subscription ON budget_audit (subscription_id, occurred_at);

CREATE FUNCTION tollgate_budget_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER budget_audit_append_only BEFORE UPDATE OR DELETE ON budget_audit FOR EACH ROW EXECUTE FUNCTION tollgate_budget_audit_append_only();
CREATE TRIGGER budget_audit_no_truncate BEFORE TRUNCATE ON budget_audit FOR EACH STATEMENT EXECUTE FUNCTION tollgate_budget_audit_append_only();

-- The period of `period` kind containing `at`, with midnight in `time_zone`; weeks start on Monday (ISO 8601),
-- as `BillingPeriod.containing` does in Swift.
CREATE FUNCTION tollgate_period_bounds(period text, time_zone text, at timestamptz,
                                       OUT period_start timestamptz, OUT period_end timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT date_trunc(u.unit, at AT TIME ZONE time_zone) AT TIME ZONE time_zone,
           (date_trunc(u.unit, at AT TIME ZONE time_zone) + ('1 ' || u.unit)::interval) AT TIME ZONE time_zone
    FROM (SELECT CASE period WHEN 'daily' THEN 'day' WHEN 'weekly' THEN 'week' WHEN 'monthly' THEN 'month' ELSE 'year' END AS unit) u
$$;

-- A budget's use over [from_time, to_time), from the hourly rollup (never the raw ledger). Cost budgets read
-- `priced_usage_hourly` (provided by the chargeback migrations), in the budget's currency only. PL/pgSQL resolves
-- that view when a cost budget is first measured, not when this function is created.
CREATE FUNCTION tollgate_budget_measure(scope_kind text, scope_value text, metric text, budget_currency text,
                                        from_time timestamptz, to_time timestamptz)
RETURNS numeric LANGUAGE plpgsql STABLE AS $$
DECLARE
    result numeric;
BEGIN
    IF metric = 'tokens' THEN
        SELECT coalesce(sum(h.total_tokens), 0) INTO result FROM usage_hourly h
        WHERE h.hour_start >= from_time AND h.hour_start < to_time
          AND (scope_kind = 'all'
               OR (scope_kind = 'subscription' AND h.subscription_id = scope_value)
               OR (scope_kind = 'product' AND h.product = scope_value)
               OR (scope_kind = 'team' AND h.team = scope_value)
               OR (scope_kind = 'cost_center' AND h.cost_center = scope_value));
    ELSE
        SELECT coalesce(sum(p.cost), 0) INTO result FROM priced_usage_hourly p
        WHERE p.hour_start >= from_time AND p.hour_start < to_time AND p.currency = budget_currency
          AND (scope_kind = 'all'
               OR (scope_kind = 'subscription' AND p.subscription_id = scope_value)
               OR (scope_kind = 'product' AND p.product = scope_value)
               OR (scope_kind = 'team' AND p.team = scope_value)
               OR (scope_kind = 'cost_center' AND p.cost_center = scope_value));
    END IF;
    RETURN result;
END $$;
