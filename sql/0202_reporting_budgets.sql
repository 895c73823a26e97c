-- 0202_reporting_budgets.sql: the published budget views. A column may be added, never renamed, retyped or removed.
CREATE SCHEMA IF NOT EXISTS reporting;

-- Every action taken on a budget or a subscription's state, oldest first by id.
CREATE OR REPLACE VIEW reporting.budget_events AS
SELECT a.id AS event_id, a.occurred_at, a.budget, a.subscription_id, a.period_start, a.period_end, a.event,
       a.measured, a.limit_amount, a.threshold_percent, a.action, a.adapter, a.adapter_result, a.actor, a.reason
FROM budget_audit a;

-- Each budget in its current period: use, limit (with one-off increases), percent, linear forecast and state.
-- state: 'suspended' (the rules engine holds subscriptions suspended for it), 'exceeded' (use at or over the limit),
-- 'warning' (a threshold fired this period), 'ok'. The forecast is null in the first tenth of the period.
CREATE OR REPLACE VIEW reporting.budget_status AS
SELECT b.name AS budget, b.scope_kind, b.scope_value, b.metric, b.currency, b.period, b.time_zone,
       p.period_start, p.period_end,
       m.current_use,
       b.limit_amount + coalesce(adj.total, 0) AS effective_limit,
       b.limit_amount,
       round(m.current_use * 100 / (b.limit_amount + coalesce(adj.total, 0)), 2) AS percent_used,
       CASE WHEN e.elapsed > 0 AND e.elapsed >= e.length / 10 THEN round(m.current_use * e.length / e.elapsed, 10) END AS forecast,
       CASE
           WHEN EXISTS (SELECT 1 FROM budget_suspensions s WHERE s.budget = b.name AND s.period_start = p.period_start
                        AND s.status IN ('pending', 'suspended')) THEN 'suspended'
           WHEN m.current_use >= b.limit_amount + coalesce(adj.total, 0) THEN 'exceeded'
           WHEN EXISTS (SELECT 1 FROM budget_firings f WHERE f.budget = b.name AND f.period_start = p.period_start) THEN 'warning'
           ELSE 'ok'
       END AS state
FROM budgets b
CROSS JOIN LATERAL tollgate_period_bounds(b.period, b.time_zone, now()) p
CROSS JOIN LATERAL (SELECT tollgate_budget_measure(b.scope_kind, b.scope_value, b.metric, b.currency, p.period_start, p.period_end)
                    AS current_use) m
CROSS JOIN LATERAL (SELECT extract(epoch FROM now() - p.period_start) AS elapsed,
                           extract(epoch FROM p.period_end - p.period_start) AS length) e
LEFT JOIN LATERAL (SELECT sum(a.amount) AS total FROM budget_adjustments a
                   WHERE a.budget = b.name AND a.period_start = p.period_start) adj ON true;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tollgate_reader') THEN
        GRANT USAGE ON SCHEMA reporting TO tollgate_reader;
        GRANT SELECT ON reporting.budget_events, reporting.budget_status TO tollgate_reader;
    END IF;
END $$;
