import Crypto
import Foundation
import Logging
import PostgresNIO
import TollgateCore

/// A price version as stored: the price, its id (FOCUS `SkuPriceId`), the price list it came from and when it stops.
public struct StoredPrice: Hashable, Sendable {
    public var id: Int64
    public var price: ModelPrice
    public var priceList: String
    /// Exclusive; `nil` while no later version of the same key exists.
    public var effectiveTo: Date?

    public init(id: Int64, price: ModelPrice, priceList: String, effectiveTo: Date? = nil) {
        self.id = id
        self.price = price
        self.priceList = priceList
        self.effectiveTo = effectiveTo
    }
}

public struct PriceImportSummary: Hashable, Sendable, Codable {
    /// Versions written by this import.
    public var added: Int
    /// Versions already stored with the same amounts (a re-import changes nothing).
    public var unchanged: Int

    public init(added: Int, unchanged: Int) {
        self.added = added
        self.unchanged = unchanged
    }
}

public enum PriceImportError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The same model, backend, deployment and effective_from is stored with other amounts. Versions are never edited.
    case conflictingVersion(model: String, backend: String, deployment: String, effectiveFrom: Date)
    /// The version would start inside a closed billing period, whose money is frozen.
    case startsInClosedPeriod(model: String, effectiveFrom: Date, closedThrough: Date)
    case invalid(PricingError)

    public var description: String {
        switch self {
        case .conflictingVersion(let model, let backend, let deployment, let from):
            "a price for \(model)\(backend.isEmpty ? "" : " on \(backend)")\(deployment.isEmpty ? "" : "/\(deployment)") from \(from.iso8601) is already stored with other amounts; prices are versioned: import a version with a later effective_from"
        case .startsInClosedPeriod(let model, let from, let closedThrough):
            "the price for \(model) starts at \(from.iso8601), inside a closed billing period (the books are closed through \(closedThrough.iso8601)); a closed month's prices never change"
        case .invalid(let error): error.description
        }
    }
}

/// Effective-dated prices: imported from CSV, `tollgate.yaml` or the admin API, read by reports and the rules engine.
public struct PriceStore: Sendable {
    public let client: PostgresClient
    public init(client: PostgresClient) { self.client = client }

    /// Adds price versions in one transaction: all or nothing. Re-importing the same list is a no-op.
    /// - Parameter priceList: names the list the versions come from (reported as the price-list version used).
    public func importPrices(_ prices: [ModelPrice], priceList: String, logger: Logger) async throws -> PriceImportSummary {
        for price in prices where !price.problems.isEmpty {
            throw PriceImportError.invalid(.invalidPrice(model: price.model, problems: price.problems))
        }
        return try await client.withTransactionUnwrappingDomainErrors(logger: logger) { tx in
            // Serialises with `period close`, so a price cannot slip into a month being closed.
            try await tx.query("LOCK TABLE billing_period_closes IN SHARE MODE", logger: logger)
            let closedThrough =
                try await tx.query("SELECT max(period_end) FROM billing_period_closes", logger: logger)
                .collect().first?.decode(Date?.self) ?? nil
            var summary = PriceImportSummary(added: 0, unchanged: 0)
            for p in prices {
                let existing = try await tx.query(
                    """
                    SELECT currency, input_per_1m, cached_input_per_1m, output_per_1m, reasoning_per_1m FROM model_prices
                    WHERE model = \(p.model) AND backend = \(p.backend) AND deployment = \(p.deployment) AND effective_from = \(p.effectiveFrom)
                    """, logger: logger
                ).collect().first
                if let existing {
                    let (currency, input, cached, output, reasoning) = try existing.decode((String, Decimal, Decimal?, Decimal, Decimal?).self)
                    guard currency == p.currency, input == p.inputPerMillion, cached == p.cachedInputPerMillion, output == p.outputPerMillion,
                        reasoning == p.reasoningPerMillion
                    else {
                        throw PriceImportError.conflictingVersion(
                            model: p.model, backend: p.backend, deployment: p.deployment, effectiveFrom: p.effectiveFrom)
                    }
                    summary.unchanged += 1
                    continue
                }
                if let closedThrough, p.effectiveFrom < closedThrough {
                    throw PriceImportError.startsInClosedPeriod(model: p.model, effectiveFrom: p.effectiveFrom, closedThrough: closedThrough)
                }
                try await tx.query(
                    """
                    INSERT INTO model_prices (model, backend, deployment, currency, effective_from, input_per_1m, cached_input_per_1m,
                        output_per_1m, reasoning_per_1m, price_list)
                    VALUES (\(p.model), \(p.backend), \(p.deployment), \(p.currency), \(p.effectiveFrom), \(p.inputPerMillion),
                        \(p.cachedInputPerMillion), \(p.outputPerMillion), \(p.reasoningPerMillion), \(priceList))
                    """, logger: logger)
                summary.added += 1
            }
            logger.info(
                "Prices imported",
                metadata: ["prices.list": "\(priceList)", "prices.added": "\(summary.added)", "prices.unchanged": "\(summary.unchanged)"])
            return summary
        }
    }

    /// Every stored version, ordered by model, backend, deployment and start.
    public func list(logger: Logger) async throws -> [StoredPrice] {
        let rows = try await client.query(
            """
            SELECT id, model, backend, deployment, currency, effective_from, input_per_1m, cached_input_per_1m, output_per_1m,
                reasoning_per_1m, price_list, nullif(effective_to, 'infinity')
            FROM model_price_versions ORDER BY model, backend, deployment, effective_from
            """, logger: logger)
        var prices: [StoredPrice] = []
        for try await row in rows {
            let (id, model, backend, deployment, currency, from, input, cached, output, reasoning, priceList, to) =
                try row.decode((Int64, String, String, String, String, Date, Decimal, Decimal?, Decimal, Decimal?, String, Date?).self)
            prices.append(
                StoredPrice(
                    id: id,
                    price: ModelPrice(
                        model: model, backend: backend, deployment: deployment, currency: currency, effectiveFrom: from, inputPerMillion: input,
                        cachedInputPerMillion: cached, outputPerMillion: output, reasoningPerMillion: reasoning),
                    priceList: priceList, effectiveTo: to))
        }
        return prices
    }
}

/// A fixed monthly commitment on a backend (provisioned throughput), allocated to its users pro rata by tokens.
public struct PTUCommitment: Hashable, Sendable, Codable {
    public var backend: String
    /// The first instant of the UTC month it starts in.
    public var effectiveFrom: Date
    /// Per month, in `currency`. Zero ends an earlier commitment.
    public var monthlyAmount: Decimal
    public var currency: String
    public var description: String?

    public init(backend: String, effectiveFrom: Date, monthlyAmount: Decimal, currency: String, description: String? = nil) {
        self.backend = backend
        self.effectiveFrom = effectiveFrom
        self.monthlyAmount = monthlyAmount
        self.currency = currency
        self.description = description
    }
}

public struct PTUStore: Sendable {
    public let client: PostgresClient
    public init(client: PostgresClient) { self.client = client }

    /// Sets the commitment from `effectiveFrom`'s month on (replacing a row for the same month).
    /// - Throws: `DomainRuleError.commitmentFrozen` when the month is already closed (its money is frozen).
    public func set(_ commitment: PTUCommitment, logger: Logger) async throws {
        try await DomainRuleError.mapping {
            try await client.query(
                """
                INSERT INTO ptu_commitments (backend, effective_from, monthly_amount, currency, description)
                VALUES (\(commitment.backend), \(commitment.effectiveFrom), \(commitment.monthlyAmount), \(commitment.currency), \(commitment.description))
                ON CONFLICT (backend, effective_from) DO UPDATE SET monthly_amount = EXCLUDED.monthly_amount, currency = EXCLUDED.currency,
                    description = EXCLUDED.description
                """, logger: logger)
        }
    }

    /// The commitments in force during `period` (one month), with a non-zero amount.
    public func commitments(in period: BillingPeriod, logger: Logger) async throws -> [PTUCommitment] {
        let rows = try await client.query(
            """
            SELECT backend, effective_from, monthly_amount, currency, description FROM ptu_commitment_versions
            WHERE effective_from <= \(period.start) AND effective_to > \(period.start) AND monthly_amount > 0 ORDER BY backend
            """, logger: logger)
        var result: [PTUCommitment] = []
        for try await (backend, from, amount, currency, description) in rows.decode((String, Date, Decimal, String, String?).self) {
            result.append(PTUCommitment(backend: backend, effectiveFrom: from, monthlyAmount: amount, currency: currency, description: description))
        }
        return result
    }
}

/// Names an imported price list: the file name and the first 12 hex digits of its SHA-256, so two different files with
/// the same name are told apart in reports.
public enum PriceListVersion {
    public static func name(file: String, contents: Data) -> String {
        let digest = SHA256.hash(data: contents).map { String(format: "%02x", $0) }.joined()
        return "\(file)@\(digest.prefix(12))"
    }
}
