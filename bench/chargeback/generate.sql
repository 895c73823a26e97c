-- Synthetic October 2026 for timing the chargeback: :events more usage events over 100 subscriptions (20 teams, 10 cost
-- centers), 4 models (one unpriced) and 3 backends (one with a PTU commitment), a mid-month price change.
--
--   psql -v events=1000000 -v seed=1 -f generate.sql      # run again with -v events=9000000 to reach 10M
--
-- The events land exactly the way the usage writer's general path lands a batch (UsageStore.insertNew): one statement
-- per chunk that inserts into usage_events and upserts the hourly rollup of exactly the rows it inserted, ordered by the
-- rollup key, so the product's statement triggers keep usage_daily_rollup in step. Nothing is rebuilt by hand; the
-- checks at the end prove that both rollups equal the ledger.
--
-- Each run spreads its events over the month in time order (a steady stream); a second run is a second stream over
-- the same month, so the month's rollups fill up while the number of events grows. Request ids continue from the
-- largest stored one. random() is seeded, so a run is reproducible.
\set ON_ERROR_STOP on
\if :{?chunk}
\else
\set chunk 500000
\endif
\if :{?seed}
\else
\set seed 1
\endif
INSERT INTO subscriptions (id, team, cost_center)
SELECT 'sub-' || i, 'team-' || (i % 20), 'cc-' || (i % 10) FROM generate_series(1, 100) i ON CONFLICT DO NOTHING;
INSERT INTO model_prices (model, currency, effective_from, input_per_1m, cached_input_per_1m, output_per_1m, price_list)
SELECT * FROM (VALUES
    ('gpt-4o', 'USD', timestamptz '2026-09-01T00:00:00Z', 2.50, 1.25, 10.00, 'bench'),
    ('gpt-4o', 'USD', '2026-10-15T00:00:00Z', 2.00, 1.00, 8.00, 'bench'),
    ('gpt-4o-mini', 'USD', '2026-09-01T00:00:00Z', 0.15, 0.075, 0.60, 'bench'),
    ('o3-mini', 'USD', '2026-09-01T00:00:00Z', 1.10, 0.55, 4.40, 'bench')) v
WHERE NOT EXISTS (SELECT 1 FROM model_prices WHERE price_list = 'bench');
INSERT INTO ptu_commitments (backend, effective_from, monthly_amount, currency) VALUES ('azure-ptu', '2026-10-01T00:00:00Z', 25000, 'USD')
ON CONFLICT DO NOTHING;

SELECT setseed(1.0 / (1 + :seed));
-- October's partition, as the service would have made it ahead of time (sql/0400).
SELECT tollgate_create_usage_partitions('2026-10-01T00:00:00Z', 0);
SELECT coalesce(max(('x' || right(request_id::text, 12))::bit(48)::bigint), 0) AS first_id FROM usage_events \gset
\timing on
-- One statement per chunk (its own transaction, as psql autocommits): \gexec runs each generated statement.
SELECT format($sql$
WITH inserted AS (
    INSERT INTO usage_events (request_id, started_at, ended_at, subscription_id, team, cost_center, backend, deployment, model, route,
        http_status, latency_ms, streamed, prompt_tokens, completion_tokens, total_tokens, cached_tokens, reasoning_tokens, usage_source, source)
    SELECT ('00000000-0000-7000-8000-' || lpad(to_hex(%1$s + j), 12, '0'))::uuid, t, t + interval '1 second', 'sub-' || s, 'team-' || (s %% 20),
        'cc-' || (s %% 10), b, m, m, 'chat.completions', 200, 900, false, p, c, p + c, p / 4, 0, 'reported', 'bench'
    FROM (
        SELECT j, timestamptz '2026-10-01T00:00:00Z' + (j - 1 + random()) * (interval '31 days' / %2$s) AS t, 1 + floor(random() * 100)::int AS s,
            (ARRAY['openai', 'azure-east', 'azure-ptu'])[1 + floor(random() * 3)::int] AS b,
            (ARRAY['gpt-4o', 'gpt-4o-mini', 'o3-mini', 'llama-3-70b'])[1 + floor(random() * 4)::int] AS m,
            floor(random() * 2000)::int AS p, floor(random() * 500)::int AS c
        FROM generate_series(%3$s, %4$s) j
    ) g
    RETURNING request_id, started_at, subscription_id, product, team, cost_center, backend, deployment, model, usage_source,
        prompt_tokens, completion_tokens, total_tokens, cached_tokens, reasoning_tokens
), ids AS (
    -- The ledger's idempotency key (sql/0400); the generated ids are new, so a clash is an error here.
    INSERT INTO usage_request_ids (request_id) SELECT request_id FROM inserted
)
INSERT INTO usage_hourly AS h (hour_start, subscription_id, product, team, cost_center, backend, deployment, model, usage_source,
    requests, prompt_tokens, completion_tokens, total_tokens, cached_tokens, reasoning_tokens)
SELECT date_trunc('hour', started_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', subscription_id, coalesce(product, ''),
    coalesce(team, ''), coalesce(cost_center, ''), backend, coalesce(deployment, ''), model, usage_source,
    count(*), sum(prompt_tokens), sum(completion_tokens), sum(total_tokens), sum(cached_tokens), sum(reasoning_tokens)
FROM inserted GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
ORDER BY 1, 2, 3, 4, 5, 6, 7, 8, 9
ON CONFLICT (hour_start, subscription_id, product, team, cost_center, backend, deployment, model, usage_source) DO UPDATE SET
    requests = h.requests + EXCLUDED.requests, prompt_tokens = h.prompt_tokens + EXCLUDED.prompt_tokens,
    completion_tokens = h.completion_tokens + EXCLUDED.completion_tokens, total_tokens = h.total_tokens + EXCLUDED.total_tokens,
    cached_tokens = h.cached_tokens + EXCLUDED.cached_tokens, reasoning_tokens = h.reasoning_tokens + EXCLUDED.reasoning_tokens
$sql$, :first_id, :events, lo, least(lo + :chunk - 1, :events))
FROM generate_series(1, :events, :chunk) lo
\gexec
\timing off
VACUUM ANALYZE usage_events;
VACUUM ANALYZE usage_hourly;
VACUUM ANALYZE usage_daily_rollup;

-- The rollups must equal the ledger exactly: every hourly row is the aggregate of its events, and every daily row the
-- aggregate of its hours (both directions, so nothing is missing or extra). A difference stops the run.
SELECT count(*) AS hourly_mismatches FROM (
    (SELECT hour_start, subscription_id, product, team, cost_center, backend, deployment, model, usage_source,
        requests, prompt_tokens, completion_tokens, total_tokens, cached_tokens, reasoning_tokens FROM usage_hourly
     EXCEPT ALL
     SELECT date_trunc('hour', started_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', subscription_id, coalesce(product, ''), coalesce(team, ''),
        coalesce(cost_center, ''), backend, coalesce(deployment, ''), model, usage_source, count(*), sum(prompt_tokens), sum(completion_tokens),
        sum(total_tokens), sum(cached_tokens), sum(reasoning_tokens)
     FROM usage_events GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9)
    UNION ALL
    (SELECT date_trunc('hour', started_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', subscription_id, coalesce(product, ''), coalesce(team, ''),
        coalesce(cost_center, ''), backend, coalesce(deployment, ''), model, usage_source, count(*), sum(prompt_tokens), sum(completion_tokens),
        sum(total_tokens), sum(cached_tokens), sum(reasoning_tokens)
     FROM usage_events GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
     EXCEPT ALL
     SELECT hour_start, subscription_id, product, team, cost_center, backend, deployment, model, usage_source,
        requests, prompt_tokens, completion_tokens, total_tokens, cached_tokens, reasoning_tokens FROM usage_hourly)
) x \gset
SELECT count(*) AS daily_mismatches FROM (
    (SELECT day_start, subscription_id, product, team, cost_center, backend, deployment, model, usage_source,
        requests, prompt_tokens, completion_tokens, total_tokens, cached_tokens, reasoning_tokens FROM usage_daily_rollup
     EXCEPT ALL
     SELECT date_trunc('day', hour_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', subscription_id, product, team, cost_center, backend,
        deployment, model, usage_source, sum(requests), sum(prompt_tokens), sum(completion_tokens), sum(total_tokens), sum(cached_tokens),
        sum(reasoning_tokens)
     FROM usage_hourly GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9)
    UNION ALL
    (SELECT date_trunc('day', hour_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', subscription_id, product, team, cost_center, backend,
        deployment, model, usage_source, sum(requests), sum(prompt_tokens), sum(completion_tokens), sum(total_tokens), sum(cached_tokens),
        sum(reasoning_tokens)
     FROM usage_hourly GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
     EXCEPT ALL
     SELECT day_start, subscription_id, product, team, cost_center, backend, deployment, model, usage_source,
        requests, prompt_tokens, completion_tokens, total_tokens, cached_tokens, reasoning_tokens FROM usage_daily_rollup)
) x \gset
\echo rollup check: :hourly_mismatches hourly and :daily_mismatches daily rows differ from the ledger
SELECT :hourly_mismatches + :daily_mismatches = 0 AS rollups_consistent \gset
\if :rollups_consistent
\else
DO $$ BEGIN RAISE EXCEPTION 'the rollups do not match usage_events'; END $$;
\endif
SELECT (SELECT count(*) FROM usage_events) AS events, (SELECT count(*) FROM usage_hourly) AS hourly_rows,
    (SELECT count(*) FROM usage_daily_rollup) AS daily_rows,
    pg_size_pretty(pg_total_relation_size('usage_events')) AS events_size;
