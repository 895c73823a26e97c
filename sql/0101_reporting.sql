-- 0101_reporting.sql: usage priced with the price in force, chargeback facts, the `reporting` schema (a published
-- contract, documented in docs/reporting.md) and the read-only `tollgate_reader` role.
-- Everything here reads the hourly rollup and the late-usage bookings, never the raw usage_events ledger.

-- (model, UTC day) pairs where a price version of the model starts inside the day rather than at midnight: billing
-- reads those days by the hour.
CREATE VIEW price_split_days AS
SELECT DISTINCT model, date_trunc('day', effective_from AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS day_start
FROM model_prices
WHERE effective_from <> date_trunc('day', effective_from AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';

-- Usage priced with the most specific price version in force (deployment price, else backend price, else model-wide
-- price), by range joins on the version table, not a per-row LATERAL lookup (measured ~5x slower). `cost` is NULL when no
-- price is in force: unpriced, never zero. Three kinds of line:
--   rollup      every hourly rollup row (what priced_usage_hourly shows, for budgets by time of use);
--   billing     the same usage for monthly reports: a day's rows from usage_daily_rollup, except on a day when a price
--               version of the model starts inside the day (prices start on whole hours), whose hourly rows are used;
--   correction  late usage booked into an open month (usage_corrections), priced at the hour it was used.
-- `hour_start` is the start of the line's span (an hour or a day) and the instant it is priced at; `span_end` its end.
CREATE VIEW priced_usage_lines AS
SELECT q.line_kind, q.booked_period_start, q.hour_start, q.span_end, q.subscription_id, q.product, q.team, q.cost_center, q.backend,
    q.deployment, q.model, q.usage_source, q.requests, q.prompt_tokens, q.completion_tokens, q.total_tokens, q.cached_tokens,
    q.reasoning_tokens,
    p.id AS price_id, p.price_list, p.currency,
    ((q.prompt_tokens - q.cached_tokens) * p.input_per_1m
        + q.cached_tokens * coalesce(p.cached_input_per_1m, p.input_per_1m)
        + CASE WHEN p.reasoning_per_1m IS NULL THEN q.completion_tokens * p.output_per_1m
               ELSE (q.completion_tokens - q.reasoning_tokens) * p.output_per_1m + q.reasoning_tokens * p.reasoning_per_1m END
    ) * 0.000001 AS cost,  -- multiplying by 10^-6 is exact in numeric; dividing would round
    c.backend IS NOT NULL AS committed,
    c.currency AS commitment_currency
FROM (
    SELECT 'rollup'::text AS line_kind, NULL::timestamptz AS booked_period_start, u.hour_start, u.hour_start + interval '1 hour' AS span_end,
        u.subscription_id, u.product, u.team, u.cost_center, u.backend, u.deployment, u.model, u.usage_source, u.requests,
        u.prompt_tokens, u.completion_tokens, u.total_tokens, u.cached_tokens, u.reasoning_tokens
    FROM usage_hourly u
    UNION ALL
    SELECT 'billing'::text, NULL::timestamptz, d.day_start, d.day_start + interval '24 hours', d.subscription_id, d.product, d.team,
        d.cost_center, d.backend, d.deployment, d.model, d.usage_source, d.requests, d.prompt_tokens, d.completion_tokens,
        d.total_tokens, d.cached_tokens, d.reasoning_tokens
    FROM usage_daily_rollup d
    WHERE NOT EXISTS (SELECT 1 FROM price_split_days s WHERE s.model = d.model AND s.day_start = d.day_start)
    UNION ALL
    SELECT 'billing'::text, NULL::timestamptz, u.hour_start, u.hour_start + interval '1 hour', u.subscription_id, u.product, u.team,
        u.cost_center, u.backend, u.deployment, u.model, u.usage_source, u.requests, u.prompt_tokens, u.completion_tokens,
        u.total_tokens, u.cached_tokens, u.reasoning_tokens
    FROM price_split_days s
    JOIN usage_hourly u ON u.model = s.model AND u.hour_start >= s.day_start AND u.hour_start < s.day_start + interval '24 hours'
    UNION ALL
    SELECT 'correction'::text, k.booked_period_start, k.hour_start, k.hour_start + interval '1 hour', k.subscription_id, k.product, k.team,
        k.cost_center, k.backend, k.deployment, k.model, k.usage_source, k.requests, k.prompt_tokens, k.completion_tokens,
        k.total_tokens, k.cached_tokens, k.reasoning_tokens
    FROM usage_corrections k
) q
LEFT JOIN model_price_versions pd ON pd.model = q.model AND pd.backend = q.backend AND pd.deployment = q.deployment AND pd.deployment <> ''
    AND q.hour_start >= pd.effective_from AND q.hour_start < pd.effective_to
LEFT JOIN model_price_versions pb ON pb.model = q.model AND pb.backend = q.backend AND pb.backend <> '' AND pb.deployment = ''
    AND q.hour_start >= pb.effective_from AND q.hour_start < pb.effective_to
LEFT JOIN model_price_versions pm ON pm.model = q.model AND pm.backend = '' AND pm.deployment = ''
    AND q.hour_start >= pm.effective_from AND q.hour_start < pm.effective_to
LEFT JOIN model_prices p ON p.id = coalesce(pd.id, pb.id, pm.id)
LEFT JOIN ptu_commitment_versions c ON c.backend = q.backend AND c.monthly_amount > 0
    AND q.hour_start >= c.effective_from AND q.hour_start < c.effective_to;

-- The hourly rollup with its pay-as-you-go cost at the price in force. Read by the rules engine for money budgets
-- (by usage time, late usage included). `cost` is the list cost even on a committed (PTU) backend; `committed` says so.
CREATE VIEW priced_usage_hourly AS
SELECT hour_start, subscription_id, product, team, cost_center, backend, deployment, model, usage_source, requests,
    prompt_tokens, completion_tokens, total_tokens, cached_tokens, reasoning_tokens, cost, currency, price_id, price_list, committed
FROM priced_usage_lines
WHERE line_kind = 'rollup';

-- What each billing month bills: its own usage minus the parts that landed after it closed ('regular'), plus the late
-- usage booked into it ('correction'), which keeps the price of the hour it was used in.
CREATE VIEW chargeback_facts AS
SELECT tollgate_month_start(hour_start) AS period_start, 'regular'::text AS charge_class, hour_start, span_end, subscription_id, product,
    team, cost_center, backend, deployment, model, usage_source, price_id, price_list, currency, committed, commitment_currency,
    requests, prompt_tokens, cached_tokens, completion_tokens, reasoning_tokens, total_tokens, cost
FROM priced_usage_lines WHERE line_kind = 'billing'
UNION ALL
SELECT tollgate_month_start(hour_start), 'regular', hour_start, span_end, subscription_id, product, team, cost_center, backend, deployment,
    model, usage_source, price_id, price_list, currency, committed, commitment_currency,
    -requests, -prompt_tokens, -cached_tokens, -completion_tokens, -reasoning_tokens, -total_tokens, -cost
FROM priced_usage_lines WHERE line_kind = 'correction'
UNION ALL
SELECT booked_period_start, 'correction', hour_start, span_end, subscription_id, product, team, cost_center, backend, deployment, model,
    usage_source, price_id, price_list, currency, committed, commitment_currency,
    requests, prompt_tokens, cached_tokens, completion_tokens, reasoning_tokens, total_tokens, cost
FROM priced_usage_lines WHERE line_kind = 'correction';

CREATE SCHEMA IF NOT EXISTS reporting;

COMMENT ON SCHEMA reporting IS 'Tollgate reporting contract: columns may be added, never renamed, retyped or removed. See docs/reporting.md.';

-- Daily usage per subscription and model with its pay-as-you-go list cost, by usage date (UTC).
CREATE VIEW reporting.usage_daily AS
SELECT (hour_start AT TIME ZONE 'UTC')::date AS usage_date, subscription_id, team, cost_center, product, backend, deployment, model,
    usage_source, sum(requests)::bigint AS requests, sum(prompt_tokens)::bigint AS prompt_tokens,
    sum(cached_tokens)::bigint AS cached_tokens, sum(completion_tokens)::bigint AS completion_tokens,
    sum(reasoning_tokens)::bigint AS reasoning_tokens, sum(total_tokens)::bigint AS total_tokens,
    price_id IS NOT NULL AS priced, sum(cost) AS list_cost, currency, committed
FROM priced_usage_lines
WHERE line_kind = 'billing'
GROUP BY 1, subscription_id, team, cost_center, product, backend, deployment, model, usage_source, price_id IS NOT NULL, currency, committed;

-- The month's chargeback at full precision (unrounded; exports round each line, see docs/reporting.md).
CREATE VIEW reporting.chargeback_monthly AS
WITH f AS (
    SELECT period_start, charge_class, subscription_id, team, cost_center, product, backend, deployment, model, price_id,
        price_list, currency, committed, commitment_currency,
        sum(requests)::bigint AS requests, sum(prompt_tokens)::bigint AS prompt_tokens, sum(cached_tokens)::bigint AS cached_tokens,
        sum(completion_tokens)::bigint AS completion_tokens, sum(reasoning_tokens)::bigint AS reasoning_tokens,
        sum(total_tokens)::bigint AS total_tokens, sum(cost) AS cost, min(hour_start) AS charge_period_start, max(span_end) AS charge_period_end
    FROM chargeback_facts
    GROUP BY period_start, charge_class, subscription_id, team, cost_center, product, backend, deployment, model, price_id, price_list,
        currency, committed, commitment_currency
    HAVING sum(requests) <> 0 OR sum(total_tokens) <> 0
), ptu AS (
    SELECT f.period_start, f.backend, c.monthly_amount, sum(f.total_tokens) OVER (PARTITION BY f.period_start, f.backend) AS backend_tokens
    FROM f JOIN ptu_commitment_versions c ON c.backend = f.backend AND f.period_start >= c.effective_from AND f.period_start < c.effective_to
    WHERE f.committed AND f.charge_class = 'regular'
)
SELECT f.period_start, tollgate_month_end(f.period_start) AS period_end,
    CASE WHEN f.period_start < (SELECT max(period_end) FROM billing_period_closes) THEN 'closed' ELSE 'open' END AS period_status,
    f.charge_class,
    CASE WHEN f.committed THEN 'ptu' WHEN f.price_id IS NULL THEN 'unpriced' ELSE 'usage' END AS charge_type,
    f.subscription_id, f.team, f.cost_center, f.product, f.backend, f.deployment, f.model,
    f.requests, f.prompt_tokens, f.cached_tokens, f.completion_tokens, f.reasoning_tokens, f.total_tokens,
    CASE WHEN NOT f.committed THEN f.cost
         WHEN f.charge_class = 'regular' THEN
            (SELECT max(p.monthly_amount) * f.total_tokens / nullif(max(p.backend_tokens), 0) FROM ptu p
             WHERE p.period_start = f.period_start AND p.backend = f.backend)
         ELSE 0 END AS cost,
    CASE WHEN f.committed THEN f.commitment_currency ELSE f.currency END AS currency,
    f.price_id, f.price_list, f.charge_period_start, f.charge_period_end
FROM f;

-- Usage no price covered: it is never billed as zero; finance prices it or chases the missing price.
CREATE VIEW reporting.unpriced_usage AS
SELECT period_start, period_end, period_status, charge_class, subscription_id, team, cost_center, product, backend, deployment, model,
    requests, prompt_tokens, cached_tokens, completion_tokens, reasoning_tokens, total_tokens, charge_period_start, charge_period_end
FROM reporting.chargeback_monthly
WHERE charge_type = 'unpriced';

-- The chargeback in FOCUS column names (see docs/reporting.md for the spec version each column follows).
-- Unpriced usage carries NULL costs here; the FOCUS export file lists it under x_PricingStatus = 'unpriced'.
CREATE VIEW reporting.focus_charges AS
SELECT m.cost AS "BilledCost", m.cost AS "EffectiveCost",
    m.cost AS "ListCost", m.cost AS "ContractedCost",
    m.charge_period_start AS "ChargePeriodStart", m.charge_period_end AS "ChargePeriodEnd",
    m.period_start AS "BillingPeriodStart", m.period_end AS "BillingPeriodEnd",
    coalesce(nullif(m.cost_center, ''), 'unassigned') AS "BillingAccountId", coalesce(nullif(m.cost_center, ''), 'unassigned') AS "BillingAccountName",
    m.currency AS "BillingCurrency", 'Usage'::text AS "ChargeCategory",
    CASE WHEN m.charge_class = 'correction' THEN 'Correction' END AS "ChargeClass",
    m.model || ' tokens via ' || m.backend || CASE m.charge_type WHEN 'ptu' THEN ' (provisioned throughput share)'
        WHEN 'unpriced' THEN ' (unpriced)' ELSE ' (pay-as-you-go)' END AS "ChargeDescription",
    'AI and Machine Learning'::text AS "ServiceCategory", m.backend AS "ServiceName", 'Tollgate'::text AS "ProviderName",
    m.backend AS "PublisherName", 'Tollgate'::text AS "InvoiceIssuerName",
    m.total_tokens::numeric * 0.000001 AS "PricingQuantity", '1M Tokens'::text AS "PricingUnit",
    m.total_tokens::numeric AS "ConsumedQuantity", 'Tokens'::text AS "ConsumedUnit",
    m.model AS "SkuId", coalesce('price-' || m.price_id, 'unpriced:' || m.model) AS "SkuPriceId",
    m.backend || '/' || coalesce(nullif(m.deployment, ''), m.model) AS "ResourceId",
    m.subscription_id AS "SubAccountId", coalesce(s.display_name, m.subscription_id) AS "SubAccountName",
    jsonb_build_object('team', m.team, 'cost_center', m.cost_center, 'product', m.product, 'model', m.model,
        'pricing', CASE m.charge_type WHEN 'usage' THEN 'priced' WHEN 'ptu' THEN 'committed' ELSE 'unpriced' END)::text AS "Tags",
    CASE m.charge_type WHEN 'usage' THEN 'priced' WHEN 'ptu' THEN 'committed' ELSE 'unpriced' END AS "x_PricingStatus",
    m.price_list AS "x_PriceList"
FROM reporting.chargeback_monthly m
LEFT JOIN subscriptions s ON s.id = m.subscription_id;

-- Analysts connect as (or are granted) tollgate_reader: the reporting views and nothing else. Roles are cluster-wide,
-- so creating it is guarded for databases that share a cluster (test clones, several environments).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tollgate_reader') THEN
        CREATE ROLE tollgate_reader NOLOGIN;
    END IF;
END $$;

GRANT USAGE ON SCHEMA reporting TO tollgate_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA reporting TO tollgate_reader;
-- Views added to `reporting` by later migrations (run by the same owner) are readable without another grant.
ALTER DEFAULT PRIVILEGES IN SCHEMA reporting GRANT SELECT ON TABLES TO tollgate_reader;
