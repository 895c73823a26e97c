-- Rules that only triggers enforce (append-only price versions, a closed month's prices and commitments, the
-- append-only audit trail) now name themselves in the error's constraint field, so the store can turn them into
-- domain errors with stable codes (DomainRuleError) instead of letting a raw database error reach the admin API or
-- the CLI. The SQLSTATEs are unchanged.

CREATE OR REPLACE FUNCTION tollgate_guard_closed_prices() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    closed_through timestamptz;
BEGIN
    IF TG_OP <> 'INSERT' THEN
        RAISE EXCEPTION 'prices are versioned: add a version with a later effective_from instead of changing or deleting one'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'tollgate_price_versions_append_only';
    END IF;
    SELECT max(period_end) INTO closed_through FROM billing_period_closes;
    IF closed_through IS NOT NULL AND NEW.effective_from < closed_through THEN
        RAISE EXCEPTION 'price for % starts at %, inside a closed billing period (closed through %)', NEW.model, NEW.effective_from, closed_through
            USING ERRCODE = 'check_violation', CONSTRAINT = 'tollgate_price_in_closed_period';
    END IF;
    RETURN NEW;
END $$;

CREATE OR REPLACE FUNCTION tollgate_guard_closed_commitments() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    closed_through timestamptz;
BEGIN
    SELECT max(period_end) INTO closed_through FROM billing_period_closes;
    IF closed_through IS NOT NULL AND (
        (TG_OP <> 'DELETE' AND NEW.effective_from < closed_through) OR (TG_OP <> 'INSERT' AND OLD.effective_from < closed_through)) THEN
        RAISE EXCEPTION 'the commitment of a closed billing period cannot change (closed through %)', closed_through
            USING ERRCODE = 'check_violation', CONSTRAINT = 'tollgate_commitment_frozen';
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END $$;

CREATE OR REPLACE FUNCTION tollgate_budget_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege', CONSTRAINT = 'tollgate_audit_append_only';
END $$;
