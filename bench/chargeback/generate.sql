-- Synthetic month for timing the chargeback: :events usage events in October 2026 over 100 subscriptions (20 teams,
-- 10 cost centers), 4 models (one unpriced) and 3 backends (one with a PTU commitment), a mid-month price change.
-- Events land in usage_events with time-ordered ids; usage_hourly is then built with the same aggregation the usage
-- writer runs in its transaction (the reports read only the rollup). Run with: psql -v events=1000000 -f generate.sql
\set ON_ERROR_STOP on
INSERT INTO subscriptions (id, team, cost_center)
SELECT 'sub-' || i, 'team-' || (i % 20), 'cc-' || (i % 10) FROM generate_series(1, 100) i ON CONFLICT DO NOTHING;
INSERT INTO model_prices (model, currency, effective_from, input_per_1m, cached_input_per_1m, output_per_1m, price_list) VALUES
    ('gpt-4o', 'USD', '2026-09-01T00:00:00Z', 2.50, 1.25, 10.00, 'bench'),
    ('gpt-4o', 'USD', '2026-10-15T00:00:00Z', 2.00, 1.00, 8.00, 'bench'),
    ('gpt-4o-mini', 'USD', '2026-09-01T00:00:00Z', 0.15, 0.075, 0.60, 'bench'),
    ('o3-mini', 'USD', '2026-09-01T00:00:00Z', 1.10, 0.55, 4.40, 'bench')
ON CONFLICT DO NOTHING;
INSERT INTO ptu_commitments (backend, effective_from, monthly_amount, currency) VALUES ('azure-ptu', '2026-10-01T00:00:00Z', 25000, 'USD')
ON CONFLICT DO NOTHING;

\timing on
INSERT INTO usage_events (request_id, started_at, ended_at, subscription_id, team, cost_center, backend, deployment, model, route,
    http_status, latency_ms, streamed, prompt_tokens, completion_tokens, total_tokens, cached_tokens, reasoning_tokens, usage_source, source)
SELECT ('00000000-0000-7000-8000-' || lpad(to_hex(i), 12, '0'))::uuid, t, t + interval '1 second', 'sub-' || s, 'team-' || (s % 20),
    'cc-' || (s % 10), b, m, m, 'chat.completions', 200, 900, false, p, c, p + c, p / 4, 0, 'reported', 'bench'
FROM (
    SELECT i, timestamptz '2026-10-01T00:00:00Z' + random() * interval '31 days' AS t, 1 + (random() * 99)::int AS s,
        (ARRAY['openai', 'azure-east', 'azure-ptu'])[1 + (random() * 2)::int] AS b,
        (ARRAY['gpt-4o', 'gpt-4o-mini', 'o3-mini', 'llama-3-70b'])[1 + (random() * 3)::int] AS m,
        (random() * 2000)::int AS p, (random() * 500)::int AS c
    FROM generate_series((SELECT coalesce(max(('x' || right(request_id::text, 12))::bit(48)::bigint), 0) FROM usage_events) + 1,
                         (SELECT coalesce(max(('x' || right(request_id::text, 12))::bit(48)::bigint), 0) FROM usage_events) + :events) i
) g;
TRUNCATE usage_hourly, usage_daily_rollup;
INSERT INTO usage_hourly AS h (hour_start, subscription_id, product, team, cost_center, backend, deployment, model, usage_source,
    requests, prompt_tokens, completion_tokens, total_tokens, cached_tokens, reasoning_tokens)
SELECT date_trunc('hour', started_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', subscription_id, coalesce(product, ''), coalesce(team, ''),
    coalesce(cost_center, ''), backend, coalesce(deployment, ''), model, usage_source,
    count(*), sum(prompt_tokens), sum(completion_tokens), sum(total_tokens), sum(cached_tokens), sum(reasoning_tokens)
FROM usage_events GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9;
\timing off
VACUUM ANALYZE usage_events;
VACUUM ANALYZE usage_hourly;
VACUUM ANALYZE usage_daily_rollup;
SELECT (SELECT count(*) FROM usage_events) AS events, (SELECT count(*) FROM usage_hourly) AS hourly_rows,
    (SELECT count(*) FROM usage_daily_rollup) AS daily_rows,
    pg_size_pretty(pg_total_relation_size('usage_events')) AS events_size;
