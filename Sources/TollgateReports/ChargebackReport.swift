import Foundation
import Logging
import TollgateCore
import TollgateStore

/// The monthly chargeback: the one entry point `tollgate report chargeback` and `GET /admin/v1/reports/chargeback` call.
public struct ChargebackReport: Sendable {
    let facts: any ChargebackFactsSource
    let commitments: any CommitmentRepository
    let periods: any PeriodRepository

    /// - Parameters:
    ///   - facts: the priced usage of a month (`PostgresDatabase.chargeback`).
    ///   - commitments: provisioned-throughput commitments, allocated pro rata.
    ///   - periods: whether the month is closed.
    public init(facts: any ChargebackFactsSource, commitments: any CommitmentRepository, periods: any PeriodRepository) {
        self.facts = facts
        self.commitments = commitments
        self.periods = periods
    }

    /// On a set of repositories (PostgreSQL or in-memory).
    public init(_ repositories: Repositories) {
        self.init(facts: repositories.chargeback, commitments: repositories.commitments, periods: repositories.periods)
    }

    /// The grouped, rounded document of `period` (a UTC month).
    /// - Parameter now: stamped as generated-at.
    /// - Throws: `PricingError.currencyMismatch` when the month mixes currencies; database errors.
    public func document(period: BillingPeriod, groupBy: ChargebackGrouping, now: Date, logger: Logger) async throws -> ChargebackDocument {
        let facts = try await facts.facts(for: period, logger: logger)
        let commitments = try await commitments.commitments(in: period, logger: logger)
        let closedThrough = try await periods.closedThrough(logger: logger)
        let status: PeriodStatus = closedThrough.map { period.end <= $0 } == true ? .closed : .open
        return try ChargebackDocument.build(
            period: period, status: status, groupBy: groupBy, facts: facts, commitments: commitments, generatedAt: now)
    }

    /// The FOCUS rows of `period`.
    public func focus(period: BillingPeriod, logger: Logger) async throws -> FocusExport {
        let rows = try await facts.facts(for: period, logger: logger)
        let commitments = try await commitments.commitments(in: period, logger: logger)
        return try FocusExport.build(
            period: period, facts: rows, commitments: commitments, subscriptionNames: try await facts.subscriptionNames(logger: logger))
    }

    /// The export file's bytes.
    /// - Parameters:
    ///   - groupBy: ignored by `.focus`, whose rows are at subscription × model × backend × price grain.
    ///   - format: `csv` (RFC 4180), `json`, or `focus` (FOCUS 1.2 columns, CSV).
    public func generate(period: BillingPeriod, groupBy: ChargebackGrouping, format: ChargebackFormat, now: Date, logger: Logger) async throws -> Data
    {
        switch format {
        case .csv: try await document(period: period, groupBy: groupBy, now: now, logger: logger).csv()
        case .json: try await document(period: period, groupBy: groupBy, now: now, logger: logger).json()
        case .focus: try await focus(period: period, logger: logger).csv()
        }
    }

    /// The media type of an export, for the admin API's `Content-Type`.
    public static func contentType(of format: ChargebackFormat) -> String {
        switch format {
        case .csv, .focus: "text/csv; charset=utf-8; header=present"
        case .json: "application/json"
        }
    }
}
