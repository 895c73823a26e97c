import Foundation
import Logging
import Testing
import TollgateCore
import TollgateStore
import TollgateStoreMemory
import TollgateTestSupport

/// One `CatalogSnapshotRepository` and how the catalog is written to it.
protocol CatalogFixture {
    var repository: any CatalogSnapshotRepository { get }
    func apply(_ document: PolicyDocument) async throws
    /// A new live key for `subscription`; returns its text.
    func createKey(for subscription: SubscriptionID) async throws -> String
    func revokeKey(_ key: String) async throws
}

/// The checks every `CatalogSnapshotRepository` passes: the in-memory one and PostgreSQL's.
enum CatalogSnapshotRepositoryContract {
    static let document = PolicyDocument(
        backends: [
            BackendSpec(
                name: "openai", kind: .openai, baseURL: "https://api.openai.com/v1", credentialEnv: "OPENAI_KEY",
                deployments: [DeploymentSpec(name: "gpt-4o-mini", model: "gpt-4o-mini-2024-07-18"), DeploymentSpec(name: "gpt-4o", model: "gpt-4o")]),
            BackendSpec(name: "mock", kind: .mock, deployments: [DeploymentSpec(name: "mock-model", model: "mock-model")], mockLatencyMilliseconds: 5),
        ],
        products: [ProductSpec(name: "standard", limits: Self.limits)],
        subscriptions: [
            SubscriptionSpec(id: "sub-a", displayName: "A", team: "search", costCenter: "cc-1", product: "standard"),
            SubscriptionSpec(id: "sub-b", state: .suspended),
        ])

    /// Every setting a product's limits have, so the round trip through the store is checked for each.
    static let limits = ProductLimits(
        tokensPerMinute: 1_000, requestsPerMinute: 60, tokenQuota: 50_000, quotaPeriod: .weekly, defaultMaxTokens: 256,
        remainingTokensHeaderName: "remaining-tokens", tokensConsumedHeaderName: "tokens-consumed", strict: true,
        failureMode: .closed)

    static func servesWhatWasApplied(_ fixture: some CatalogFixture) async throws {
        try await fixture.apply(document)
        let snapshot = try await fixture.repository.snapshot(logger: Logger(label: "contract"))
        #expect(Set(snapshot.backends.keys) == ["openai", "mock"])
        #expect(snapshot.backends["openai"]?.kind == .openai && snapshot.backends["openai"]?.baseURL == "https://api.openai.com/v1")
        #expect(snapshot.backends["openai"]?.credentialEnv == "OPENAI_KEY")
        // Deployments come ordered by name.
        #expect(snapshot.backends["openai"]?.deployments == [DeploymentSpec(name: "gpt-4o", model: "gpt-4o"), DeploymentSpec(name: "gpt-4o-mini", model: "gpt-4o-mini-2024-07-18")])
        #expect(snapshot.backends["mock"]?.kind == .mock && snapshot.backends["mock"]?.mockLatencyMilliseconds == 5)
        #expect(Set(snapshot.routes.keys) == ["gpt-4o-mini", "gpt-4o", "mock-model"])
        #expect(snapshot.routes["gpt-4o-mini"]?.first?.backend == "openai" && snapshot.routes["gpt-4o-mini"]?.first?.model == "gpt-4o-mini-2024-07-18")
        #expect(snapshot.routes["gpt-4o-mini"]?.first?.deployment == "gpt-4o-mini")
        #expect(snapshot.products["standard"]?.limits == Self.limits)
        let a = try #require(snapshot.subscriptions["sub-a"])
        #expect(a.displayName == "A" && a.team == "search" && a.costCenter == "cc-1" && a.product == "standard")
        #expect(a.state == .active && a.stateActor == "config" && a.stateReason == nil)
        #expect(snapshot.subscriptions["sub-b"]?.state == .suspended && snapshot.subscriptions["sub-b"]?.product == nil)
        #expect(snapshot.keys.isEmpty)
        #expect(snapshot.loadedAt.timeIntervalSinceNow > -60)
    }

    /// `allowed_models` of products and subscriptions, written, read back, changed and cleared (nil, not an empty list).
    static func servesAllowedModels(_ fixture: some CatalogFixture) async throws {
        var restricted = document
        restricted.products[0].allowedModels = ["gpt-4o*", "mock-model"]
        restricted.subscriptions[0].allowedModels = ["*-mini"]
        try await fixture.apply(restricted)
        var snapshot = try await fixture.repository.snapshot(logger: Logger(label: "contract"))
        #expect(snapshot.products["standard"]?.allowedModels == ["gpt-4o*", "mock-model"])
        #expect(snapshot.subscriptions["sub-a"]?.allowedModels == ["*-mini"])
        #expect(snapshot.subscriptions["sub-b"]?.allowedModels == nil)
        let a = try #require(snapshot.subscriptions["sub-a"])
        #expect(snapshot.modelAccess(of: a) == ModelAccess(product: ["gpt-4o*", "mock-model"], subscription: ["*-mini"]))

        restricted.products[0].allowedModels = ["gpt-4o"]
        restricted.subscriptions[0].allowedModels = nil
        try await fixture.apply(restricted)
        snapshot = try await fixture.repository.snapshot(logger: Logger(label: "contract"))
        #expect(snapshot.products["standard"]?.allowedModels == ["gpt-4o"])
        #expect(snapshot.subscriptions["sub-a"]?.allowedModels == nil)
        #expect(CatalogPlan.changes(from: snapshot, to: restricted).isEmpty)
        var narrowed = restricted
        narrowed.subscriptions[0].allowedModels = ["gpt-4o"]
        #expect(CatalogPlan.changes(from: snapshot, to: narrowed) == ["~ subscription sub-a"])
    }

    static func servesLiveKeysByTheirHashOnly(_ fixture: some CatalogFixture) async throws {
        try await fixture.apply(document)
        let kept = try await fixture.createKey(for: "sub-a")
        let revoked = try await fixture.createKey(for: "sub-b")
        try await fixture.revokeKey(revoked)
        let snapshot = try await fixture.repository.snapshot(logger: Logger(label: "contract"))
        #expect(snapshot.keys.count == 1)
        let key = try #require(snapshot.keys[KeyStore.hash(kept)])
        #expect(key.subscription == "sub-a" && key.hash == KeyStore.hash(kept))
        #expect(snapshot.keys[KeyStore.hash(revoked)] == nil)
    }
}

@Suite struct InMemoryCatalogSnapshotRepositoryContractTests {
    struct Fixture: CatalogFixture {
        let memory = InMemoryCatalogSnapshotRepository()
        var repository: any CatalogSnapshotRepository { memory }
        func apply(_ document: PolicyDocument) async throws { memory.apply(document) }
        func createKey(for subscription: SubscriptionID) async throws -> String { memory.createKey(for: subscription) }
        func revokeKey(_ key: String) async throws { memory.revokeKey(key) }
    }

    @Test func servesWhatWasApplied() async throws { try await CatalogSnapshotRepositoryContract.servesWhatWasApplied(Fixture()) }
    @Test func servesLiveKeysByTheirHashOnly() async throws { try await CatalogSnapshotRepositoryContract.servesLiveKeysByTheirHashOnly(Fixture()) }
    @Test func servesAllowedModels() async throws { try await CatalogSnapshotRepositoryContract.servesAllowedModels(Fixture()) }
}

@Suite(.freshDatabasePerTest) struct PostgresCatalogSnapshotRepositoryContractTests {
    struct Fixture: CatalogFixture {
        let database: PostgresDatabase
        var repository: any CatalogSnapshotRepository { database.catalog }
        func apply(_ document: PolicyDocument) async throws { try await database.catalog.apply(document, logger: TestDatabase.logger) }
        func createKey(for subscription: SubscriptionID) async throws -> String {
            try await KeyStore(client: database.client).create(for: subscription, slot: .primary, logger: TestDatabase.logger).key
        }
        func revokeKey(_ key: String) async throws {
            _ = try await KeyStore(client: database.client).revoke(KeyStore.prefix(of: key), logger: TestDatabase.logger)
        }
    }

    static func withFixture(_ body: @Sendable (Fixture) async throws -> Void) async throws {
        try await PostgresDatabase.withDatabase(try await TestDatabase.location(), logger: TestDatabase.logger) { try await body(Fixture(database: $0)) }
    }

    @Test func servesWhatWasApplied() async throws { try await Self.withFixture { try await CatalogSnapshotRepositoryContract.servesWhatWasApplied($0) } }
    @Test func servesLiveKeysByTheirHashOnly() async throws {
        try await Self.withFixture { try await CatalogSnapshotRepositoryContract.servesLiveKeysByTheirHashOnly($0) }
    }
    @Test func servesAllowedModels() async throws { try await Self.withFixture { try await CatalogSnapshotRepositoryContract.servesAllowedModels($0) } }
}
