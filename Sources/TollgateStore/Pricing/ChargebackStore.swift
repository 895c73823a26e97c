import Foundation
import Logging
import PostgresNIO
import TollgateCore

public enum PeriodCloseError: Error, Hashable, Sendable, CustomStringConvertible {
    case notMonthly(BillingPeriod)
    case notEnded(period: String, endsAt: Date)
    case alreadyClosed(period: String, closedThrough: Date)
    /// Months close in order, so the books are a closed prefix of time and late usage always has one next open month.
    case outOfOrder(period: String, nextToClose: String)

    public var description: String {
        switch self {
        case .notMonthly(let period): "\(period) is not a calendar month"
        case .notEnded(let period, let end): "\(period) has not ended yet; it can be closed from \(end.iso8601)"
        case .alreadyClosed(let period, let through): "\(period) is already closed (the books are closed through \(through.iso8601))"
        case .outOfOrder(let period, let next): "months close in order: close \(next) before \(period)"
        }
    }
}

/// Closing billing months: a closed month's exports never change again.
public struct PeriodStore: Sendable {
    public let client: PostgresClient
    public init(client: PostgresClient) { self.client = client }

    /// Closes `period` (a UTC month). Later usage for it is booked as a correction in the first open month.
    /// - Parameters:
    ///   - closedBy: who closed it (`cli:<user>`, `admin:<name>`).
    ///   - now: the period must have ended by then.
    public func close(_ period: BillingPeriod, closedBy: String, now: Date, logger: Logger) async throws {
        guard BillingPeriod.containing(period.start, kind: .monthly) == period else { throw PeriodCloseError.notMonthly(period) }
        let label = period.monthLabel
        guard period.end <= now else { throw PeriodCloseError.notEnded(period: label, endsAt: period.end) }
        try await client.withTransactionUnwrappingDomainErrors(logger: logger) { tx in
            // Closes run one at a time; the SHARE lock on the rollup waits for usage writers in flight and holds new ones
            // until commit, so every rollup change is either before the close (regular) or after it (a correction).
            try await tx.query("LOCK TABLE billing_period_closes IN EXCLUSIVE MODE", logger: logger)
            try await tx.query("LOCK TABLE usage_hourly IN SHARE MODE", logger: logger)
            let closedThrough =
                try await tx.query("SELECT max(period_end) FROM billing_period_closes", logger: logger)
                .collect().first?.decode(Date?.self) ?? nil
            if let closedThrough {
                if period.end <= closedThrough { throw PeriodCloseError.alreadyClosed(period: label, closedThrough: closedThrough) }
                if period.start != closedThrough {
                    throw PeriodCloseError.outOfOrder(period: label, nextToClose: BillingPeriod.containing(closedThrough, kind: .monthly).monthLabel)
                }
            }
            try await tx.query(
                """
                INSERT INTO billing_period_closes (period_start, period_end, closed_by) VALUES (\(period.start), \(period.end), \(closedBy))
                """, logger: logger)
        }
        logger.info("Billing period closed", metadata: ["period": "\(label)", "period.closed_by": "\(closedBy)"])
    }

    /// The end of the last closed month: every instant before it is closed. `nil` when nothing was ever closed.
    public func closedThrough(logger: Logger) async throws -> Date? {
        try await client.query("SELECT max(period_end) FROM billing_period_closes", logger: logger).collect().first?.decode(Date?.self) ?? nil
    }
}

/// Regular usage of the month, or late usage booked into it.
public enum ChargeClass: String, Hashable, Sendable, Codable, CaseIterable, Comparable {
    case regular, correction
    public static func < (a: Self, b: Self) -> Bool { a == .regular && b == .correction }
}

/// One row of what a month bills, at the finest grain: a subscription's use of one model on one backend/deployment at one
/// price version. Amounts are unrounded.
public struct ChargebackFact: Hashable, Sendable {
    public var chargeClass: ChargeClass
    public var subscription: SubscriptionID
    public var product: String
    public var team: String
    public var costCenter: String
    public var backend: String
    public var deployment: String
    public var model: String
    /// `nil` when no price was in force: the usage is unpriced.
    public var priceID: Int64?
    public var priceList: String?
    public var currency: String?
    /// The backend carried a PTU commitment in the month of use: billed by allocation, not per token.
    public var committed: Bool
    public var commitmentCurrency: String?
    public var requests: Int64
    public var quantities: TokenQuantities
    public var totalTokens: Int64
    /// Pay-as-you-go list cost at the price in force; `nil` when unpriced.
    public var cost: Decimal?
    /// Start of the first hour (or day) of use in the row.
    public var chargePeriodStart: Date
    /// End of the last hour (or day) of use in the row.
    public var chargePeriodEnd: Date

    public init(
        chargeClass: ChargeClass, subscription: SubscriptionID, product: String, team: String, costCenter: String, backend: String,
        deployment: String, model: String, priceID: Int64? = nil, priceList: String? = nil, currency: String? = nil, committed: Bool,
        commitmentCurrency: String? = nil, requests: Int64, quantities: TokenQuantities, totalTokens: Int64, cost: Decimal? = nil,
        chargePeriodStart: Date, chargePeriodEnd: Date
    ) {
        self.chargeClass = chargeClass
        self.subscription = subscription
        self.product = product
        self.team = team
        self.costCenter = costCenter
        self.backend = backend
        self.deployment = deployment
        self.model = model
        self.priceID = priceID
        self.priceList = priceList
        self.currency = currency
        self.committed = committed
        self.commitmentCurrency = commitmentCurrency
        self.requests = requests
        self.quantities = quantities
        self.totalTokens = totalTokens
        self.cost = cost
        self.chargePeriodStart = chargePeriodStart
        self.chargePeriodEnd = chargePeriodEnd
    }
}

/// What a month bills, read from the hourly rollup and the late-usage bookings (never the raw ledger).
public struct ChargebackStore: Sendable {
    public let client: PostgresClient
    public init(client: PostgresClient) { self.client = client }

    /// The facts of `period` (a UTC month): its own usage net of what landed after it closed, plus late usage booked into it.
    public func facts(for period: BillingPeriod, logger: Logger) async throws -> [ChargebackFact] {
        // tollgate_chargeback_facts (sql/0310) reads the month by index range (daily rollup, the hours of days split by a
        // price change, late-usage bookings), groups the quantities and prices each group once.
        let rows = try await client.query(
            """
            SELECT charge_class, subscription_id, product, team, cost_center, backend, deployment, model, price_id, price_list, currency,
                committed, commitment_currency, requests, prompt_tokens, cached_tokens, completion_tokens, reasoning_tokens, total_tokens, cost,
                charge_period_start, charge_period_end
            FROM tollgate_chargeback_facts(\(period.start))
            ORDER BY charge_class DESC, subscription_id, model, backend, deployment, price_id, product, team, cost_center, committed
            """, logger: logger)
        var facts: [ChargebackFact] = []
        for try await row in rows {
            let (
                chargeClass, subscription, product, team, costCenter, backend, deployment, model, priceID, priceList, currency, committed,
                commitmentCurrency, requests, prompt, cached, completion, reasoning, total, cost, first, last
            ) = try row.decode(
                (
                    String, String, String, String, String, String, String, String, Int64?, String?, String?, Bool, String?, Int64, Int64,
                    Int64, Int64, Int64, Int64, Decimal?, Date, Date
                ).self)
            facts.append(
                ChargebackFact(
                    chargeClass: ChargeClass(rawValue: chargeClass) ?? .regular, subscription: SubscriptionID(subscription), product: product,
                    team: team, costCenter: costCenter, backend: backend, deployment: deployment, model: model, priceID: priceID,
                    priceList: priceList, currency: currency, committed: committed, commitmentCurrency: commitmentCurrency, requests: requests,
                    quantities: TokenQuantities(
                        promptTokens: prompt, cachedPromptTokens: cached, completionTokens: completion, reasoningTokens: reasoning),
                    totalTokens: total, cost: cost, chargePeriodStart: first, chargePeriodEnd: last))
        }
        return facts
    }

    /// Display names of subscriptions, for FOCUS `SubAccountName`.
    public func subscriptionNames(logger: Logger) async throws -> [SubscriptionID: String] {
        var names: [SubscriptionID: String] = [:]
        for try await (id, name) in try await client.query(
            "SELECT id, display_name FROM subscriptions WHERE display_name IS NOT NULL", logger: logger
        )
        .decode((String, String).self) {
            names[SubscriptionID(id)] = name
        }
        return names
    }
}

extension PostgresClient {
    /// `withTransaction`, except that a domain error thrown by `body` (after a clean rollback) reaches the caller as
    /// itself rather than wrapped in `PostgresTransactionError`, so the CLI and admin API can show its message.
    func withTransactionUnwrappingDomainErrors<Result>(
        logger: Logger, isolation: isolated (any Actor)? = #isolation, _ body: (PostgresConnection) async throws -> sending Result
    ) async throws -> sending Result {
        do {
            return try await withTransaction(logger: logger, body)
        } catch let error as PostgresTransactionError {
            if error.rollbackError == nil, let closureError = error.closureError, closureError is PeriodCloseError || closureError is PriceImportError
            {
                throw closureError
            }
            throw error
        }
    }
}
