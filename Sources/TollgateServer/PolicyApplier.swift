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
        return lines
    }

    public func apply(_ document: PolicyDocument, logger: Logger) async throws {
        try await repositories.catalog.apply(document, logger: logger)
        try await repositories.rules.budgets.applyConfigured(document.budgets.compactMap(\.definition), logger: logger)
        let prices = document.prices.compactMap(\.modelPrice)
        if !prices.isEmpty { _ = try await repositories.prices.importPrices(prices, priceList: "tollgate.yaml", logger: logger) }
        for commitment in document.commitments {
            guard let month = commitment.month else { continue }
            try await repositories.commitments.set(
                PTUCommitment(backend: commitment.backend, effectiveFrom: month.start, monthlyAmount: commitment.monthlyAmount.value,
                              currency: commitment.currency, description: commitment.description), logger: logger)
        }
    }

    /// A price version's identity: the same model, backend, deployment and start is the same version.
    private struct PriceKey: Hashable {
        let model: String, backend: String, deployment: String, effectiveFrom: Date
        init(_ price: ModelPrice) {
            (model, backend, deployment, effectiveFrom) = (price.model, price.backend, price.deployment, price.effectiveFrom)
        }
    }
}
