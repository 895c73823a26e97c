import Foundation
import PostgresNIO
import Testing
import TollgateCore
import TollgateReports
import TollgateStore
import TollgateTestSupport

/// `tollgate_chargeback_facts` and `reporting.chargeback_monthly` (sql/0310) group a month's quantities first and price
/// each group once. They must give exactly what pricing every rollup line did before (the per-line `chargeback_facts` of
/// sql/0101, grouped the way the store and the view grouped it), on a month with everything that changes a price: the
/// hand-worked October (cached, reasoning, unpriced, PTU), a backend price, a deployment price, a price starting mid-day,
/// late usage after the close (corrections, also on the split day and the committed backend), and November.
@Suite(.freshDatabase) struct ChargebackByMonthTests {
    static let extraPrices = """
        model,backend,deployment,currency,effective_from,input_per_1m,cached_input_per_1m,output_per_1m,reasoning_per_1m
        gpt-4o,azure-east,,USD,2026-09-01,2.25,,9.00,
        gpt-4o,azure-east,gpt-4o-eu,USD,2026-10-08T06:00:00Z,1.80,0.90,7.20,
        gpt-4o-mini,,,USD,2026-10-01,1.00,,4.00,
        gpt-4o-mini,,,USD,2026-10-15T12:00:00Z,2.00,,8.00,
        """

    static func event(_ n: Int, _ model: String, _ backend: String, deployment: String = "", _ at: String, prompt: Int, completion: Int) -> String {
        let deploymentField = deployment.isEmpty ? "" : #","deployment":"\#(deployment)""#
        return
            #"{"id":"00000000-0000-7000-8000-\#(String(format: "%012d", n))","subscription":"chat-prod","model":"\#(model)","backend":"\#(backend)"\#(deploymentField),"timestamp":"\#(at)","prompt_tokens":\#(prompt),"completion_tokens":\#(completion)}"#
    }

    /// The previous store query: every line priced (0101's `chargeback_facts`), then grouped.
    static let perLineFacts = """
        SELECT charge_class, subscription_id, product, team, cost_center, backend, deployment, model, price_id, price_list, currency,
            committed, commitment_currency, sum(requests)::bigint, sum(prompt_tokens)::bigint, sum(cached_tokens)::bigint,
            sum(completion_tokens)::bigint, sum(reasoning_tokens)::bigint, sum(total_tokens)::bigint, sum(cost), min(hour_start), max(span_end)
        FROM chargeback_facts WHERE period_start = $1
        GROUP BY charge_class, subscription_id, product, team, cost_center, backend, deployment, model, price_id, price_list, currency,
            committed, commitment_currency
        HAVING sum(requests) <> 0 OR sum(total_tokens) <> 0
        """

    /// The previous definition of reporting.chargeback_monthly (sql/0101), over every month.
    static let perLineMonthly = """
        WITH f AS (
            SELECT period_start, charge_class, subscription_id, team, cost_center, product, backend, deployment, model, price_id,
                price_list, currency, committed, commitment_currency,
                sum(requests)::bigint AS requests, sum(prompt_tokens)::bigint AS prompt_tokens, sum(cached_tokens)::bigint AS cached_tokens,
                sum(completion_tokens)::bigint AS completion_tokens, sum(reasoning_tokens)::bigint AS reasoning_tokens,
                sum(total_tokens)::bigint AS total_tokens, sum(cost) AS cost, min(hour_start) AS charge_period_start, max(span_end) AS charge_period_end
            FROM chargeback_facts
            GROUP BY period_start, charge_class, subscription_id, team, cost_center, product, backend, deployment, model, price_id, price_list,
                currency, committed, commitment_currency
            HAVING sum(requests) <> 0 OR sum(total_tokens) <> 0
        ), ptu AS (
            SELECT f.period_start, f.backend, c.monthly_amount, sum(f.total_tokens) OVER (PARTITION BY f.period_start, f.backend) AS backend_tokens
            FROM f JOIN ptu_commitment_versions c ON c.backend = f.backend AND f.period_start >= c.effective_from AND f.period_start < c.effective_to
            WHERE f.committed AND f.charge_class = 'regular'
        )
        SELECT f.period_start, tollgate_month_end(f.period_start) AS period_end,
            CASE WHEN f.period_start < (SELECT max(period_end) FROM billing_period_closes) THEN 'closed' ELSE 'open' END AS period_status,
            f.charge_class,
            CASE WHEN f.committed THEN 'ptu' WHEN f.price_id IS NULL THEN 'unpriced' ELSE 'usage' END AS charge_type,
            f.subscription_id, f.team, f.cost_center, f.product, f.backend, f.deployment, f.model,
            f.requests, f.prompt_tokens, f.cached_tokens, f.completion_tokens, f.reasoning_tokens, f.total_tokens,
            CASE WHEN NOT f.committed THEN f.cost
                 WHEN f.charge_class = 'regular' THEN
                    (SELECT max(p.monthly_amount) * f.total_tokens / nullif(max(p.backend_tokens), 0) FROM ptu p
                     WHERE p.period_start = f.period_start AND p.backend = f.backend)
                 ELSE 0 END AS cost,
            CASE WHEN f.committed THEN f.commitment_currency ELSE f.currency END AS currency,
            f.price_id, f.price_list, f.charge_period_start, f.charge_period_end
        FROM f
        """

    /// - Parameters:
    ///   - morePrices: another price list (CSV), imported before October closes.
    ///   - moreUsage: more events (NDJSON lines), ingested with October's, before it closes.
    static func seed(_ client: PostgresClient, morePrices: String? = nil, moreUsage: [String] = []) async throws {
        let logger = TestDatabase.logger
        try await ChargebackMonthTests.seed(client)
        _ = try await PriceStore(client: client).importPrices(try PriceListCSV.parse(extraPrices), priceList: "extra.csv", logger: logger)
        if let morePrices {
            _ = try await PriceStore(client: client).importPrices(try PriceListCSV.parse(morePrices), priceList: "more.csv", logger: logger)
        }
        let october = [
            event(20, "gpt-4o", "azure-east", "2026-10-04T08:00:00Z", prompt: 300_000, completion: 30_000),
            event(21, "gpt-4o", "azure-east", deployment: "gpt-4o-eu", "2026-10-08T05:59:59Z", prompt: 200_000, completion: 10_000),
            event(22, "gpt-4o", "azure-east", deployment: "gpt-4o-eu", "2026-10-08T06:00:00Z", prompt: 200_000, completion: 10_000),
            event(23, "gpt-4o", "azure-east", deployment: "gpt-4o-eu", "2026-10-21T06:00:00Z", prompt: 100_000, completion: 1_000),
            event(24, "gpt-4o-mini", "openai", "2026-10-15T11:59:59Z", prompt: 1_000_000, completion: 0),
            event(25, "gpt-4o-mini", "openai", "2026-10-15T12:00:00Z", prompt: 1_000_000, completion: 100_000),
            event(26, "gpt-4o-mini", "openai", "2026-10-16T00:00:00Z", prompt: 500_000, completion: 0),
        ]
        try await ingest(october + moreUsage, client)
        try await PeriodStore(client: client).close(ChargebackMonthTests.october, closedBy: "test", now: ChargebackMonthTests.now, logger: logger)
        // Late October usage (corrections booked in November), including the split day and the committed backend, and November's own.
        try await ingest(
            [
                event(30, "gpt-4o-mini", "openai", "2026-10-15T12:30:00Z", prompt: 400_000, completion: 0),
                event(31, "gpt-4o-mini", "openai", "2026-10-15T09:00:00Z", prompt: 100_000, completion: 0),
                event(32, "gpt-4o", "azure-ptu", "2026-10-10T13:30:00Z", prompt: 50_000, completion: 5_000),
                event(33, "gpt-4o", "azure-east", deployment: "gpt-4o-eu", "2026-10-21T06:10:00Z", prompt: 10_000, completion: 0),
                event(34, "gpt-4o", "azure-ptu", "2026-11-02T10:00:00Z", prompt: 70_000, completion: 7_000),
                event(35, "gpt-4o-mini", "openai", "2026-11-03T10:00:00Z", prompt: 80_000, completion: 0),
            ], client)
    }

    static func ingest(_ events: [String], _ client: PostgresClient) async throws {
        let result = try await ExternalUsageIngest.ingest(
            body: Data(events.joined(separator: "\n").utf8), contentType: "application/x-ndjson", source: "apim-east", now: ChargebackMonthTests.now,
            client: client, logger: TestDatabase.logger)
        #expect(result.inserted == events.count)
    }

    /// Rows in one query's result and not the other's (both ways, duplicates counted), compared as text so that a
    /// different numeric scale counts as a difference too.
    static func difference(_ a: String, _ b: String, month: Date?, _ client: PostgresClient) async throws -> Int {
        let sql = """
            SELECT count(*) FROM (
                (SELECT r::text FROM (\(a)) r EXCEPT ALL SELECT r::text FROM (\(b)) r)
                UNION ALL
                (SELECT r::text FROM (\(b)) r EXCEPT ALL SELECT r::text FROM (\(a)) r)) d
            """
        var bindings = PostgresBindings()
        if let month { bindings.append(month) }
        return try await client.query(PostgresQuery(unsafeSQL: sql, binds: bindings), logger: TestDatabase.logger).collect().first?.decode(Int.self)
            ?? -1
    }

    @Test func monthFactsAndMonthlyViewEqualPricingEveryLine() async throws {
        try await TestDatabase.withClient { client in
            try await Self.seed(client)
            for month in [ChargebackMonthTests.october, ChargebackMonthTests.november] {
                let facts = try await ChargebackStore(client: client).facts(for: month, logger: TestDatabase.logger)
                #expect(facts.count >= 5, "\(month)")
                #expect(facts.contains { $0.chargeClass == .correction } == (month == ChargebackMonthTests.november))
                let differing = try await Self.difference(
                    Self.perLineFacts, "SELECT * FROM tollgate_chargeback_facts($1)", month: month.start, client)
                #expect(differing == 0, "\(month)")
            }
            // The deployment price (06:00 on the 8th) is used from its first hour on; the day before it the backend price.
            let october = try await ChargebackStore(client: client).facts(for: ChargebackMonthTests.october, logger: TestDatabase.logger)
            let eu = october.filter { $0.deployment == "gpt-4o-eu" }.sorted { $0.chargePeriodStart < $1.chargePeriodStart }
            // 0.2M × 2.25 + 0.01M × 9.00 = 0.54 at the backend price; 0.3M × 1.80 + 0.011M × 7.20 = 0.6192 at the deployment price.
            #expect(eu.map(\.cost) == [Decimal(string: "0.54")!, Decimal(string: "0.6192")!])

            // The view lists the months by UTC month starts whatever the session's time zone.
            for zone in ["UTC", "America/New_York", "Asia/Kolkata"] {
                // One connection, so the session time zone applies to the comparison.
                try await client.withConnection { connection in
                    try await connection.query(PostgresQuery(unsafeSQL: "SET TIME ZONE '\(zone)'"), logger: TestDatabase.logger)
                    // The per-line reference is estimated expensive enough for JIT, whose compile takes seconds here.
                    try await connection.query("SET jit = off", logger: TestDatabase.logger)
                    let months = try await connection.query(
                        "SELECT DISTINCT period_start FROM reporting.chargeback_monthly ORDER BY 1", logger: TestDatabase.logger
                    ).collect().map { try $0.decode(Date.self) }
                    #expect(months == [ChargebackMonthTests.october.start, ChargebackMonthTests.november.start], "\(zone)")
                    let sql = """
                        SELECT count(*) FROM (
                            (SELECT r::text FROM (\(Self.perLineMonthly)) r EXCEPT ALL SELECT r::text FROM reporting.chargeback_monthly r)
                            UNION ALL
                            (SELECT r::text FROM reporting.chargeback_monthly r EXCEPT ALL SELECT r::text FROM (\(Self.perLineMonthly)) r)) d
                        """
                    let differing = try await connection.query(PostgresQuery(unsafeSQL: sql), logger: TestDatabase.logger).collect().first?
                        .decode(Int.self)
                    #expect(differing == 0, "\(zone)")
                    let rows = try await connection.query("SELECT count(*) FROM reporting.chargeback_monthly", logger: TestDatabase.logger)
                        .collect().first?.decode(Int.self)
                    #expect((rows ?? 0) >= 10, "\(zone)")
                    try await connection.query("RESET TIME ZONE", logger: TestDatabase.logger)
                    try await connection.query("RESET jit", logger: TestDatabase.logger)
                }
            }
        }
    }
}
