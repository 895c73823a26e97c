-- 0460_admission_allowances.sql: minute limits shared by every instance, without a round trip per request (issue 14,
-- item 4).
--
-- A limit's allowance for one fixed UTC minute (`window_start`) is handed out to instances in slices: an instance leases
-- a slice, admits requests against it in memory, and leases the next before it runs out. `granted` is what has been
-- handed out for the window; `tollgate_lease_allowance` never takes it above `allowance`, whatever the number of
-- instances asking at once (the row is locked while the slice is cut), so the sum of what every instance admits in a
-- minute cannot pass the limit. An instance gives back what it will not use (shutting down); a slice lost with a crashed
-- instance is lost for the rest of that minute only, which errs on the side of refusing.
--
-- Rows are per (limit, scope, minute) and only for scopes with traffic; the gateway deletes windows older than an hour.

CREATE TABLE admission_allowances (
    limit_kind   text        NOT NULL CHECK (limit_kind IN ('tokens_per_minute', 'requests_per_minute')),
    scope        text        NOT NULL CHECK (scope <> ''),
    window_start timestamptz NOT NULL,
    allowance    bigint      NOT NULL CHECK (allowance > 0),
    granted      bigint      NOT NULL DEFAULT 0 CHECK (granted >= 0),
    PRIMARY KEY (limit_kind, scope, window_start)
);

-- Cuts a slice of at most `p_want` from the window's allowance: returns its size (0 when nothing is left) and what is
-- left of the allowance after it. The allowance in force is the caller's: a limit changed in the middle of a minute
-- applies to what is still to be granted.
CREATE FUNCTION tollgate_lease_allowance(
    p_kind text, p_scope text, p_window timestamptz, p_allowance bigint, p_want bigint, OUT slice bigint, OUT left_after bigint
) LANGUAGE plpgsql AS $$
DECLARE
    v_granted bigint;
BEGIN
    INSERT INTO admission_allowances (limit_kind, scope, window_start, allowance)
    VALUES (p_kind, p_scope, p_window, p_allowance)
    ON CONFLICT DO NOTHING;
    SELECT granted INTO v_granted FROM admission_allowances
    WHERE limit_kind = p_kind AND scope = p_scope AND window_start = p_window
    FOR UPDATE;
    slice := LEAST(GREATEST(p_want, 0), GREATEST(p_allowance - v_granted, 0));
    left_after := GREATEST(p_allowance - v_granted - slice, 0);
    UPDATE admission_allowances SET granted = granted + slice, allowance = p_allowance
    WHERE limit_kind = p_kind AND scope = p_scope AND window_start = p_window;
END
$$;
