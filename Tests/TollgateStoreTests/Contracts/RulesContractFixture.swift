import Foundation
import PostgresNIO
import TollgateCore
import TollgateStore
import TollgateStoreMemory
import TollgateTestSupport

/// What a contract test arranges outside the repository under test (the catalog, metered use), on either implementation.
protocol RulesContractFixture: Sendable {
    var rules: RulesRepositories { get }
    func addSubscription(_ id: SubscriptionID, team: String?, product: String?) async throws
    /// Use as the usage writer lands it (the hourly rollup the budget measure reads).
    func recordUsage(_ id: SubscriptionID, tokens: Int, at: Date) async throws
}

struct MemoryRulesFixture: RulesContractFixture {
    let store = InMemoryRulesStore()
    var rules: RulesRepositories { store.rules }

    func addSubscription(_ id: SubscriptionID, team: String?, product: String?) async throws {
        store.addSubscription(id, team: team, product: product)
    }

    func recordUsage(_ id: SubscriptionID, tokens: Int, at: Date) async throws {
        store.recordUsage(id, tokens: tokens, at: at)
    }
}

struct PostgresRulesFixture: RulesContractFixture {
    let client: PostgresClient
    var rules: RulesRepositories { RulesRepositories(client: client) }

    func addSubscription(_ id: SubscriptionID, team: String?, product: String?) async throws {
        if let product {
            try await client.query("INSERT INTO products (name) VALUES (\(product)) ON CONFLICT DO NOTHING", logger: TestDatabase.logger)
        }
        try await client.query(
            "INSERT INTO subscriptions (id, team, product, cost_center) VALUES (\(id.rawValue), \(team), \(product), 'cc-1')",
            logger: TestDatabase.logger)
    }

    func recordUsage(_ id: SubscriptionID, tokens: Int, at: Date) async throws {
        let row = try await client.query("SELECT team, product FROM subscriptions WHERE id = \(id.rawValue)", logger: TestDatabase.logger)
            .collect().first?.decode((String?, String?).self)
        let event = UsageEvent(
            requestID: UUIDv7.make(at: at), startedAt: at, endedAt: at, subscription: id, product: row?.1, team: row?.0, costCenter: "cc-1",
            backend: "mock", model: "gpt-4o-mini", route: "chat.completions", httpStatus: 200, streamed: false,
            usage: TokenUsage(promptTokens: tokens, completionTokens: 0), usageSource: .reported)
        _ = try await UsageStore(client: client).insert([event], logger: TestDatabase.logger)
    }

    /// Runs `body` on the current test's database.
    static func with(_ body: @Sendable (PostgresRulesFixture) async throws -> Void) async throws {
        try await TestDatabase.withClient { client in try await body(PostgresRulesFixture(client: client)) }
    }
}

func utcDate(_ text: String) -> Date { Date(iso8601: text)! }
