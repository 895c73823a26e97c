-- 0310_chargeback_by_month.sql: a month's chargeback in time that does not grow with history or traffic.
--
-- Measured by bench/run-chargeback.sh (PG 15, October with 1M and 10M events, 37,200 daily rollup rows):
--   * the export's query priced every daily rollup row (four range joins and a numeric cost per row) and then sorted
--     those wide rows on 13 keys to group them (a sort that spilled to disk): ~145 ms for 1,500 result rows;
--   * reporting.chargeback_monthly grouped every month there is (its CTE is read twice, so it is materialised and a
--     filter on period_start is applied only after all of history was priced and grouped): ~450 ms for one month.
-- Now the month's quantities are grouped first (by everything the price and the commitment depend on) and priced
-- once per group: cost is linear in the token counts and numeric arithmetic is exact, so the sums are identical to
-- pricing each row. The view reads one month per LATERAL call, so `WHERE period_start = …` reads that month by
-- index range only.

-- What `billing_month` (the first instant of a UTC month) bills, unrounded, at subscription × product × team × cost
-- center × backend × deployment × model × price version × charge class grain:
--   regular     the month's usage from usage_daily_rollup, except on a day when a price version of the model starts
--               inside the day (prices start on whole hours), whose hours come from usage_hourly; net of the late usage
--               of its hours that was booked into a later month after it closed;
--   correction  late usage of an earlier, closed month booked into this one, priced at the hour it was used.
-- `cost` is the pay-as-you-go list cost at the version in force at the start of each line's span (also on committed
-- backends: the PTU allocation is the caller's); NULL when no price is in force. Rows netting to nothing are left out.
CREATE FUNCTION tollgate_chargeback_facts(billing_month timestamptz)
RETURNS TABLE (
    charge_class text, subscription_id text, product text, team text, cost_center text, backend text, deployment text, model text,
    price_id bigint, price_list text, currency text, committed boolean, commitment_currency text,
    requests bigint, prompt_tokens bigint, cached_tokens bigint, completion_tokens bigint, reasoning_tokens bigint, total_tokens bigint,
    cost numeric, charge_period_start timestamptz, charge_period_end timestamptz)
LANGUAGE sql STABLE PARALLEL SAFE
-- A month is ~40k daily rollup rows (subscription × model × backend × day) grouped on a dozen text columns. With the
-- default 4 MB the grouping sorts and spills to disk (text sorts cost collation comparisons); with room it hashes in
-- ~3 MB. Parallel workers only add start-up and tuple transfer at this size (measured: no gain on 2 cores).
SET work_mem = '32MB'
SET max_parallel_workers_per_gather = 0
-- Compiling the plan (JIT) would cost more than running it; a bigger month must not cross jit_above_cost into it.
SET jit = off
-- reporting.chargeback_monthly calls it for tollgate_reader, who may read the reporting views but no table: it runs with
-- its owner's rights, on the tables of the schema it was created in, and only the owner and tollgate_reader may call it.
SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
WITH lines AS (
    SELECT 'regular'::text AS charge_class, d.day_start AS span_start, d.day_start + interval '24 hours' AS span_end, d.subscription_id,
        d.product, d.team, d.cost_center, d.backend, d.deployment, d.model, d.requests, d.prompt_tokens, d.cached_tokens,
        d.completion_tokens, d.reasoning_tokens, d.total_tokens
    FROM usage_daily_rollup d
    WHERE d.day_start >= billing_month AND d.day_start < tollgate_month_end(billing_month)
        AND NOT EXISTS (SELECT 1 FROM price_split_days s WHERE s.model = d.model AND s.day_start = d.day_start)
    UNION ALL
    SELECT 'regular', u.hour_start, u.hour_start + interval '1 hour', u.subscription_id, u.product, u.team, u.cost_center, u.backend,
        u.deployment, u.model, u.requests, u.prompt_tokens, u.cached_tokens, u.completion_tokens, u.reasoning_tokens, u.total_tokens
    FROM price_split_days s
    JOIN usage_hourly u ON u.model = s.model AND u.hour_start >= s.day_start AND u.hour_start < s.day_start + interval '24 hours'
    WHERE s.day_start >= billing_month AND s.day_start < tollgate_month_end(billing_month)
    UNION ALL
    SELECT 'regular', k.hour_start, k.hour_start + interval '1 hour', k.subscription_id, k.product, k.team, k.cost_center, k.backend,
        k.deployment, k.model, -k.requests, -k.prompt_tokens, -k.cached_tokens, -k.completion_tokens, -k.reasoning_tokens, -k.total_tokens
    FROM usage_corrections k
    WHERE k.hour_start >= billing_month AND k.hour_start < tollgate_month_end(billing_month)
    UNION ALL
    SELECT 'correction', k.hour_start, k.hour_start + interval '1 hour', k.subscription_id, k.product, k.team, k.cost_center, k.backend,
        k.deployment, k.model, k.requests, k.prompt_tokens, k.cached_tokens, k.completion_tokens, k.reasoning_tokens, k.total_tokens
    FROM usage_corrections k
    WHERE k.booked_period_start = billing_month
), grouped AS (
    -- The version in force and the commitment, as in priced_usage_lines: deployment price, else backend price, else model-wide.
    SELECT q.charge_class, q.subscription_id, q.product, q.team, q.cost_center, q.backend, q.deployment, q.model,
        coalesce(pd.id, pb.id, pm.id) AS price_id, c.backend IS NOT NULL AS committed, c.currency AS commitment_currency,
        sum(q.requests) AS requests, sum(q.prompt_tokens) AS prompt_tokens, sum(q.cached_tokens) AS cached_tokens,
        sum(q.completion_tokens) AS completion_tokens, sum(q.reasoning_tokens) AS reasoning_tokens, sum(q.total_tokens) AS total_tokens,
        min(q.span_start) AS charge_period_start, max(q.span_end) AS charge_period_end
    FROM lines q
    LEFT JOIN model_price_versions pd ON pd.model = q.model AND pd.backend = q.backend AND pd.deployment = q.deployment AND pd.deployment <> ''
        AND q.span_start >= pd.effective_from AND q.span_start < pd.effective_to
    LEFT JOIN model_price_versions pb ON pb.model = q.model AND pb.backend = q.backend AND pb.backend <> '' AND pb.deployment = ''
        AND q.span_start >= pb.effective_from AND q.span_start < pb.effective_to
    LEFT JOIN model_price_versions pm ON pm.model = q.model AND pm.backend = '' AND pm.deployment = ''
        AND q.span_start >= pm.effective_from AND q.span_start < pm.effective_to
    LEFT JOIN ptu_commitment_versions c ON c.backend = q.backend AND c.monthly_amount > 0
        AND q.span_start >= c.effective_from AND q.span_start < c.effective_to
    GROUP BY q.charge_class, q.subscription_id, q.product, q.team, q.cost_center, q.backend, q.deployment, q.model,
        coalesce(pd.id, pb.id, pm.id), c.backend IS NOT NULL, c.currency
    HAVING sum(q.requests) <> 0 OR sum(q.total_tokens) <> 0
)
SELECT g.charge_class, g.subscription_id, g.product, g.team, g.cost_center, g.backend, g.deployment, g.model, g.price_id, p.price_list,
    p.currency, g.committed, g.commitment_currency, g.requests::bigint, g.prompt_tokens::bigint, g.cached_tokens::bigint,
    g.completion_tokens::bigint, g.reasoning_tokens::bigint, g.total_tokens::bigint,
    -- The formula of priced_usage_lines, applied to the group's sums.
    ((g.prompt_tokens - g.cached_tokens) * p.input_per_1m
        + g.cached_tokens * coalesce(p.cached_input_per_1m, p.input_per_1m)
        + CASE WHEN p.reasoning_per_1m IS NULL THEN g.completion_tokens * p.output_per_1m
               ELSE (g.completion_tokens - g.reasoning_tokens) * p.output_per_1m + g.reasoning_tokens * p.reasoning_per_1m END
    ) * 0.000001,
    g.charge_period_start, g.charge_period_end
FROM grouped g
LEFT JOIN model_prices p ON p.id = g.price_id
$$;

REVOKE EXECUTE ON FUNCTION tollgate_chargeback_facts(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tollgate_chargeback_facts(timestamptz) TO tollgate_reader;

-- Months that have usage or late-usage bookings: the months reporting.chargeback_monthly lists. Built in UTC by timestamp
-- timestamps (a month added to a timestamptz would follow the session's time zone).
CREATE VIEW billing_months AS
SELECT m AT TIME ZONE 'UTC' AS period_start
FROM (SELECT min(day_start) AS first_day, max(day_start) AS last_day FROM usage_daily_rollup) b,
    generate_series(date_trunc('month', b.first_day AT TIME ZONE 'UTC'), date_trunc('month', b.last_day AT TIME ZONE 'UTC'), interval '1 month') m
UNION
SELECT DISTINCT booked_period_start FROM usage_corrections;

-- Same columns, same rows and values as before (0101); one month per LATERAL call.
CREATE OR REPLACE VIEW reporting.chargeback_monthly AS
SELECT m.period_start, tollgate_month_end(m.period_start) AS period_end,
    CASE WHEN m.period_start < (SELECT max(period_end) FROM billing_period_closes) THEN 'closed' ELSE 'open' END AS period_status,
    f.charge_class,
    CASE WHEN f.committed THEN 'ptu' WHEN f.price_id IS NULL THEN 'unpriced' ELSE 'usage' END AS charge_type,
    f.subscription_id, f.team, f.cost_center, f.product, f.backend, f.deployment, f.model,
    f.requests, f.prompt_tokens, f.cached_tokens, f.completion_tokens, f.reasoning_tokens, f.total_tokens,
    CASE WHEN NOT f.committed THEN f.cost
         WHEN f.charge_class = 'regular' THEN f.monthly_amount * f.total_tokens / nullif(f.backend_tokens, 0)
         ELSE 0 END AS cost,
    CASE WHEN f.committed THEN f.commitment_currency ELSE f.currency END AS currency,
    f.price_id, f.price_list, f.charge_period_start, f.charge_period_end
FROM billing_months m
CROSS JOIN LATERAL (
    -- A regular committed row's share of the backend's commitment in force in the month, pro rata by total tokens.
    SELECT x.*, c.monthly_amount,
        sum(x.total_tokens) FILTER (WHERE x.committed AND x.charge_class = 'regular' AND c.backend IS NOT NULL)
            OVER (PARTITION BY x.backend) AS backend_tokens
    FROM tollgate_chargeback_facts(m.period_start) x
    LEFT JOIN ptu_commitment_versions c ON x.committed AND x.charge_class = 'regular' AND c.backend = x.backend
        AND m.period_start >= c.effective_from AND m.period_start < c.effective_to
) f;
