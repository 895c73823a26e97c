-- 0301_rollup_lock_order.sql: the daily-rollup triggers no longer deadlock two writers.
-- An `INSERT … ON CONFLICT DO UPDATE` into usage_hourly fires both the INSERT and the UPDATE statement triggers, each
-- upserting usage_daily_rollup rows: two writers touching the same days could take those row locks in different
-- orders and deadlock (seen by the ingestion benchmark with two connections). A deadlocked batch is rolled back and
-- retried by the writer from its spool, so no usage is lost, but each retry costs a batch. The triggers now take a
-- transaction-level advisory lock first (held to commit; the hourly rows are already locked by then, in key order,
-- so no cycle can form) and upsert in key order.

CREATE OR REPLACE FUNCTION tollgate_usage_hourly_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    closed_through timestamptz;
BEGIN
    PERFORM pg_advisory_xact_lock(7428190301);
    INSERT INTO usage_daily_rollup AS d (day_start, subscription_id, product, team, cost_center, backend, deployment, model, usage_source,
        requests, prompt_tokens, completion_tokens, total_tokens, cached_tokens, reasoning_tokens)
    SELECT date_trunc('day', n.hour_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', n.subscription_id, n.product, n.team, n.cost_center,
        n.backend, n.deployment, n.model, n.usage_source, sum(n.requests), sum(n.prompt_tokens), sum(n.completion_tokens),
        sum(n.total_tokens), sum(n.cached_tokens), sum(n.reasoning_tokens)
    FROM new_rows n
    GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
    ORDER BY 1, 2, 3, 4, 5, 6, 7, 8, 9
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

CREATE OR REPLACE FUNCTION tollgate_usage_hourly_updated() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    closed_through timestamptz;
BEGIN
    PERFORM pg_advisory_xact_lock(7428190301);
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
    ORDER BY 1, 2, 3, 4, 5, 6, 7, 8, 9
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
