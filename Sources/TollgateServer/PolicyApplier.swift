import Logging
import PostgresNIO
import TollgateCore
import TollgateRules
import TollgateStore

/// Applies a whole `tollgate.yaml`: the catalog (backends, products, subscriptions) and the budgets.
/// The document has been validated before this is called, so a malformed file never gets here.
public enum PolicyApplier {
    /// What `apply` would change, as readable lines.
    public static func plan(_ document: PolicyDocument, client: PostgresClient, logger: Logger) async throws -> [String] {
        var lines = try await CatalogStore(client: client).plan(document, logger: logger)
        let existing = Set(try await PostgresBudgetRepository(client: client).all(logger: logger).map(\.name))
        for budget in document.budgets where !existing.contains(budget.name) { lines.append("+ budget \(budget.name)") }
        let stored = Set(try await PriceStore(client: client).list(logger: logger).map { "\($0.price.model)|\($0.price.backend)|\($0.price.deployment)|\($0.price.effectiveFrom)" })
        for price in document.prices.compactMap(\.modelPrice)
        where !stored.contains("\(price.model)|\(price.backend)|\(price.deployment)|\(price.effectiveFrom)") {
            lines.append("+ price \(price.model) from \(price.effectiveFrom.iso8601)")
        }
        return lines
    }

    public static func apply(_ document: PolicyDocument, client: PostgresClient, logger: Logger) async throws {
        try await CatalogStore(client: client).apply(document, logger: logger)
        try await PostgresBudgetRepository(client: client).applyConfigured(document.budgets.compactMap(\.definition), logger: logger)
        let prices = document.prices.compactMap(\.modelPrice)
        if !prices.isEmpty { _ = try await PriceStore(client: client).importPrices(prices, priceList: "tollgate.yaml", logger: logger) }
        for commitment in document.commitments {
            guard let month = commitment.month else { continue }
            try await PTUStore(client: client).set(
                PTUCommitment(backend: commitment.backend, effectiveFrom: month.start, monthlyAmount: commitment.monthlyAmount.value,
                              currency: commitment.currency, description: commitment.description), logger: logger)
        }
    }
}
