import Foundation
import Logging
import PostgresNIO

/// Checks of the rollups the usage writer and the `usage_hourly` triggers keep: what every write path must leave exact.
public enum Rollups {
    /// Request and token sums of one rollup row or of a group of rows.
    public struct Totals: Hashable, Sendable, CustomStringConvertible {
        public var requests, prompt, completion, total, cached, reasoning: Int
        public init(requests: Int, prompt: Int, completion: Int, total: Int, cached: Int, reasoning: Int) {
            (self.requests, self.prompt, self.completion, self.total, self.cached, self.reasoning) =
                (requests, prompt, completion, total, cached, reasoning)
        }
        public var description: String {
            "requests \(requests), prompt \(prompt), completion \(completion), total \(total), cached \(cached), reasoning \(reasoning)"
        }
    }

    /// Every difference between `usage_daily_rollup` and the sums of `usage_hourly` by UTC day and key: a daily row that
    /// differs from its hours, a daily row without hours, hours without a daily row. Empty when the daily rollup is exact.
    public static func dailyDrift(_ client: PostgresClient, logger: Logger) async throws -> [String] {
        let rows = try await client.query(
            """
            SELECT concat_ws(' ', to_char(day_start AT TIME ZONE 'UTC', 'YYYY-MM-DD'), subscription_id, product, team, cost_center, backend,
                       deployment, model, usage_source),
                   format('hourly %s, daily %s', (h.requests, h.prompt_tokens, h.completion_tokens, h.total_tokens, h.cached_tokens, h.reasoning_tokens),
                       (d.requests, d.prompt_tokens, d.completion_tokens, d.total_tokens, d.cached_tokens, d.reasoning_tokens))
            FROM (
                SELECT date_trunc('day', hour_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS day_start, subscription_id, product, team,
                    cost_center, backend, deployment, model, usage_source, sum(requests) AS requests, sum(prompt_tokens) AS prompt_tokens,
                    sum(completion_tokens) AS completion_tokens, sum(total_tokens) AS total_tokens, sum(cached_tokens) AS cached_tokens,
                    sum(reasoning_tokens) AS reasoning_tokens
                FROM usage_hourly GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
            ) h
            FULL JOIN usage_daily_rollup d USING (day_start, subscription_id, product, team, cost_center, backend, deployment, model, usage_source)
            WHERE (h.requests, h.prompt_tokens, h.completion_tokens, h.total_tokens, h.cached_tokens, h.reasoning_tokens)
                IS DISTINCT FROM (d.requests, d.prompt_tokens, d.completion_tokens, d.total_tokens, d.cached_tokens, d.reasoning_tokens)
            ORDER BY 1
            """, logger: logger)
        var drift: [String] = []
        for try await (key, sums) in rows.decode((String, String).self) { drift.append("\(key): \(sums)") }
        return drift
    }

    /// One subscription's `usage_daily_rollup`, by UTC day (`2026-11-25`), summed over its other key columns.
    public static func daily(_ client: PostgresClient, subscription: String, logger: Logger) async throws -> [String: Totals] {
        let rows = try await client.query(
            """
            SELECT to_char(day_start AT TIME ZONE 'UTC', 'YYYY-MM-DD'), sum(requests)::bigint, sum(prompt_tokens)::bigint,
                sum(completion_tokens)::bigint, sum(total_tokens)::bigint, sum(cached_tokens)::bigint, sum(reasoning_tokens)::bigint
            FROM usage_daily_rollup WHERE subscription_id = \(subscription) GROUP BY 1
            """, logger: logger)
        var days: [String: Totals] = [:]
        for try await (day, r, p, c, t, k, z) in rows.decode((String, Int, Int, Int, Int, Int, Int).self) {
            days[day] = Totals(requests: r, prompt: p, completion: c, total: t, cached: k, reasoning: z)
        }
        return days
    }

    /// One subscription's late-usage bookings in `usage_corrections`, by the month they are booked in (`2026-11`) and the
    /// UTC day of the hour they were used in: `2026-11 2026-10-31`.
    public static func corrections(_ client: PostgresClient, subscription: String, logger: Logger) async throws -> [String: Totals] {
        let rows = try await client.query(
            """
            SELECT to_char(booked_period_start AT TIME ZONE 'UTC', 'YYYY-MM') || ' ' || to_char(hour_start AT TIME ZONE 'UTC', 'YYYY-MM-DD'),
                sum(requests)::bigint, sum(prompt_tokens)::bigint, sum(completion_tokens)::bigint, sum(total_tokens)::bigint,
                sum(cached_tokens)::bigint, sum(reasoning_tokens)::bigint
            FROM usage_corrections WHERE subscription_id = \(subscription) GROUP BY 1
            """, logger: logger)
        var booked: [String: Totals] = [:]
        for try await (key, r, p, c, t, k, z) in rows.decode((String, Int, Int, Int, Int, Int, Int).self) {
            booked[key] = Totals(requests: r, prompt: p, completion: c, total: t, cached: k, reasoning: z)
        }
        return booked
    }
}
