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
        let existing = Set(try await BudgetStore(client: client).all(logger: logger).map(\.name))
        for budget in document.budgets where !existing.contains(budget.name) { lines.append("+ budget \(budget.name)") }
        return lines
    }

    public static func apply(_ document: PolicyDocument, client: PostgresClient, logger: Logger) async throws {
        try await CatalogStore(client: client).apply(document, logger: logger)
        try await BudgetStore(client: client).applyConfigured(document.budgets.compactMap(\.definition), logger: logger)
    }
}
