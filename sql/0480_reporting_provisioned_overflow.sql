-- 0480_reporting_provisioned_overflow.sql: provisioned capacity against pay-as-you-go overflow (issue 12, item 4).
--
-- A backend is provisioned in an hour when a PTU commitment is in force on it then (ptu_commitments, effective-dated by
-- month); its usage is covered by the commitment (the chargeback allocates the commitment by those tokens). Every other
-- backend is pay-as-you-go: its usage is spend at the price in force. With pools (several backends behind one
-- deployment name, the provisioned one first), what spills over from a busy provisioned backend shows here.

CREATE VIEW reporting.provisioned_overflow_hourly AS
SELECT hour_start,
    subscription_id,
    nullif(team, '') AS team,
    nullif(deployment, '') AS deployment,
    coalesce(sum(requests) FILTER (WHERE committed), 0)::bigint AS provisioned_requests,
    coalesce(sum(total_tokens) FILTER (WHERE committed), 0)::bigint AS provisioned_tokens,
    coalesce(sum(requests) FILTER (WHERE NOT committed), 0)::bigint AS overflow_requests,
    coalesce(sum(total_tokens) FILTER (WHERE NOT committed), 0)::bigint AS overflow_tokens,
    -- Pay-as-you-go spend at the price in force, unrounded; the tokens without a price are counted apart, never as 0.
    sum(cost) FILTER (WHERE NOT committed) AS overflow_cost,
    coalesce(sum(total_tokens) FILTER (WHERE NOT committed AND cost IS NULL), 0)::bigint AS overflow_unpriced_tokens,
    max(currency) FILTER (WHERE NOT committed) AS currency,
    -- The share of the hour's tokens that went to pay-as-you-go backends.
    round(coalesce(sum(total_tokens) FILTER (WHERE NOT committed), 0)::numeric / nullif(sum(total_tokens), 0), 6) AS spillover_rate
FROM priced_usage_hourly
GROUP BY hour_start, subscription_id, team, deployment;

GRANT SELECT ON reporting.provisioned_overflow_hourly TO tollgate_reader;
