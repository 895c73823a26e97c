-- 0400_usage_events_by_month.sql: the usage ledger partitioned by UTC month, with its request ids kept apart for dedup.
--
-- usage_events becomes a table partitioned by range of started_at (the event's occurrence time), one partition per UTC
-- month named usage_events_YYYY_MM, plus usage_events_default for a row of a month no partition covers yet: no row is
-- ever refused for its month. A month's raw rows can then go with one DROP TABLE (`tollgate usage retention`) once its
-- billing period is closed, while usage_hourly, usage_daily_rollup, usage_corrections and the reporting views, which
-- never read the ledger, keep the whole history. Partitions are created ahead of time by the service itself (at start-up
-- and every few hours, tollgate_create_usage_partitions below), and by this migration for the months already stored and
-- the next ones.
--
-- Dedup by request id across partitions. A partitioned table's unique key must include its partition key, so a primary
-- key on usage_events could only be (request_id, started_at): the same request id with two timestamps (an ingest batch
-- re-sent with a corrected time, a spool line rewritten) would land twice, in two months. The request id is therefore
-- the primary key of its own unpartitioned table, usage_request_ids, which every writer of the ledger inserts into in
-- the same transaction as the row; a stored id stops the row (UsageStore: the fast path fails on the key and the batch
-- goes through staging, `INSERT … ON CONFLICT DO NOTHING` on usage_request_ids, and only the rows whose id was new go
-- on to the ledger). Deriving the month from the id instead (UUIDv7 carries its mint time) was rejected: ingested
-- events carry ids minted elsewhere (UUIDv4, or strings hashed to UUIDv5), whose bits say nothing of when they happened.
-- usage_request_ids is not pruned when a raw month is dropped: a spool or batch replayed after retention still lands
-- nothing twice, and an id costs a small fraction of a raw row.
--
-- Existing databases are migrated in place: the rows are copied into the partitioned table (and their ids into
-- usage_request_ids) inside this migration's transaction, then the old table is dropped.

CREATE TABLE usage_request_ids (
    request_id uuid PRIMARY KEY  -- the ledger's idempotency key, one row per usage_events row ever written
);

ALTER TABLE usage_events RENAME TO usage_events_unpartitioned;
ALTER TABLE usage_events_unpartitioned DROP CONSTRAINT usage_events_pkey;
DROP INDEX usage_events_by_subscription_time;
DROP INDEX usage_events_by_time;
-- Its CHECK constraints go too (the rows were checked when they landed), so the new table's take the same names.
DO $$
DECLARE
    constraint_name text;
BEGIN
    FOR constraint_name IN SELECT conname FROM pg_constraint WHERE conrelid = 'usage_events_unpartitioned'::regclass AND contype = 'c' LOOP
        EXECUTE format('ALTER TABLE usage_events_unpartitioned DROP CONSTRAINT %I', constraint_name);
    END LOOP;
END $$;

CREATE TABLE usage_events (
    request_id         uuid        NOT NULL,     -- unique through usage_request_ids (see above); retries reuse it
    response_id        text,
    started_at         timestamptz NOT NULL,     -- the partition key: the event's UTC month
    ended_at           timestamptz NOT NULL,
    subscription_id    text        NOT NULL,
    product            text,
    team               text,
    cost_center        text,
    backend            text        NOT NULL,
    deployment         text,
    model              text        NOT NULL,
    route              text        NOT NULL,
    http_status        smallint    NOT NULL,
    latency_ms         integer     NOT NULL CHECK (latency_ms >= 0),
    streamed           boolean     NOT NULL,
    prompt_tokens      integer     NOT NULL CHECK (prompt_tokens >= 0),
    completion_tokens  integer     NOT NULL CHECK (completion_tokens >= 0),
    total_tokens       integer     NOT NULL CHECK (total_tokens >= 0),
    cached_tokens      integer     NOT NULL CHECK (cached_tokens >= 0 AND cached_tokens <= prompt_tokens),
    reasoning_tokens   integer     NOT NULL CHECK (reasoning_tokens >= 0 AND reasoning_tokens <= completion_tokens),
    usage_source       text        NOT NULL CHECK (usage_source IN ('reported', 'estimated', 'missing')),
    source             text        NOT NULL DEFAULT 'gateway',
    recorded_at        timestamptz NOT NULL DEFAULT now(),
    CHECK (ended_at >= started_at)
) PARTITION BY RANGE (started_at);
CREATE INDEX usage_events_by_subscription_time ON usage_events (subscription_id, started_at);
CREATE INDEX usage_events_by_time ON usage_events USING brin (started_at);
CREATE TABLE usage_events_default PARTITION OF usage_events DEFAULT;

-- The partition of the UTC month starting at month_start: created if missing, and given the rows of that month the
-- default partition caught meanwhile (a partition cannot be added over rows the default holds, so they move first).
CREATE FUNCTION tollgate_create_usage_partition(month_start timestamptz) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    month_end constant timestamptz := tollgate_month_end(month_start);
    partition_name constant text := 'usage_events_' || to_char(month_start AT TIME ZONE 'UTC', 'YYYY_MM');
BEGIN
    IF month_start <> tollgate_month_start(month_start) THEN
        RAISE EXCEPTION 'a usage partition starts on the first of a UTC month, not at %', month_start;
    END IF;
    IF to_regclass(partition_name) IS NOT NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE usage_events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', partition_name);
    EXECUTE format('WITH moved AS (DELETE FROM usage_events_default WHERE started_at >= $1 AND started_at < $2 RETURNING *) '
                   'INSERT INTO %I SELECT * FROM moved', partition_name) USING month_start, month_end;
    EXECUTE format('ALTER TABLE usage_events ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', partition_name, month_start, month_end);
    RETURN true;
END $$;

-- What the service runs at start-up and every few hours: the partitions of the current UTC month and of `ahead` months
-- after it, and of every month the default partition holds rows of. Serialised by a transaction-level advisory lock,
-- so instances starting together create each partition once. Returns the partitions it created.
CREATE FUNCTION tollgate_create_usage_partitions(at_time timestamptz, ahead integer) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    first_day timestamptz;
BEGIN
    PERFORM pg_advisory_xact_lock(7428190400);
    FOR first_day IN
        SELECT tollgate_month_start(at_time) + make_interval(months => n) FROM generate_series(0, ahead) AS n
        UNION
        SELECT DISTINCT tollgate_month_start(started_at) FROM usage_events_default
        ORDER BY 1
    LOOP
        IF tollgate_create_usage_partition(first_day) THEN
            RETURN NEXT 'usage_events_' || to_char(first_day AT TIME ZONE 'UTC', 'YYYY_MM');
        END IF;
    END LOOP;
END $$;

-- The months already stored, then their rows and ids.
SELECT tollgate_create_usage_partition(m)
FROM (SELECT DISTINCT tollgate_month_start(started_at) AS m FROM usage_events_unpartitioned) stored
ORDER BY m;
SELECT tollgate_create_usage_partitions(now(), 3);
INSERT INTO usage_events SELECT * FROM usage_events_unpartitioned;
INSERT INTO usage_request_ids SELECT request_id FROM usage_events_unpartitioned;
DROP TABLE usage_events_unpartitioned;
