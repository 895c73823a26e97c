import Foundation
import TollgateCore
import TollgateStore

/// A whole set of in-memory repositories that see each other as the PostgreSQL ones do (keys appear in the catalog,
/// prices and commitments respect closed months). `repositories` hands them out as the protocols.
public struct InMemoryStore: Sendable {
    public let catalog: InMemoryCatalogRepository
    public let keys: InMemoryKeyRepository
    public let periods: InMemoryPeriodRepository
    public let prices: InMemoryPriceRepository
    public let commitments: InMemoryCommitmentRepository
    public let usage: InMemoryUsage
    /// Budgets, subscription states and webhooks.
    public let rules: InMemoryRulesStore

    public init(catalog: CatalogSnapshot = CatalogSnapshot(), usage: InMemoryUsage = InMemoryUsage(), now: @escaping @Sendable () -> Date = { Date() }) {
        self.catalog = InMemoryCatalogRepository(catalog)
        self.keys = InMemoryKeyRepository(catalog: self.catalog, now: now)
        self.periods = InMemoryPeriodRepository()
        self.prices = InMemoryPriceRepository(periods: periods)
        self.commitments = InMemoryCommitmentRepository(periods: periods)
        self.usage = usage
        self.rules = InMemoryRulesStore(now: now)
    }

    public var repositories: Repositories {
        Repositories(
            catalog: catalog, keys: keys, prices: prices, commitments: commitments, periods: periods, chargeback: usage,
            usageSummaries: usage, usageIngest: usage, rules: rules.rules)
    }
}
