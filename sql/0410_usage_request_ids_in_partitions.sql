-- 0410_usage_request_ids_in_partitions.sql: the ledger's request ids are unique inside each monthly partition, and
-- usage_request_ids keeps only the ids a partition's own index cannot vouch for.
--
-- sql/0400 claimed every request id in usage_request_ids, in the same transaction as its row: a second heap row and a
-- second index entry per event, which cost the writer a quarter of its speed against a plain COPY into the ledger.
-- Most ids need none of that. The gateway mints its request ids as UUIDv7 at the moment the request starts, and that
-- moment is the row's started_at: such a row is *self-located*, its id alone says which month's partition it is in. A
-- replayed spool line, a writer's retry or a rewritten line of the same request that still falls in the id's month all
-- meet the first row in that partition, whose unique index on request_id (below, on every partition) stops them; the
-- index is part of the ledger table, so a raw COPY into it pays for it too.
--
-- The ids that are not self-located (an ingested event's UUIDv4 or name-based UUIDv5, or a UUIDv7 whose row was moved
-- to another month) are still claimed in usage_request_ids, and so are the ids of a month retention dropped (its rows
-- are gone, its ids stay, so a late replay of it lands nothing). Every writer then holds this invariant:
--   a request id is stored at most once across all partitions, because
--   - a self-located row checks usage_request_ids (a read: is the id claimed by a row elsewhere, or dropped?) and its
--     own partition's unique index, which is where any other self-located row of the same id must be;
--   - a row that is not self-located checks usage_request_ids and every partition, then claims its id.
-- The two kinds of writer are kept apart by the advisory lock 7428190410: a batch of self-located rows only takes it
-- shared (gateway writers never wait for each other), a batch holding a row that is not self-located takes it
-- exclusively, so neither can miss the other's uncommitted row. UsageStore (Sources/TollgateStore/Usage) is the one
-- writer of the ledger and follows this; retention turns a month's ids into claims before it drops the partition.

-- Whether a row is self-located: its request id is a UUIDv7 whose timestamp (the first 48 bits, milliseconds since
-- 1970) falls in the UTC month of its started_at. UsageStore decides the same from the COPY line (HourlyRollup).
CREATE FUNCTION tollgate_usage_self_located(request_id uuid, started_at timestamptz) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN substr(request_id::text, 15, 1) = '7'
        AND tollgate_month_start(timestamptz '1970-01-01 00:00:00+00'
            + ('x' || substr(replace(request_id::text, '-', ''), 1, 12))::bit(48)::bigint * interval '1 millisecond')
            = tollgate_month_start(started_at);

-- The unique index of one partition: `<partition>_request_id`, the constraint name UsageStore recognises.
CREATE FUNCTION tollgate_index_usage_partition(partition_name text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('CREATE UNIQUE INDEX IF NOT EXISTS %I ON %I (request_id)', partition_name || '_request_id', partition_name);
END $$;

SELECT tollgate_index_usage_partition(c.relname)
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'usage_events'::regclass
ORDER BY c.relname;

-- A new month's partition gets its unique index before the rows the default partition caught move in.
CREATE OR REPLACE FUNCTION tollgate_create_usage_partition(month_start timestamptz) RETURNS boolean LANGUAGE plpgsql AS $$
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
    PERFORM tollgate_index_usage_partition(partition_name);
    EXECUTE format('WITH moved AS (DELETE FROM usage_events_default WHERE started_at >= $1 AND started_at < $2 RETURNING *) '
                   'INSERT INTO %I SELECT * FROM moved', partition_name) USING month_start, month_end;
    EXECUTE format('ALTER TABLE usage_events ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', partition_name, month_start, month_end);
    RETURN true;
END $$;

-- The claims a partition's index now vouches for go; claims of rows that are not self-located, and of dropped months
-- (no row left), stay.
DELETE FROM usage_request_ids r
USING usage_events e
WHERE e.request_id = r.request_id AND tollgate_usage_self_located(e.request_id, e.started_at);

COMMENT ON TABLE usage_request_ids IS
    'Request ids no partition''s unique index vouches for: rows that are not self-located, and months dropped by retention (sql/0410)';

-- The fast path's check, after its self-located rows went in by COPY: none of their ids may be claimed (by a row in
-- another partition, or a dropped month). Raised as the unique violation a stored id gives, so the writer takes the
-- batch through staging either way. It takes the writers' lock (shared) first, and its query, in a volatile function,
-- runs on a snapshot taken after that: it sees every claim whose writer it waited for. Taking the lock here rather
-- than in a statement of its own saves the fast path a round trip per batch.
CREATE FUNCTION tollgate_usage_assert_unclaimed(ids uuid[]) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(7428190410);
    -- A join with the array, not `= ANY (ids)`: planning `= ANY` over a 10,000-element array costs milliseconds a batch.
    IF EXISTS (SELECT 1 FROM unnest(ids) AS batch (request_id) JOIN usage_request_ids r USING (request_id)) THEN
        RAISE EXCEPTION 'a request id of the batch is already claimed in usage_request_ids'
            USING ERRCODE = 'unique_violation', CONSTRAINT = 'usage_request_ids_pkey';
    END IF;
    RETURN true;
END $$;
