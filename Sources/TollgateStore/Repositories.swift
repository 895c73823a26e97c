import Foundation
import PostgresNIO

/// Every repository the engine, the gateway and the admin API are built on, as protocols. The composition root gets the
/// PostgreSQL set from `PostgresDatabase.repositories`; DB-free tests build one from the in-memory implementations
/// (`TollgateStoreMemory`).
public struct Repositories: Sendable {
    public var catalog: any CatalogRepository
    public var keys: any KeyRepository
    public var prices: any PriceRepository
    public var commitments: any CommitmentRepository
    public var periods: any PeriodRepository
    public var chargeback: any ChargebackFactsSource
    public var usageSummaries: any UsageSummaryRepository
    public var usageIngest: any UsageIngestRepository
    /// Budgets, subscription states and webhooks: the rules engine's repositories.
    public var rules: RulesRepositories

    public init(
        catalog: any CatalogRepository, keys: any KeyRepository, prices: any PriceRepository, commitments: any CommitmentRepository,
        periods: any PeriodRepository, chargeback: any ChargebackFactsSource, usageSummaries: any UsageSummaryRepository,
        usageIngest: any UsageIngestRepository, rules: RulesRepositories
    ) {
        self.catalog = catalog
        self.keys = keys
        self.prices = prices
        self.commitments = commitments
        self.periods = periods
        self.chargeback = chargeback
        self.usageSummaries = usageSummaries
        self.usageIngest = usageIngest
        self.rules = rules
    }
}

extension PostgresDatabase {
    /// The catalog: what `tollgate apply` writes and the gateway loads.
    public var catalog: CatalogStore { CatalogStore(client: client) }
    public var keys: KeyStore { KeyStore(client: client) }
    public var prices: PriceStore { PriceStore(client: client) }
    public var commitments: PTUStore { PTUStore(client: client) }
    public var periods: PeriodStore { PeriodStore(client: client) }
    public var chargeback: ChargebackStore { ChargebackStore(client: client) }
    public var usageSummaries: PostgresUsageSummaries { PostgresUsageSummaries(client: client) }
    public var usageIngest: PostgresUsageIngest { PostgresUsageIngest(client: client) }
    /// The migrator of the migrations shipped in this binary.
    /// - Throws: when the bundled `sql/` folder cannot be read.
    public func migrator() throws -> Migrator { Migrator(client: client, migrations: try Migration.bundled(), logger: logger) }

    /// The PostgreSQL implementation of every repository, on this pool.
    public var repositories: Repositories { .postgres(client: client) }
}

extension Repositories {
    /// The PostgreSQL implementation of every repository on `client` (for this package's real-PostgreSQL tests and the
    /// benchmark package, which hold a client of their own).
    public static func postgres(client: PostgresClient) -> Repositories {
        Repositories(
            catalog: CatalogStore(client: client), keys: KeyStore(client: client), prices: PriceStore(client: client),
            commitments: PTUStore(client: client), periods: PeriodStore(client: client), chargeback: ChargebackStore(client: client),
            usageSummaries: PostgresUsageSummaries(client: client), usageIngest: PostgresUsageIngest(client: client),
            rules: RulesRepositories(client: client))
    }
}
