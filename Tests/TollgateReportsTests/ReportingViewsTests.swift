import Foundation
import PostgresNIO
import Testing
import TollgateCore
import TollgateReports
import TollgateStore
import TollgateTestSupport

/// The `reporting` contract over the same hand-worked October as `ChargebackMonthTests`.
@Suite(.freshDatabase) struct ReportingViewsTests {
    @Test func viewsCarryTheHandWorkedFigures() async throws {
        try await TestDatabase.withClient { client in
            let logger = TestDatabase.logger
            try await ChargebackMonthTests.seed(client)
            // Pay-as-you-go, unrounded: 4.00 + 0.35 + 0.28 + 0.90 + 0.099 + 0.125
            let usage = try await client.query(
                """
                SELECT sum(cost) FROM reporting.chargeback_monthly WHERE period_start = '2026-10-01T00:00:00Z' AND charge_type = 'usage'
                """, logger: logger
            ).collect().first?.decode(Decimal.self)
            #expect(usage == Decimal(string: "5.754")!)

            let unpriced = try await client.query(
                """
                SELECT subscription_id, model, total_tokens, period_status FROM reporting.unpriced_usage
                """, logger: logger
            ).collect().map { try $0.decode((String, String, Int64, String).self) }
            #expect(unpriced.count == 1)
            #expect(
                unpriced.first?.0 == "chat-prod" && unpriced.first?.1 == "llama-3-70b" && unpriced.first?.2 == 4000 && unpriced.first?.3 == "open")

            // The price change at 2026-10-15T00:00Z splits the two adjacent hours.
            let hourly = try await client.query(
                """
                SELECT hour_start, cost FROM priced_usage_hourly
                WHERE subscription_id = 'search-prod' AND backend = 'openai' AND hour_start IN ('2026-10-14T23:00:00Z', '2026-10-15T00:00:00Z')
                ORDER BY hour_start
                """, logger: logger
            ).collect().map { try $0.decode((Date, Decimal?).self) }
            #expect(hourly.map(\.1) == [Decimal(string: "0.35")!, Decimal(string: "0.28")!])

            let daily = try await client.query(
                """
                SELECT list_cost, priced, committed FROM reporting.usage_daily
                WHERE usage_date = '2026-10-10' AND subscription_id = 'search-prod'
                """, logger: logger
            ).collect().map { try $0.decode((Decimal?, Bool, Bool).self) }
            // 1.5M × 2.50 + 0.5M × 10.00 at list price, on the committed backend.
            #expect(daily.count == 1)
            #expect(daily.first?.0 == Decimal(string: "8.75")! && daily.first?.1 == true && daily.first?.2 == true)

            let focusRows = try await client.query(
                """
                SELECT count(*) FROM reporting.focus_charges WHERE "BillingPeriodStart" = '2026-10-01T00:00:00Z'
                """, logger: logger
            ).collect().first?.decode(Int.self)
            #expect(focusRows == 8)
        }
    }

    @Test func readerCanReadReportingAndNothingElse() async throws {
        try await TestDatabase.withClient { client in
            let logger = TestDatabase.logger
            try await client.withConnection { connection in
                try await connection.query("SET ROLE tollgate_reader", logger: logger)
                for view in ["usage_daily", "chargeback_monthly", "unpriced_usage", "focus_charges", "provisioned_overflow_hourly"] {
                    let count = try await connection.query(PostgresQuery(unsafeSQL: "SELECT count(*) FROM reporting.\(view)"), logger: logger)
                        .collect().first?.decode(Int.self)
                    #expect(count != nil)
                }
                for table in ["usage_events", "usage_hourly", "subscriptions", "model_prices", "subscription_keys"] {
                    do {
                        _ = try await connection.query(PostgresQuery(unsafeSQL: "SELECT count(*) FROM \(table)"), logger: logger).collect()
                        Issue.record("tollgate_reader could read \(table)")
                    } catch let error as PSQLError {
                        #expect(error.serverInfo?[.sqlState] == "42501", "\(table)")
                    }
                }
                try await connection.query("RESET ROLE", logger: logger)
            }
        }
    }
}

/// Generates the FOCUS export of the hand-worked October and checks it; `Tests/e2e/focus_validate.sh` sets
/// `TOLLGATE_FOCUS_EXPORT` so the same file is handed to focus-validator.
@Suite(.freshDatabase) struct FocusExportTests {
    @Test func focusRowsSumExactlyAndMarkCorrections() async throws {
        try await TestDatabase.withClient { client in
            let logger = TestDatabase.logger
            try await ChargebackMonthTests.seed(client)
            let report = ChargebackReport(.postgres(client: client))
            let october = try await report.focus(period: ChargebackMonthTests.october, logger: logger)
            // 4.35 + 0.28 + 0.90 + 0.099 + 0.125 pay-as-you-go, 1000 committed, the unpriced row at 0 flagged `unpriced`.
            #expect(october.total == Decimal(string: "1005.754")!)
            #expect(october.rows.count == 8)
            #expect(october.rows.compactMap { Decimal(string: $0["BilledCost"]!) }.reduce(0, +) == october.total)
            #expect(october.rows.filter { $0["x_PricingStatus"] == "unpriced" }.map { $0["SkuId"] } == ["llama-3-70b"])
            #expect(
                Set(october.rows.filter { $0["x_PricingStatus"] == "committed" }.map { $0["BilledCost"]! }) == ["666.6666666667", "333.3333333333"])

            try await PeriodStore(client: client).close(ChargebackMonthTests.october, closedBy: "test", now: ChargebackMonthTests.now, logger: logger)
            let late =
                #"[{"id":"00000000-0000-7000-8000-000000000100","subscription":"chat-prod","model":"gpt-4o","backend":"openai","timestamp":"2026-10-20T08:30:00Z","prompt_tokens":1000000,"completion_tokens":0}]"#
            _ = try await ExternalUsageIngest.ingest(
                body: Data(late.utf8), contentType: nil, source: "apim-east", now: ChargebackMonthTests.now, client: client, logger: logger)
            // The late event lands in an hour October already had a rollup row for (event 4, 08:00): October stays as it was.
            #expect(try await report.focus(period: ChargebackMonthTests.october, logger: logger).total == Decimal(string: "1005.754")!)
            let november = try await report.focus(period: ChargebackMonthTests.november, logger: logger)
            let corrections = november.rows.filter { $0["ChargeClass"] == "Correction" }
            #expect(corrections.map { $0["BilledCost"] } == ["2.0000000000"])
            #expect(corrections.map { "\($0["ChargePeriodStart"]!)..\($0["ChargePeriodEnd"]!)" } == ["2026-10-20T08:00:00Z..2026-10-20T09:00:00Z"])

            if let path = ProcessInfo.processInfo.environment["TOLLGATE_FOCUS_EXPORT"] {
                var csv = october.csv()
                // One file with both months' rows, so the validator sees regular, committed, unpriced and correction rows.
                csv.append(contentsOf: november.csv().split(separator: UInt8(ascii: "\n"), maxSplits: 1).last ?? Data())
                try csv.write(to: URL(fileURLWithPath: path))
            }
        }
    }
}

/// `reporting.provisioned_overflow_hourly` on its own database (the October seed is written once per database).
@Suite(.freshDatabase) struct ProvisionedOverflowViewTests {
    /// Provisioned against overflow on the hand-worked October: `azure-ptu` has a commitment (its tokens are covered),
    /// every other backend is pay-as-you-go spend at the price in force (`ChargebackMonthTests.expectedOctoberCSV`:
    /// search 4.00 + 0.35 + 0.28, chat 0.90 + 0.099 plus 4,000 unpriced llama tokens, the other team 0.125).
    @Test func provisionedAndOverflowSplitToTheCent() async throws {
        try await TestDatabase.withClient { client in
            try await ChargebackMonthTests.seed(client)
            let rows = try await client.query(
                """
                SELECT subscription_id, sum(provisioned_tokens)::bigint, sum(overflow_tokens)::bigint, sum(overflow_cost),
                       sum(overflow_unpriced_tokens)::bigint, round(sum(overflow_tokens)::numeric / sum(provisioned_tokens + overflow_tokens), 6)
                FROM reporting.provisioned_overflow_hourly
                WHERE hour_start >= '2026-10-01T00:00:00Z' AND hour_start < '2026-11-01T00:00:00Z'
                GROUP BY subscription_id ORDER BY subscription_id
                """, logger: TestDatabase.logger
            ).collect().map { try $0.decode((String, Int64, Int64, Decimal?, Int64, Decimal).self) }
            #expect(rows.map(\.0) == ["chat-prod", "evil-prod", "search-prod"])
            #expect(rows.map(\.1) == [1_000_000, 0, 2_000_000])
            #expect(rows.map(\.2) == [584_000, 50_000, 1_420_000])
            #expect(rows.map(\.3) == [Decimal(string: "0.999")!, Decimal(string: "0.125")!, Decimal(string: "4.63")!])
            #expect(rows.map(\.4) == [4_000, 0, 0])
            // 1,420,000 of search's 3,420,000 tokens spilled over to pay-as-you-go.
            #expect(rows.map(\.5) == [Decimal(string: "0.368687")!, 1, Decimal(string: "0.415205")!])
            // Each hour's rate is its own share.
            let hourly = try await client.query(
                """
                SELECT spillover_rate FROM reporting.provisioned_overflow_hourly WHERE provisioned_tokens > 0 AND overflow_tokens = 0 LIMIT 1
                """, logger: TestDatabase.logger
            ).collect().first?.decode(Decimal.self)
            #expect(hourly == 0)
        }
    }
}
