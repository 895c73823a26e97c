import Foundation
import PostgresNIO
import Testing
import TollgateCore
import TollgateReports
import TollgateStore
import TollgateTestSupport

/// Retention drops a closed raw month, all of it, and no report of that month moves by a cent: reports, exports and the
/// `reporting` views read the rollups, never the raw ledger. An open month is never dropped.
@Suite(.freshDatabase) struct UsageRetentionTests {
    static let october = ChargebackMonthTests.october

    /// Every report of October, as the bytes a customer gets: CSV by team, JSON by subscription, FOCUS, and each
    /// `reporting` view's rows for the month as text.
    static func octoberReports(_ client: PostgresClient) async throws -> [String] {
        let logger = TestDatabase.logger
        let report = ChargebackReport(.postgres(client: client))
        var reports: [String] = []
        for (format, grouping) in [(ChargebackFormat.csv, ChargebackGrouping.team), (.json, .subscription), (.focus, .team)] {
            let bytes = try await report.generate(period: october, groupBy: grouping, format: format, now: ChargebackMonthTests.now, logger: logger)
            reports.append(String(decoding: bytes, as: UTF8.self))
        }
        for view in ["chargeback_monthly", "focus_charges", "usage_daily", "unpriced_usage"] {
            let rows = try await client.query(
                "SELECT coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '') FROM reporting.\(unescaped: view) t", logger: logger)
            reports.append(try await rows.collect().first?.decode(String.self) ?? "")
        }
        return reports
    }

    static func rawRows(_ client: PostgresClient, _ table: String) async throws -> Int {
        try await client.query("SELECT count(*)::int FROM \(unescaped: table)", logger: TestDatabase.logger).collect().first?.decode(Int.self) ?? -1
    }

    @Test func dropsAClosedMonthAndEveryReportOfItStaysToTheCent() async throws {
        try await TestDatabase.withClient { client in
            let logger = TestDatabase.logger
            try await ChargebackMonthTests.seed(client)
            let ledger = PostgresUsageLedger(client: client)
            let now = ChargebackMonthTests.now  // 2026-11-05

            // October is older than "keep 0 months before November", but open: refused, nothing dropped.
            await #expect(throws: RetentionError.openMonths(["2026-10"], keepMonths: 0)) {
                try await ledger.applyRetention(keepMonths: 0, now: now, dryRun: false, logger: logger)
            }
            #expect(try await Self.rawRows(client, "usage_events") == 9)
            #expect(try await Self.rawRows(client, "usage_events_2026_10") == 9)  // moved out of the default partition
            #expect(try await Self.rawRows(client, "usage_events_default") == 0)
            // Keeping one month before November keeps October: nothing to drop, nothing refused.
            #expect(try await ledger.applyRetention(keepMonths: 1, now: now, dryRun: false, logger: logger).dropped.isEmpty)

            try await PeriodStore(client: client).close(Self.october, closedBy: "test", now: now, logger: logger)
            let before = try await Self.octoberReports(client)
            #expect(before[0] == ChargebackMonthTests.expectedOctoberCSV)

            let dry = try await ledger.applyRetention(keepMonths: 0, now: now, dryRun: true, logger: logger)
            #expect(dry.dropped.map(\.table) == ["usage_events_2026_10"])
            #expect(try await Self.rawRows(client, "usage_events") == 9)

            let outcome = try await ledger.applyRetention(keepMonths: 0, now: now, dryRun: false, logger: logger)
            #expect(outcome.cutoff == Date(iso8601: "2026-11-01T00:00:00Z")!)
            #expect(outcome.dropped.map(\.period.monthLabel) == ["2026-10"])
            #expect(outcome.dropped.allSatisfy { $0.closed })
            #expect(try await Self.rawRows(client, "usage_events") == 0)
            let gone = try await client.query("SELECT to_regclass('usage_events_2026_10') IS NULL", logger: logger).collect().first?.decode(Bool.self)
            #expect(gone == true)
            #expect(try await ledger.months(logger: logger).map(\.period.monthLabel).contains("2026-10") == false)

            let after = try await Self.octoberReports(client)
            #expect(after[0] == ChargebackMonthTests.expectedOctoberCSV)
            #expect(after == before)

            // The ids of the dropped month are still known: the batch replayed after retention lands nothing.
            let replay = try await ExternalUsageIngest.ingest(
                body: Data(ChargebackMonthTests.octoberBatch.utf8), contentType: "application/json", source: "apim-east", now: now,
                client: client, logger: logger)
            #expect(replay.inserted == 0 && replay.duplicates == 9)
            #expect(try await Self.octoberReports(client) == before)
        }
    }

    @Test func aNegativeKeepIsRefused() async throws {
        _ = try await TestDatabase.withClient { client in
            await #expect(throws: RetentionError.negativeKeepMonths(-1)) {
                try await PostgresUsageLedger(client: client).applyRetention(
                    keepMonths: -1, now: ChargebackMonthTests.now, dryRun: true, logger: TestDatabase.logger)
            }
        }
    }

    @Test func theRefusalNamesTheMonthsAndHowToCloseThem() {
        #expect(
            RetentionError.openMonths(["2026-09", "2026-10"], keepMonths: 2).description
                == "raw usage of 2026-09, 2026-10 is older than the 2 months kept, but their billing periods are still open; nothing was dropped. "
                + "Close them first (`tollgate period close 2026-09`), then run retention again")
    }
}
