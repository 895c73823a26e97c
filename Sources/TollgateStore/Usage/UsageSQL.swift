/// The SQL of `UsageStore`'s two paths. Constants only: no value ever goes through `unescaped:`.
enum UsageSQL {
    /// The session-local staging table of the general path, emptied at every commit.
    static let createStage = """
        CREATE TEMP TABLE IF NOT EXISTS usage_stage (
            request_id uuid, response_id text, started_at timestamptz, ended_at timestamptz, subscription_id text, product text,
            team text, cost_center text, backend text, deployment text, model text, route text, http_status smallint,
            latency_ms integer, streamed boolean, prompt_tokens integer, completion_tokens integer, total_tokens integer,
            cached_tokens integer, reasoning_tokens integer, usage_source text, source text) ON COMMIT DELETE ROWS
        """

    /// Whether a staged row is not self-located (sql/0410): the general path then takes the request-id lock exclusively,
    /// since such a row is checked against every partition and claimed in `usage_request_ids`; otherwise shared.
    static let stageHasRowsNotSelfLocated =
        "SELECT coalesce(bool_or(NOT tollgate_usage_self_located(request_id, started_at)), false) FROM usage_stage"

    /// The general path's request-id lock, taken in a statement of its own before the statement that checks ids, so that
    /// it sees what the holders it waited for committed (the fast path takes it in `tollgate_usage_assert_unclaimed`).
    /// Writers of self-located rows only take it shared and never wait for each other.
    static let lockShared = "SELECT pg_advisory_xact_lock_shared(\(requestIDLock))"
    static let lockExclusive = "SELECT pg_advisory_xact_lock(\(requestIDLock))"

    /// The advisory lock of sql/0410 that keeps writers of self-located rows and writers of other rows apart.
    static let requestIDLock = 7_428_190_410

    /// The general path's one statement: of the staged rows (the first line of an id repeated in the batch wins, as COPY
    /// order is the staging table's physical order), insert those whose request id is stored nowhere — not claimed in
    /// `usage_request_ids`, and for a row that is not self-located, in no partition; a self-located one meets any
    /// earlier row of its id in its own partition's unique index (ON CONFLICT DO NOTHING) — claim the ids of the new
    /// rows that are not self-located, and roll the new rows up. Its row: how many rows were new.
    static let insertFromStage = """
        WITH staged AS (
            SELECT DISTINCT ON (request_id) request_id, response_id, started_at, ended_at, subscription_id, product, team, cost_center,
                backend, deployment, model, route, http_status, latency_ms, streamed, prompt_tokens, completion_tokens, total_tokens,
                cached_tokens, reasoning_tokens, usage_source, source, tollgate_usage_self_located(request_id, started_at) AS self_located
            FROM usage_stage
            ORDER BY request_id, ctid
        ), inserted AS (
            INSERT INTO usage_events (request_id, response_id, started_at, ended_at, subscription_id, product, team, cost_center,
                backend, deployment, model, route, http_status, latency_ms, streamed, prompt_tokens, completion_tokens,
                total_tokens, cached_tokens, reasoning_tokens, usage_source, source)
            SELECT s.request_id, s.response_id, s.started_at, s.ended_at, s.subscription_id, s.product, s.team, s.cost_center, s.backend,
                s.deployment, s.model, s.route, s.http_status, s.latency_ms, s.streamed, s.prompt_tokens, s.completion_tokens,
                s.total_tokens, s.cached_tokens, s.reasoning_tokens, s.usage_source, s.source
            FROM staged s
            WHERE NOT EXISTS (SELECT 1 FROM usage_request_ids r WHERE r.request_id = s.request_id)
              -- OFFSET 0 keeps this a per-row probe of each partition's index, never a join over the whole ledger.
              AND (s.self_located OR NOT EXISTS (SELECT 1 FROM usage_events e WHERE e.request_id = s.request_id OFFSET 0))
            ON CONFLICT DO NOTHING
            RETURNING request_id, started_at, subscription_id, product, team, cost_center, backend, deployment, model, usage_source,
                prompt_tokens, completion_tokens, total_tokens, cached_tokens, reasoning_tokens
        ), claimed AS (
            INSERT INTO usage_request_ids (request_id)
            SELECT request_id FROM inserted WHERE NOT tollgate_usage_self_located(request_id, started_at)
        ), groups AS MATERIALIZED (
            SELECT date_trunc('hour', started_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS hour_start, subscription_id,
                coalesce(product, '') AS product, coalesce(team, '') AS team, coalesce(cost_center, '') AS cost_center, backend,
                coalesce(deployment, '') AS deployment, model, usage_source, count(*) AS requests, sum(prompt_tokens) AS prompt_tokens,
                sum(completion_tokens) AS completion_tokens, sum(total_tokens) AS total_tokens, sum(cached_tokens) AS cached_tokens,
                sum(reasoning_tokens) AS reasoning_tokens
            FROM inserted GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
        ), \(rollUpGroups)
        SELECT (SELECT count(*) FROM inserted), \(rollupsWritten)
        """

    /// The fast path's statement, after the batch's self-located lines went into `usage_events` by COPY (an id stored in
    /// its partition, or repeated in the batch, failed that COPY on the partition's unique index): take the request-id
    /// lock shared and check that no id of the batch is claimed in `usage_request_ids` (by a row elsewhere, or a dropped
    /// month; such a batch fails here with the same unique violation and goes through staging) — both in
    /// `tollgate_usage_assert_unclaimed`, whose query sees what the lock waited for — then add the hourly groups computed from the lines to the
    /// rollups, and wake whoever watches usage (pg_notify, delivered at commit).
    static let rollUpBatch = """
        WITH unclaimed AS MATERIALIZED (
            SELECT tollgate_usage_assert_unclaimed($17::uuid[]) AS checked
        ), groups AS MATERIALIZED (
            SELECT g.hour_start, g.subscription_id, g.product, g.team, g.cost_center, g.backend, g.deployment, g.model, g.usage_source,
                g.requests, g.prompt_tokens, g.completion_tokens, g.total_tokens, g.cached_tokens, g.reasoning_tokens
            FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
                        $10::int8[], $11::int8[], $12::int8[], $13::int8[], $14::int8[], $15::int8[])
                AS g (hour_start, subscription_id, product, team, cost_center, backend, deployment, model, usage_source,
                    requests, prompt_tokens, completion_tokens, total_tokens, cached_tokens, reasoning_tokens)
            WHERE (SELECT checked FROM unclaimed)
        ), \(rollUpGroups)
        SELECT pg_notify('\(NotificationChannel.usage.name)', $16::text), \(rollupsWritten)
        """

    /// The rest of both paths' one statement, after a CTE `groups` that holds the batch's new rows grouped by hourly key
    /// (hour_start, subscription_id, product, team, cost_center, backend, deployment, model, usage_source, then the six sums):
    /// add them to `usage_hourly`, add their days to `usage_daily_rollup`, and book the part that falls before the end of the
    /// closed books in `usage_corrections`, in the first open month. Every row lock is taken in one order by every writer:
    /// hourly rows in key order, all of them (the daily insert waits for `rolled` to be read to its end), then daily rows in
    /// key order, so concurrent writers cannot deadlock. A constant (no value goes through `unescaped:`).
    ///
    /// The statement's snapshot is taken after it has locked `usage_hourly`; a period close holds a SHARE lock on that
    /// table until it commits, so the close is either seen here (the batch's closed hours are corrections) or waits for
    /// this transaction (they are regular usage of the month being closed).
    static let rollUpGroups = """
        rolled AS (
            INSERT INTO usage_hourly AS h (hour_start, subscription_id, product, team, cost_center, backend, deployment, model, usage_source,
                requests, prompt_tokens, completion_tokens, total_tokens, cached_tokens, reasoning_tokens)
            SELECT hour_start, subscription_id, product, team, cost_center, backend, deployment, model, usage_source,
                requests, prompt_tokens, completion_tokens, total_tokens, cached_tokens, reasoning_tokens
            FROM groups
            ORDER BY 1, 2, 3, 4, 5, 6, 7, 8, 9
            ON CONFLICT (hour_start, subscription_id, product, team, cost_center, backend, deployment, model, usage_source) DO UPDATE SET
                requests = h.requests + EXCLUDED.requests, prompt_tokens = h.prompt_tokens + EXCLUDED.prompt_tokens,
                completion_tokens = h.completion_tokens + EXCLUDED.completion_tokens, total_tokens = h.total_tokens + EXCLUDED.total_tokens,
                cached_tokens = h.cached_tokens + EXCLUDED.cached_tokens, reasoning_tokens = h.reasoning_tokens + EXCLUDED.reasoning_tokens
            RETURNING 1
        ), daily AS (
            INSERT INTO usage_daily_rollup AS d (day_start, subscription_id, product, team, cost_center, backend, deployment, model, usage_source,
                requests, prompt_tokens, completion_tokens, total_tokens, cached_tokens, reasoning_tokens)
            SELECT date_trunc('day', hour_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', subscription_id, product, team, cost_center, backend,
                deployment, model, usage_source, sum(requests), sum(prompt_tokens), sum(completion_tokens), sum(total_tokens),
                sum(cached_tokens), sum(reasoning_tokens)
            FROM groups
            WHERE (SELECT count(*) FROM rolled) >= 0
            GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
            ORDER BY 1, 2, 3, 4, 5, 6, 7, 8, 9
            ON CONFLICT (day_start, subscription_id, product, team, cost_center, backend, deployment, model, usage_source) DO UPDATE SET
                requests = d.requests + EXCLUDED.requests, prompt_tokens = d.prompt_tokens + EXCLUDED.prompt_tokens,
                completion_tokens = d.completion_tokens + EXCLUDED.completion_tokens, total_tokens = d.total_tokens + EXCLUDED.total_tokens,
                cached_tokens = d.cached_tokens + EXCLUDED.cached_tokens, reasoning_tokens = d.reasoning_tokens + EXCLUDED.reasoning_tokens
        ), late AS (
            INSERT INTO usage_corrections (booked_period_start, hour_start, subscription_id, product, team, cost_center, backend,
                deployment, model, usage_source, requests, prompt_tokens, completion_tokens, total_tokens, cached_tokens, reasoning_tokens)
            SELECT c.closed_through, g.hour_start, g.subscription_id, g.product, g.team, g.cost_center, g.backend, g.deployment, g.model,
                g.usage_source, g.requests, g.prompt_tokens, g.completion_tokens, g.total_tokens, g.cached_tokens, g.reasoning_tokens
            FROM groups g, (SELECT max(period_end) AS closed_through FROM billing_period_closes) c
            WHERE g.hour_start < c.closed_through
        )
        """

    /// A column of the statement's final SELECT that tells the `usage_hourly` triggers (sql/0302) that this transaction's
    /// statement kept the daily rollup and the corrections itself. Statement triggers fire after the whole statement, so
    /// after this has run; the setting ends with the transaction.
    static let rollupsWritten = "set_config('tollgate.rollups_written_by', 'usage_store', true)"
}
