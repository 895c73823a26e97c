import Foundation
import Logging
import TollgateCore
import TollgateRules
import TollgateStore

/// The budgets a policy document configures: the rules engine's side of `tollgate apply`.
public protocol ConfiguredBudgets: Sendable {
    /// The names of every stored budget.
    func budgetNames(logger: Logger) async throws -> Set<String>
    /// Replaces the budgets that came from the file (budgets created through the admin API are kept).
    func applyConfigured(_ budgets: [BudgetDefinition], logger: Logger) async throws
}

/// Applies a whole `tollgate.yaml`: the catalog (backends, products, subscriptions), the budgets, prices and commitments.
/// The document has been validated before this is called, so a malformed file never gets here.
public struct PolicyApplier: Sendable {
    let repositories: Repositories
    let budgets: any ConfiguredBudgets

    public init(repositories: Repositories, budgets: any ConfiguredBudgets) {
        self.repositories = repositories
        self.budgets = budgets
    }

    /// What `apply` would change, as readable lines.
    public func plan(_ document: PolicyDocument, logger: Logger) async throws -> [String] {
        var lines = try await repositories.catalog.plan(document, logger: logger)
        let existing = try await budgets.budgetNames(logger: logger)
        for budget in document.budgets where !existing.contains(budget.name) { lines.append("+ budget \(budget.name)") }
        let stored = Set(try await repositories.prices.list(logger: logger).map { PriceKey($0.price) })
        for price in document.prices.compactMap(\.modelPrice) where !stored.contains(PriceKey(price)) {
            lines.append("+ price \(price.model) from \(price.effectiveFrom.iso8601)")
        }
        return lines
    }

    public func apply(_ document: PolicyDocument, logger: Logger) async throws {
        try await repositories.catalog.apply(document, logger: logger)
        try await budgets.applyConfigured(document.budgets.compactMap(\.definition), logger: logger)
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

extension BudgetStore: ConfiguredBudgets {
    public func budgetNames(logger: Logger) async throws -> Set<String> { Set(try await all(logger: logger).map(\.name)) }
}

extension PostgresDatabase {
    /// The rules engine's budgets on this pool, as `tollgate apply` needs them.
    public var configuredBudgets: any ConfiguredBudgets { BudgetStore(client: client) }
}
