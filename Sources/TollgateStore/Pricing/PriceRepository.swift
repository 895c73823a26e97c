import Foundation
import Logging
import TollgateCore

/// Effective-dated prices. `PriceStore` is the PostgreSQL implementation.
public protocol PriceRepository: Sendable {
    /// Adds price versions, all or nothing; re-importing the same versions changes nothing.
    /// - Throws: `PriceImportError` (invalid price, a conflicting version, a start inside a closed month).
    func importPrices(_ prices: [ModelPrice], priceList: String, logger: Logger) async throws -> PriceImportSummary
    /// Every stored version, ordered by model, backend, deployment and start.
    func list(logger: Logger) async throws -> [StoredPrice]
}

/// Provisioned-throughput commitments per backend and month. `PTUStore` is the PostgreSQL implementation.
public protocol CommitmentRepository: Sendable {
    /// Sets the commitment from its month on.
    /// - Throws: `DomainRuleError.commitmentFrozen` when that month is closed.
    func set(_ commitment: PTUCommitment, logger: Logger) async throws
    /// The commitments in force during `period` (one month) with a non-zero amount, ordered by backend.
    func commitments(in period: BillingPeriod, logger: Logger) async throws -> [PTUCommitment]
}

/// Closing billing months. `PeriodStore` is the PostgreSQL implementation.
public protocol PeriodRepository: Sendable {
    /// Closes `period` (a UTC month that has ended by `now`, the one after the last closed month).
    /// - Throws: `PeriodCloseError`.
    func close(_ period: BillingPeriod, closedBy: String, now: Date, logger: Logger) async throws
    /// The end of the last closed month, `nil` when none was closed.
    func closedThrough(logger: Logger) async throws -> Date?
}

/// What a chargeback is computed from: the priced usage facts of a month and the subscriptions' names.
/// `ChargebackStore` is the PostgreSQL implementation (prices joined in SQL, at each event's time).
public protocol ChargebackFactsSource: Sendable {
    /// The month's regular usage and the corrections booked into it, priced, at chargeback grain.
    func facts(for period: BillingPeriod, logger: Logger) async throws -> [ChargebackFact]
    /// Display names of subscriptions that have one.
    func subscriptionNames(logger: Logger) async throws -> [SubscriptionID: String]
}

extension PriceStore: PriceRepository {}
extension PTUStore: CommitmentRepository {}
extension PeriodStore: PeriodRepository {}
extension ChargebackStore: ChargebackFactsSource {}
