import Foundation
import PostgresNIO
import Testing
import TollgateCore
import TollgateReports
import TollgateStore
import TollgateTestSupport

/// Billing reads the daily rollup, except on a day when a price starts inside it (prices start on whole hours).
/// gpt-4o-mini costs 1.00 per 1M input tokens until 2026-10-15T12:00Z, then 2.00. Each event below is 1M prompt tokens.
@Suite(.freshDatabase) struct SplitDayPricingTests {
    static let now = Date(iso8601: "2026-11-05T09:00:00Z")!

    static func event(_ n: Int, _ at: String) -> String {
        #"{"id":"00000000-0000-7000-8000-\#(String(format: "%012d", n))","subscription":"ops-prod","model":"gpt-4o-mini","backend":"openai","timestamp":"\#(at)","prompt_tokens":1000000,"completion_tokens":0}"#
    }

    @Test func aPriceStartingMidDaySplitsThatDayByTheHour() async throws {
        try await TestDatabase.withClient { client in
            let logger = TestDatabase.logger
            try await CatalogStore(client: client).apply(
                PolicyDocument(subscriptions: [SubscriptionSpec(id: "ops-prod", team: "ops", costCenter: "CC-9")]), logger: logger)
            let prices = try PriceListCSV.parse(
                """
                model,currency,effective_from,input_per_1m,output_per_1m
                gpt-4o-mini,USD,2026-10-01,1.00,4.00
                gpt-4o-mini,USD,2026-10-15T12:00:00Z,2.00,8.00
                """)
            _ = try await PriceStore(client: client).importPrices(prices, priceList: "mini.csv", logger: logger)
            // Two batches land in the same hours, so the daily rollup is also kept in step on rollup updates.
            for batch in [
                [Self.event(1, "2026-10-14T23:00:00Z"), Self.event(2, "2026-10-15T11:30:00Z"), Self.event(3, "2026-10-15T12:00:00Z")],
                [Self.event(4, "2026-10-15T12:59:59Z"), Self.event(5, "2026-10-16T00:00:00Z"), Self.event(6, "2026-10-14T23:10:00Z")],
            ] {
                let result = try await ExternalUsageIngest.ingest(
                    body: Data(batch.joined(separator: "\n").utf8), contentType: "application/x-ndjson", source: "apim-east", now: Self.now,
                    client: client, logger: logger)
                #expect(result.inserted == 3)
            }
            // 14th: 2M at 1.00 = 2.00; 15th: 1M at 1.00 (11:30) + 2M at 2.00 (12:00, 12:59:59) = 5.00; 16th: 1M at 2.00 = 2.00.
            let daily = try await client.query(
                """
                SELECT usage_date::text, sum(list_cost), sum(prompt_tokens)::bigint FROM reporting.usage_daily GROUP BY 1 ORDER BY 1
                """, logger: logger
            ).collect().map { try $0.decode((String, Decimal, Int64).self) }
            #expect(daily.map(\.0) == ["2026-10-14", "2026-10-15", "2026-10-16"])
            #expect(daily.map(\.1) == [Decimal(string: "2.00")!, Decimal(string: "5.00")!, Decimal(string: "2.00")!])
            #expect(daily.map(\.2) == [2_000_000, 3_000_000, 1_000_000])

            let report = ChargebackReport(.postgres(client: client))
            let document = try await report.document(period: BillingPeriod.month("2026-10")!, groupBy: .team, now: Self.now, logger: logger)
            #expect(document.lines.map(\.amount) == [Decimal(string: "9.00")!])
            #expect(document.lines.map(\.promptTokens) == [6_000_000])

            // FOCUS splits by price version: 3M at the old price (3.00), 3M at the new one (6.00).
            let focus = try await report.focus(period: BillingPeriod.month("2026-10")!, logger: logger)
            #expect(focus.rows.map { $0["BilledCost"]! }.sorted() == ["3.0000000000", "6.0000000000"])
            #expect(
                focus.rows.map { "\($0["ChargePeriodStart"]!)..\($0["ChargePeriodEnd"]!)" }.sorted() == [
                    "2026-10-14T00:00:00Z..2026-10-15T12:00:00Z", "2026-10-15T12:00:00Z..2026-10-17T00:00:00Z",
                ])
        }
    }
}
