import Foundation
import Logging
import TollgateCore
import TollgateRules
import TollgateStore

/// Applies a whole `tollgate.yaml`: the catalog (backends, products, subscriptions), the budgets, prices and commitments.
/// The document has been validated before this is called, so a malformed file never gets here.
public struct PolicyApplier: Sendable {
    let repositories: Repositories

    public init(repositories: Repositories) {
        self.repositories = repositories
    }

    /// What `apply` would change, as readable lines.
    public func plan(_ document: PolicyDocument, logger: Logger) async throws -> [String] {
        var lines = try await repositories.catalog.plan(document, logger: logger)
        let existing = Set(try await repositories.rules.budgets.all(logger: logger).map(\.name))
        for budget in document.budgets where !existing.contains(budget.name) { lines.append("+ budget \(budget.name)") }
        let stored = Set(try await repositories.prices.list(logger: logger).map { PriceKey($0.price) })
        for price in document.prices.compactMap(\.modelPrice) where !stored.contains(PriceKey(price)) {
            lines.append("+ price \(price.model) from \(price.effectiveFrom.iso8601)")
        }
        let closedThrough = try await repositories.periods.closedThrough(logger: logger)
        for name in document.priceCatalogs {
            let missing = try Self.importable(try PriceCatalog.load(named: name).prices, closedThrough: closedThrough)
                .filter { !stored.contains(PriceKey($0)) }
            if !missing.isEmpty { lines.append("+ price catalog \(name) (\(missing.count) version(s))") }
        }
        return lines
    }

    public func apply(_ document: PolicyDocument, logger: Logger) async throws {
        try await repositories.catalog.apply(document, logger: logger)
        try await repositories.rules.budgets.applyConfigured(document.budgets.compactMap(\.definition), logger: logger)
        let prices = document.prices.compactMap(\.modelPrice)
        if !prices.isEmpty { _ = try await repositories.prices.importPrices(prices, priceList: "tollgate.yaml", logger: logger) }
        if !document.priceCatalogs.isEmpty {
            let closedThrough = try await repositories.periods.closedThrough(logger: logger)
            for name in document.priceCatalogs {
                let catalog = try PriceCatalog.load(named: name)
                let versions = Self.importable(catalog.prices, closedThrough: closedThrough)
                let summary = try await repositories.prices.importPrices(versions, priceList: catalog.priceList, logger: logger)
                logger.info(
                    "Price catalog applied",
                    metadata: [
                        "prices.catalog": "\(name)", "prices.added": "\(summary.added)", "prices.unchanged": "\(summary.unchanged)",
                        "prices.skipped_closed": "\(catalog.prices.count - versions.count)",
                    ])
            }
        }
        for commitment in document.commitments {
            guard let month = commitment.month else { continue }
            try await repositories.commitments.set(
                PTUCommitment(backend: commitment.backend, effectiveFrom: month.start, monthlyAmount: commitment.monthlyAmount.value,
                              currency: commitment.currency, description: commitment.description), logger: logger)
        }
    }

    /// A catalog's versions that may still be stored: one starting inside a closed month would be refused (a closed
    /// month's prices never change), so it is left out rather than failing the whole apply; the versions in force
    /// after the close still import.
    static func importable(_ prices: [ModelPrice], closedThrough: Date?) -> [ModelPrice] {
        guard let closedThrough else { return prices }
        return prices.filter { $0.effectiveFrom >= closedThrough }
    }

    /// A price version's identity: the same model, backend, deployment and start is the same version.
    private struct PriceKey: Hashable {
        let model: String, backend: String, deployment: String, effectiveFrom: Date
        init(_ price: ModelPrice) {
            (model, backend, deployment, effectiveFrom) = (price.model, price.backend, price.deployment, price.effectiveFrom)
        }
    }
}
