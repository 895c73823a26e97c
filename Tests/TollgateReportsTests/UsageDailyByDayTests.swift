import Foundation
import PostgresNIO
import Testing
import TollgateCore
import TollgateReports
import TollgateStore
import TollgateTestSupport

/// `reporting.usage_daily` (sql/0311) reads one UTC day per call of `tollgate_usage_day` and prices a daily rollup row on
/// its own instead of grouping every priced line again. It must give exactly what the 0101 definition gave, row for row
/// and digit for digit, on days with everything that changes a price: `ChargebackByMonthTests`' October and November (a
/// price change at midnight on the 15th, backend and deployment prices, a deployment price and a model-wide price
/// starting mid-day, PTU, an unpriced model, late usage after the close), plus a model whose first price starts mid-day
/// (one key with an unpriced and a priced row that day), two price versions summed into one row, a reasoning price, and
/// the last hour of October next to the first of November.
@Suite(.freshDatabase) struct UsageDailyByDayTests {
    /// The 0101 definition of reporting.usage_daily: every billing line priced, then grouped.
    static let previousDefinition = """
        SELECT (hour_start AT TIME ZONE 'UTC')::date AS usage_date, subscription_id, team, cost_center, product, backend, deployment, model,
            usage_source, sum(requests)::bigint AS requests, sum(prompt_tokens)::bigint AS prompt_tokens,
            sum(cached_tokens)::bigint AS cached_tokens, sum(completion_tokens)::bigint AS completion_tokens,
            sum(reasoning_tokens)::bigint AS reasoning_tokens, sum(total_tokens)::bigint AS total_tokens,
            price_id IS NOT NULL AS priced, sum(cost) AS list_cost, currency, committed
        FROM priced_usage_lines
        WHERE line_kind = 'billing'
        GROUP BY 1, subscription_id, team, cost_center, product, backend, deployment, model, usage_source, price_id IS NOT NULL, currency, committed
        """

    /// The columns the 0101 view had, in its order.
    static let columns = """
        usage_date, subscription_id, team, cost_center, product, backend, deployment, model, usage_source, requests, prompt_tokens,
        cached_tokens, completion_tokens, reasoning_tokens, total_tokens, priced, list_cost, currency, committed
        """

    /// A deliberately wrong daily view: every daily rollup row priced at the start of its day, as if no day were split.
    static let pricedAtDayStart = """
        SELECT (d.day_start AT TIME ZONE 'UTC')::date, d.subscription_id, d.team, d.cost_center, d.product, d.backend, d.deployment, d.model,
            d.usage_source, d.requests, d.prompt_tokens, d.cached_tokens, d.completion_tokens, d.reasoning_tokens, d.total_tokens,
            p.id IS NOT NULL,
            ((d.prompt_tokens - d.cached_tokens) * p.input_per_1m + d.cached_tokens * coalesce(p.cached_input_per_1m, p.input_per_1m)
                + CASE WHEN p.reasoning_per_1m IS NULL THEN d.completion_tokens * p.output_per_1m
                       ELSE (d.completion_tokens - d.reasoning_tokens) * p.output_per_1m + d.reasoning_tokens * p.reasoning_per_1m END
            ) * 0.000001,
            p.currency, c.backend IS NOT NULL
        FROM usage_daily_rollup d
        LEFT JOIN model_price_versions pd ON pd.model = d.model AND pd.backend = d.backend AND pd.deployment = d.deployment
            AND pd.deployment <> '' AND d.day_start >= pd.effective_from AND d.day_start < pd.effective_to
        LEFT JOIN model_price_versions pb ON pb.model = d.model AND pb.backend = d.backend AND pb.backend <> '' AND pb.deployment = ''
            AND d.day_start >= pb.effective_from AND d.day_start < pb.effective_to
        LEFT JOIN model_price_versions pm ON pm.model = d.model AND pm.backend = '' AND pm.deployment = ''
            AND d.day_start >= pm.effective_from AND d.day_start < pm.effective_to
        LEFT JOIN model_prices p ON p.id = coalesce(pd.id, pb.id, pm.id)
        LEFT JOIN ptu_commitment_versions c ON c.backend = d.backend AND c.monthly_amount > 0
            AND d.day_start >= c.effective_from AND d.day_start < c.effective_to
        """

    /// gpt-4.1 has no price before 2026-10-22T09:00Z; o3-mini bills reasoning apart from the 25th (at midnight).
    static let morePrices = """
        model,backend,deployment,currency,effective_from,input_per_1m,cached_input_per_1m,output_per_1m,reasoning_per_1m
        gpt-4.1,,,USD,2026-10-22T09:00:00Z,3.00,0.75,12.00,
        o3-mini,,,USD,2026-10-25,1.10,0.55,4.40,8.80
        """

    static let moreUsage = [
        ChargebackMonthTests.event(40, "chat-prod", "gpt-4.1", "openai", "2026-10-22T08:00:00Z", prompt: 100_000, completion: 10_000),
        ChargebackMonthTests.event(
            41, "chat-prod", "gpt-4.1", "openai", "2026-10-22T09:00:00Z", prompt: 200_000, cached: 100_000, completion: 20_000),
        ChargebackMonthTests.event(42, "chat-prod", "gpt-4.1", "openai", "2026-10-22T10:30:00Z", prompt: 100_000, completion: 0),
        ChargebackMonthTests.event(43, "search-prod", "gpt-4.1", "openai", "2026-10-22T08:30:00Z", prompt: 50_000, completion: 0),
        // gpt-4o-mini costs 1.00 / 4.00 until 12:00 on the 15th, then 2.00 / 8.00 (ChargebackByMonthTests.extraPrices).
        ChargebackMonthTests.event(44, "search-prod", "gpt-4o-mini", "openai", "2026-10-15T03:00:00Z", prompt: 1_000_000, completion: 0),
        ChargebackMonthTests.event(45, "search-prod", "gpt-4o-mini", "openai", "2026-10-15T18:00:00Z", prompt: 500_000, completion: 100_000),
        ChargebackMonthTests.event(
            46, "evil-prod", "o3-mini", "openai", "2026-10-26T10:00:00Z", prompt: 10_000, completion: 20_000, reasoning: 15_000),
        ChargebackMonthTests.event(47, "search-prod", "gpt-4o", "openai", "2026-10-31T23:30:00Z", prompt: 100_000, completion: 0),
        ChargebackMonthTests.event(48, "search-prod", "gpt-4o", "openai", "2026-11-01T00:00:00Z", prompt: 100_000, completion: 0),
    ]

    static func count(_ sql: String, _ connection: PostgresConnection) async throws -> Int {
        try await connection.query(PostgresQuery(unsafeSQL: sql), logger: TestDatabase.logger).collect().first?.decode(Int.self) ?? -1
    }

    /// Rows in one query's result and not the other's (both ways, duplicates counted), compared as text so that a
    /// different numeric scale counts as a difference too.
    static func difference(_ a: String, _ b: String, _ connection: PostgresConnection) async throws -> Int {
        try await count(
            """
            SELECT count(*) FROM (
                (SELECT r::text FROM (\(a)) r EXCEPT ALL SELECT r::text FROM (\(b)) r)
                UNION ALL
                (SELECT r::text FROM (\(b)) r EXCEPT ALL SELECT r::text FROM (\(a)) r)) d
            """, connection)
    }

    @Test func dailyViewEqualsPricingEveryLine() async throws {
        try await TestDatabase.withClient { client in
            let logger = TestDatabase.logger
            try await ChargebackByMonthTests.seed(client, morePrices: Self.morePrices, moreUsage: Self.moreUsage)
            try await client.withConnection { connection in
                // The per-line reference is estimated expensive enough for JIT, whose compile takes seconds here.
                try await connection.query("SET jit = off", logger: logger)
                // The data holds what the comparison is about: days split by a price starting inside them, late usage,
                // unpriced usage, a key priced on one side of a split and not the other, and a wrong view differs.
                #expect(try await Self.count("SELECT count(*) FROM price_split_days WHERE day_start >= '2026-10-01T00:00:00Z'", connection) == 3)
                #expect(try await Self.count("SELECT count(*) FROM usage_corrections", connection) > 0)
                #expect(try await Self.count("SELECT count(*) FROM (\(Self.previousDefinition)) r WHERE NOT priced", connection) == 3)
                #expect(try await Self.difference(Self.previousDefinition, Self.pricedAtDayStart, connection) > 0)

                for zone in ["UTC", "America/New_York", "Asia/Kolkata"] {
                    try await connection.query(PostgresQuery(unsafeSQL: "SET TIME ZONE '\(zone)'"), logger: logger)
                    let all = try await Self.count("SELECT count(*) FROM reporting.usage_daily", connection)
                    #expect(all >= 20, "\(zone)")
                    #expect(
                        try await Self.difference(Self.previousDefinition, "SELECT \(Self.columns) FROM reporting.usage_daily", connection) == 0,
                        "\(zone)")
                    // Finance's shapes for one month: by usage_date (docs/reporting.md) and by period_start.
                    let october = "usage_date >= '2026-10-01' AND usage_date < '2026-11-01'"
                    let reference = "SELECT * FROM (\(Self.previousDefinition)) r WHERE \(october)"
                    #expect(try await Self.count("SELECT count(*) FROM (\(reference)) r", connection) >= 15, "\(zone)")
                    #expect(
                        try await Self.difference(reference, "SELECT \(Self.columns) FROM reporting.usage_daily WHERE \(october)", connection) == 0,
                        "\(zone)")
                    #expect(
                        try await Self.difference(
                            reference, "SELECT \(Self.columns) FROM reporting.usage_daily WHERE period_start = '2026-10-01T00:00:00Z'", connection)
                            == 0, "\(zone)")
                    #expect(
                        try await Self.difference(
                            "SELECT usage_date, sum(list_cost), sum(total_tokens) FROM (\(reference)) r GROUP BY 1",
                            "SELECT usage_date, sum(list_cost), sum(total_tokens) FROM reporting.usage_daily WHERE \(october) GROUP BY 1", connection)
                            == 0, "\(zone)")
                    // period_start is the first instant (UTC) of usage_date's month, whatever the session's time zone.
                    #expect(
                        try await Self.count(
                            """
                            SELECT count(*) FROM reporting.usage_daily
                            WHERE period_start IS DISTINCT FROM date_trunc('month', usage_date::timestamp) AT TIME ZONE 'UTC'
                            """, connection) == 0, "\(zone)")
                    #expect(
                        try await Self.count(
                            "SELECT count(DISTINCT period_start) FROM reporting.usage_daily WHERE usage_date IN ('2026-10-31', '2026-11-01')",
                            connection) == 2, "\(zone)")
                }
                try await connection.query("RESET TIME ZONE", logger: logger)
                try await connection.query("RESET jit", logger: logger)
            }

            // Worked by hand. gpt-4.1 on the 22nd: 08:00 unpriced (0.1M + 0.01M), then 0.1M × 3.00 + 0.1M × 0.75 + 0.02M × 12.00
            // = 0.615 at 09:00 and 0.1M × 3.00 = 0.30 at 10:30: one unpriced and one priced row for the same key.
            let split = try await client.query(
                """
                SELECT priced, prompt_tokens, total_tokens, list_cost FROM reporting.usage_daily
                WHERE usage_date = '2026-10-22' AND subscription_id = 'chat-prod' AND model = 'gpt-4.1' ORDER BY priced
                """, logger: logger
            ).collect().map { try $0.decode((Bool, Int64, Int64, Decimal?).self) }
            #expect(split.map(\.0) == [false, true])
            #expect(split.map(\.1) == [100_000, 300_000])
            #expect(split.map(\.2) == [110_000, 320_000])
            #expect(split.map(\.3) == [nil, Decimal(string: "0.915")!])
            // gpt-4o-mini on the 15th, both sides priced: 1M × 1.00 before 12:00, 0.5M × 2.00 + 0.1M × 8.00 after: one row of 2.80.
            // o3-mini on the 26th with a reasoning price: 0.01M × 1.10 + 0.005M × 4.40 + 0.015M × 8.80 = 0.165.
            let rows = try await client.query(
                """
                SELECT usage_date::text, model, list_cost::text FROM reporting.usage_daily
                WHERE (usage_date = '2026-10-15' AND subscription_id = 'search-prod' AND model = 'gpt-4o-mini')
                    OR (usage_date = '2026-10-26' AND model = 'o3-mini')
                ORDER BY 1
                """, logger: logger
            ).collect().map { try $0.decode((String, String, String).self) }
            #expect(rows.map(\.0) == ["2026-10-15", "2026-10-26"])
            #expect(rows.compactMap { Decimal(string: $0.2) } == [Decimal(string: "2.80")!, Decimal(string: "0.165")!])

            // tollgate_reader reads the view (the function runs with its owner's rights) but cannot read the tables under it.
            try await client.withConnection { connection in
                try await connection.query("SET ROLE tollgate_reader", logger: logger)
                #expect(
                    try await Self.count("SELECT count(*) FROM reporting.usage_daily WHERE period_start = '2026-10-01T00:00:00Z'", connection) >= 15)
                try await connection.query("RESET ROLE", logger: logger)
            }
        }
    }
}
