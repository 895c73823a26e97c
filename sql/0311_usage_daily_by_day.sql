-- 0311_usage_daily_by_day.sql: reporting.usage_daily for a month in time that does not grow with history or traffic.
--
-- Measured by bench/run-chargeback.sh (PG 15, October with 1M and 10M events, 37,200 daily rollup rows), finance's
-- "one month by day" (`WHERE usage_date >= … AND usage_date < …`, grouped by day): 99 ms at 1M, 116 ms at 10M. The 0101
-- view prices every billing line of all history (four range joins per line), then groups the lines on a dozen columns
-- with a sort that spills to disk at the default work_mem; a filter on usage_date reaches the rollup only as a filter on
-- an expression of day_start, so every month is read, and the split-day branch plans a parallel scan of usage_hourly.
-- Now:
--   * one call of tollgate_usage_day(day) per UTC day, over the days from the first to the last in the daily rollup.
--     The days are generated, not read, so a filter on usage_date (or on the new period_start) selects the days before
--     anything is read, and each day is read by index (usage_daily_rollup's key starts with day_start);
--   * a daily rollup row on a day no price starts inside is already one row of the view: its key is the view's key,
--     and all of it is priced with the one version in force at the start of the day. It is priced on its own, not grouped
--     again. Only the hours of days a price version of the model starts inside are grouped, as before.
-- Every column keeps its name, type and value (tested against the 0101 definition). `period_start` is added at the end.

-- One UTC day of reporting.usage_daily: `usage_day` is the day's first instant (00:00 UTC). Daily rollup rows of the
-- day, except for models a price version starts inside the day (prices start on whole hours), whose hourly rows are
-- grouped by the view's key instead; each priced with the most specific version in force at the start of its span
-- (deployment price, else backend price, else model-wide), as in priced_usage_lines (sql/0101). `list_cost` is NULL
-- when no price is in force.
CREATE FUNCTION tollgate_usage_day(usage_day timestamptz)
RETURNS TABLE (
    subscription_id text, team text, cost_center text, product text, backend text, deployment text, model text, usage_source text,
    requests bigint, prompt_tokens bigint, cached_tokens bigint, completion_tokens bigint, reasoning_tokens bigint, total_tokens bigint,
    priced boolean, list_cost numeric, currency text, committed boolean)
LANGUAGE sql STABLE PARALLEL SAFE
-- A day is read by index and priced by hash joins on a handful of price versions. Parallel workers would only add
-- start-up for ~1,000 rows; and a plan the view's caller makes for a long history (estimated from 1,000 generated days
-- by default) must not cross jit_above_cost: compiling costs more than running (measured: 1.3 s instead of 90 ms for
-- all of a month's rows when the view's own joins were planned in the caller's query).
SET max_parallel_workers_per_gather = 0
SET jit = off
-- reporting.usage_daily calls it for tollgate_reader, who may read the reporting views but no table: it runs with its
-- owner's rights, on the tables of the schema it was created in, and only the owner and tollgate_reader may call it.
SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
SELECT d.subscription_id, d.team, d.cost_center, d.product, d.backend, d.deployment, d.model, d.usage_source,
    d.requests, d.prompt_tokens, d.cached_tokens, d.completion_tokens, d.reasoning_tokens, d.total_tokens,
    p.id IS NOT NULL,
    -- The formula of priced_usage_lines.
    ((d.prompt_tokens - d.cached_tokens) * p.input_per_1m
        + d.cached_tokens * coalesce(p.cached_input_per_1m, p.input_per_1m)
        + CASE WHEN p.reasoning_per_1m IS NULL THEN d.completion_tokens * p.output_per_1m
               ELSE (d.completion_tokens - d.reasoning_tokens) * p.output_per_1m + d.reasoning_tokens * p.reasoning_per_1m END
    ) * 0.000001,
    p.currency, c.backend IS NOT NULL
FROM usage_daily_rollup d
LEFT JOIN model_price_versions pd ON pd.model = d.model AND pd.backend = d.backend AND pd.deployment = d.deployment AND pd.deployment <> ''
    AND usage_day >= pd.effective_from AND usage_day < pd.effective_to
LEFT JOIN model_price_versions pb ON pb.model = d.model AND pb.backend = d.backend AND pb.backend <> '' AND pb.deployment = ''
    AND usage_day >= pb.effective_from AND usage_day < pb.effective_to
LEFT JOIN model_price_versions pm ON pm.model = d.model AND pm.backend = '' AND pm.deployment = ''
    AND usage_day >= pm.effective_from AND usage_day < pm.effective_to
LEFT JOIN model_prices p ON p.id = coalesce(pd.id, pb.id, pm.id)
LEFT JOIN ptu_commitment_versions c ON c.backend = d.backend AND c.monthly_amount > 0
    AND usage_day >= c.effective_from AND usage_day < c.effective_to
WHERE d.day_start = usage_day
    AND NOT EXISTS (SELECT 1 FROM price_split_days s WHERE s.model = d.model AND s.day_start = usage_day)
UNION ALL
SELECT u.subscription_id, u.team, u.cost_center, u.product, u.backend, u.deployment, u.model, u.usage_source,
    sum(u.requests)::bigint, sum(u.prompt_tokens)::bigint, sum(u.cached_tokens)::bigint, sum(u.completion_tokens)::bigint,
    sum(u.reasoning_tokens)::bigint, sum(u.total_tokens)::bigint,
    p.id IS NOT NULL,
    sum(((u.prompt_tokens - u.cached_tokens) * p.input_per_1m
        + u.cached_tokens * coalesce(p.cached_input_per_1m, p.input_per_1m)
        + CASE WHEN p.reasoning_per_1m IS NULL THEN u.completion_tokens * p.output_per_1m
               ELSE (u.completion_tokens - u.reasoning_tokens) * p.output_per_1m + u.reasoning_tokens * p.reasoning_per_1m END
    ) * 0.000001),
    p.currency, c.backend IS NOT NULL
FROM price_split_days s
JOIN usage_hourly u ON u.model = s.model AND u.hour_start >= usage_day AND u.hour_start < usage_day + interval '24 hours'
LEFT JOIN model_price_versions pd ON pd.model = u.model AND pd.backend = u.backend AND pd.deployment = u.deployment AND pd.deployment <> ''
    AND u.hour_start >= pd.effective_from AND u.hour_start < pd.effective_to
LEFT JOIN model_price_versions pb ON pb.model = u.model AND pb.backend = u.backend AND pb.backend <> '' AND pb.deployment = ''
    AND u.hour_start >= pb.effective_from AND u.hour_start < pb.effective_to
LEFT JOIN model_price_versions pm ON pm.model = u.model AND pm.backend = '' AND pm.deployment = ''
    AND u.hour_start >= pm.effective_from AND u.hour_start < pm.effective_to
LEFT JOIN model_prices p ON p.id = coalesce(pd.id, pb.id, pm.id)
LEFT JOIN ptu_commitment_versions c ON c.backend = u.backend AND c.monthly_amount > 0
    AND u.hour_start >= c.effective_from AND u.hour_start < c.effective_to
WHERE s.day_start = usage_day
GROUP BY u.subscription_id, u.team, u.cost_center, u.product, u.backend, u.deployment, u.model, u.usage_source,
    p.id IS NOT NULL, p.currency, c.backend IS NOT NULL
$$;

REVOKE EXECUTE ON FUNCTION tollgate_usage_day(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tollgate_usage_day(timestamptz) TO tollgate_reader;

-- Same columns, rows and values as before (0101), plus `period_start`: the UTC month of usage_date. One call per day
-- from the first to the last day of the daily rollup (which holds every day usage_hourly has, at every commit); the days
-- are generated in UTC as timestamps, so neither the list nor usage_date depends on the session's time zone.
CREATE OR REPLACE VIEW reporting.usage_daily AS
SELECT g.usage_date, x.subscription_id, x.team, x.cost_center, x.product, x.backend, x.deployment, x.model, x.usage_source,
    x.requests, x.prompt_tokens, x.cached_tokens, x.completion_tokens, x.reasoning_tokens, x.total_tokens,
    x.priced, x.list_cost, x.currency, x.committed, g.period_start
FROM (
    SELECT day::date AS usage_date, day AT TIME ZONE 'UTC' AS day_start, date_trunc('month', day) AT TIME ZONE 'UTC' AS period_start
    FROM (SELECT min(day_start) AS first_day, max(day_start) AS last_day FROM usage_daily_rollup) b,
        generate_series(b.first_day AT TIME ZONE 'UTC', b.last_day AT TIME ZONE 'UTC', interval '1 day') day
) g
CROSS JOIN LATERAL tollgate_usage_day(g.day_start) x;
