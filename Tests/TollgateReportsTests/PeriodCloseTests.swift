import Foundation
import PostgresNIO
import Testing
import TollgateCore
import TollgateReports
import TollgateStore
import TollgateTestSupport

@Suite(.freshDatabase) struct PeriodCloseTests {
    static let september = BillingPeriod.month("2026-09")!
    static let october = BillingPeriod.month("2026-10")!
    static let november = BillingPeriod.month("2026-11")!

    @Test func closedMonthsAreFrozenAndCloseInOrder() async throws {
        try await TestDatabase.withClient { client in
            let logger = TestDatabase.logger
            let periods = PeriodStore(client: client)
            // A month that has not ended cannot close: its last second is still to come.
            await #expect(throws: PeriodCloseError.notEnded(period: "2026-10", endsAt: Self.october.end)) {
                try await periods.close(Self.october, closedBy: "test", now: Date(iso8601: "2026-10-31T23:59:59Z")!, logger: logger)
            }
            try await periods.close(Self.september, closedBy: "test", now: Date(iso8601: "2026-10-01T00:00:00Z")!, logger: logger)
            let now = Date(iso8601: "2026-12-02T00:00:00Z")!
            await #expect(throws: PeriodCloseError.outOfOrder(period: "2026-11", nextToClose: "2026-10")) {
                try await periods.close(Self.november, closedBy: "test", now: now, logger: logger)
            }
            await #expect(throws: PeriodCloseError.alreadyClosed(period: "2026-09", closedThrough: Self.october.start)) {
                try await periods.close(Self.september, closedBy: "test", now: now, logger: logger)
            }
            #expect(try await periods.closedThrough(logger: logger) == Self.october.start)

            // A price may not start inside closed time, through the store or behind its back.
            let prices = PriceStore(client: client)
            let lateSeptember = ModelPrice(
                model: "gpt-4o", currency: "USD", effectiveFrom: Date(iso8601: "2026-09-30T23:00:00Z")!, inputPerMillion: 1, outputPerMillion: 1)
            await #expect(
                throws: PriceImportError.startsInClosedPeriod(
                    model: "gpt-4o", effectiveFrom: lateSeptember.effectiveFrom, closedThrough: Self.october.start)
            ) {
                try await prices.importPrices([lateSeptember], priceList: "late.csv", logger: logger)
            }
            await #expect(throws: PSQLError.self) {
                try await client.query(
                    """
                    INSERT INTO model_prices (model, currency, effective_from, input_per_1m, output_per_1m, price_list)
                    VALUES ('gpt-4o', 'USD', '2026-09-15T00:00:00Z', 1, 1, 'sql')
                    """, logger: logger)
            }
            // An October price is fine; changing it afterwards is not (versions are append-only).
            let october = ModelPrice(model: "gpt-4o", currency: "USD", effectiveFrom: Self.october.start, inputPerMillion: 2, outputPerMillion: 8)
            #expect(try await prices.importPrices([october], priceList: "oct.csv", logger: logger) == PriceImportSummary(added: 1, unchanged: 0))
            #expect(try await prices.importPrices([october], priceList: "oct.csv", logger: logger) == PriceImportSummary(added: 0, unchanged: 1))
            var changed = october
            changed.outputPerMillion = 9
            await #expect(
                throws: PriceImportError.conflictingVersion(model: "gpt-4o", backend: "", deployment: "", effectiveFrom: Self.october.start)
            ) {
                try await prices.importPrices([changed], priceList: "oct-v2.csv", logger: logger)
            }
            await #expect(throws: PSQLError.self) {
                try await client.query("UPDATE model_prices SET output_per_1m = 9", logger: logger)
            }
            let stored = try await prices.list(logger: logger)
            #expect(stored.map(\.price.outputPerMillion) == [8])

            // A closed month's commitment is frozen too: the trigger refuses, and the store names the rule.
            let ptu = PTUStore(client: client)
            await #expect(throws: DomainRuleError.commitmentFrozen) {
                try await ptu.set(
                    PTUCommitment(backend: "azure-ptu", effectiveFrom: Self.september.start, monthlyAmount: 500, currency: "USD"), logger: logger)
            }
            try await ptu.set(
                PTUCommitment(backend: "azure-ptu", effectiveFrom: Self.october.start, monthlyAmount: 500, currency: "USD"), logger: logger)
            #expect(try await ptu.commitments(in: Self.november, logger: logger).map(\.monthlyAmount) == [500])
        }
    }
}
