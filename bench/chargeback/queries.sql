-- What finance runs against the `reporting` views for October 2026, and the raw-ledger reference, one query per block
-- (run-chargeback.sh times each block; a line `-- name: …` starts a block). Results are discarded; only time counts.

-- name: reporting.chargeback_monthly, by team
SELECT team, charge_type, sum(cost), sum(total_tokens) FROM reporting.chargeback_monthly
WHERE period_start = '2026-10-01T00:00:00Z' GROUP BY 1, 2;

-- name: reporting.focus_charges, one month
SELECT * FROM reporting.focus_charges WHERE "BillingPeriodStart" = '2026-10-01T00:00:00Z';

-- name: reporting.unpriced_usage, one month
SELECT * FROM reporting.unpriced_usage WHERE period_start = '2026-10-01T00:00:00Z';

-- name: reporting.usage_daily, one month by day
SELECT usage_date, sum(list_cost), sum(total_tokens) FROM reporting.usage_daily
WHERE usage_date >= '2026-10-01' AND usage_date < '2026-11-01' GROUP BY 1;

-- name: raw scan of usage_events: the month's pay-as-you-go cost by team (reference)
SELECT e.team, sum(((e.prompt_tokens - e.cached_tokens) * p.input_per_1m + e.cached_tokens * coalesce(p.cached_input_per_1m, p.input_per_1m)
        + e.completion_tokens * p.output_per_1m) * 0.000001), sum(e.total_tokens)
FROM usage_events e
LEFT JOIN model_price_versions p ON p.model = e.model AND p.backend = '' AND p.deployment = ''
    AND e.started_at >= p.effective_from AND e.started_at < p.effective_to
WHERE e.started_at >= '2026-10-01T00:00:00Z' AND e.started_at < '2026-11-01T00:00:00Z'
GROUP BY 1;
