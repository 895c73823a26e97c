-- 0302_daily_rollup_in_writer.sql: the usage writer keeps usage_daily_rollup and usage_corrections in step itself.
--
-- UsageStore (both of its paths) now upserts usage_hourly, upserts usage_daily_rollup and books late usage in
-- usage_corrections in one statement, from the batch's own hourly groups, and tells the triggers below to stand aside
-- (transaction-local setting tollgate.rollups_written_by = 'usage_store'). Measured on PG 15 with the ingestion
-- benchmark's batches (10,000 events, ~640 hourly and ~270 daily groups each; bench/README.md), the 0100/0301 trigger
-- pair cost 5.2 ms per batch: an upsert of the daily rollup for the inserted hours, another for the updated hours (a
-- join of the old and new transition tables, planned once per session as a nested loop), and their advisory lock held
-- to commit. The writer's one daily upsert adds 2.1–2.8 ms to its hourly upsert (3.4–3.9 ms), ~0.8 ms less than
-- without the fillfactor below.
--
-- Every other writer of usage_hourly (SQL by hand, bench/chargeback/generate.sql, a future code path) still gets both
-- rollups kept by the triggers, which now cover all four ways a table changes: INSERT, UPDATE (also one that changes a
-- row's key), DELETE, TRUNCATE. The invariant, for every writer: each usage_daily_rollup row holds the sums of the
-- usage_hourly rows of its day and key, and late usage for a closed hour is booked once in usage_corrections.

-- Most daily rows are updated by every batch of their day; free space on the page makes those updates HOT (no new
-- index entry in the nine-column key). Pages written from now on keep half their space free.
ALTER TABLE usage_daily_rollup SET (fillfactor = 50);

DROP TRIGGER usage_hourly_inserted ON usage_hourly;
DROP TRIGGER usage_hourly_updated ON usage_hourly;
DROP FUNCTION tollgate_usage_hourly_inserted();
DROP FUNCTION tollgate_usage_hourly_updated();

-- The net change of one statement, per hourly key: new rows minus old rows. Grouping both sides by key (rather than
-- joining old to new) also counts an UPDATE that moves a row to another key. The statement text is built per event and
-- run with EXECUTE, so it is planned with the transition tables' real sizes on every call.
CREATE FUNCTION tollgate_usage_hourly_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    closed_through timestamptz;
    keys constant text := 'hour_start, subscription_id, product, team, cost_center, backend, deployment, model, usage_source';
    added constant text := 'requests, prompt_tokens, completion_tokens, total_tokens, cached_tokens, reasoning_tokens';
    removed constant text := '-requests, -prompt_tokens, -completion_tokens, -total_tokens, -cached_tokens, -reasoning_tokens';
    changes text;
BEGIN
    IF current_setting('tollgate.rollups_written_by', true) = 'usage_store' THEN
        RETURN NULL;  -- the writer's own statement did both rollups
    END IF;
    -- Serialises hand-made writers: an INSERT … ON CONFLICT DO UPDATE fires the INSERT and the UPDATE trigger, two
    -- ordered passes over the daily rows whose lock orders could interleave with another writer's (see 0301).
    PERFORM pg_advisory_xact_lock(7428190301);
    changes := CASE TG_OP
        WHEN 'INSERT' THEN format('SELECT %s, %s FROM new_rows', keys, added)
        WHEN 'DELETE' THEN format('SELECT %s, %s FROM old_rows', keys, removed)
        ELSE format('SELECT %s, %s FROM new_rows UNION ALL SELECT %s, %s FROM old_rows', keys, added, keys, removed)
    END;
    SELECT max(period_end) INTO closed_through FROM billing_period_closes;
    EXECUTE format($sql$
        WITH delta AS MATERIALIZED (
            SELECT hour_start, subscription_id, product, team, cost_center, backend, deployment, model, usage_source,
                sum(requests) AS requests, sum(prompt_tokens) AS prompt_tokens, sum(completion_tokens) AS completion_tokens,
                sum(total_tokens) AS total_tokens, sum(cached_tokens) AS cached_tokens, sum(reasoning_tokens) AS reasoning_tokens
            FROM (%s) AS c (hour_start, subscription_id, product, team, cost_center, backend, deployment, model, usage_source,
                requests, prompt_tokens, completion_tokens, total_tokens, cached_tokens, reasoning_tokens)
            GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
        ), daily AS (
            INSERT INTO usage_daily_rollup AS d (day_start, subscription_id, product, team, cost_center, backend, deployment, model,
                usage_source, requests, prompt_tokens, completion_tokens, total_tokens, cached_tokens, reasoning_tokens)
            SELECT date_trunc('day', x.hour_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', x.subscription_id, x.product, x.team,
                x.cost_center, x.backend, x.deployment, x.model, x.usage_source, sum(x.requests), sum(x.prompt_tokens),
                sum(x.completion_tokens), sum(x.total_tokens), sum(x.cached_tokens), sum(x.reasoning_tokens)
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
        SELECT $1, x.hour_start, x.subscription_id, x.product, x.team, x.cost_center, x.backend, x.deployment, x.model,
            x.usage_source, x.requests, x.prompt_tokens, x.completion_tokens, x.total_tokens, x.cached_tokens, x.reasoning_tokens
        FROM delta x
        WHERE x.hour_start < $1
            AND (x.requests, x.prompt_tokens, x.completion_tokens, x.total_tokens, x.cached_tokens, x.reasoning_tokens) <> (0, 0, 0, 0, 0, 0)
        $sql$, changes) USING closed_through;
    IF TG_OP <> 'INSERT' THEN
        -- A day whose hours were all removed has no daily row, as if the rollup had been built from usage_hourly afresh.
        EXECUTE format($sql$
            DELETE FROM usage_daily_rollup d
            USING (SELECT DISTINCT date_trunc('day', hour_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS day_start, subscription_id,
                       product, team, cost_center, backend, deployment, model, usage_source
                   FROM old_rows) o
            WHERE (d.day_start, d.subscription_id, d.product, d.team, d.cost_center, d.backend, d.deployment, d.model, d.usage_source)
                = (o.day_start, o.subscription_id, o.product, o.team, o.cost_center, o.backend, o.deployment, o.model, o.usage_source)
                AND (d.requests, d.prompt_tokens, d.completion_tokens, d.total_tokens, d.cached_tokens, d.reasoning_tokens) = (0, 0, 0, 0, 0, 0)
                AND NOT EXISTS (SELECT FROM usage_hourly h
                    WHERE h.hour_start >= d.day_start AND h.hour_start < d.day_start + interval '24 hours'
                        AND (h.subscription_id, h.product, h.team, h.cost_center, h.backend, h.deployment, h.model, h.usage_source)
                            = (d.subscription_id, d.product, d.team, d.cost_center, d.backend, d.deployment, d.model, d.usage_source))
            $sql$);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER usage_hourly_inserted AFTER INSERT ON usage_hourly
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION tollgate_usage_hourly_changed();
CREATE TRIGGER usage_hourly_updated AFTER UPDATE ON usage_hourly
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION tollgate_usage_hourly_changed();
CREATE TRIGGER usage_hourly_deleted AFTER DELETE ON usage_hourly
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION tollgate_usage_hourly_changed();

-- An emptied hourly rollup empties the daily one (bookings in usage_corrections stay: they record what happened).
CREATE FUNCTION tollgate_usage_hourly_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM usage_daily_rollup;
    RETURN NULL;
END $$;
CREATE TRIGGER usage_hourly_truncated AFTER TRUNCATE ON usage_hourly
    FOR EACH STATEMENT EXECUTE FUNCTION tollgate_usage_hourly_truncated();

-- Whatever drift the old triggers left (a DELETE on usage_hourly, which they did not see), the daily rollup starts exact.
TRUNCATE usage_daily_rollup;
INSERT INTO usage_daily_rollup (day_start, subscription_id, product, team, cost_center, backend, deployment, model, usage_source,
    requests, prompt_tokens, completion_tokens, total_tokens, cached_tokens, reasoning_tokens)
SELECT date_trunc('day', hour_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', subscription_id, product, team, cost_center, backend,
    deployment, model, usage_source, sum(requests), sum(prompt_tokens), sum(completion_tokens), sum(total_tokens), sum(cached_tokens),
    sum(reasoning_tokens)
FROM usage_hourly GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9;
