import Foundation
import PostgresNIO
import Testing
import TollgateCore
import TollgateStore
import TollgateTestSupport

/// Deployments are listed by name, the order `snapshot` returns them in.
private let document = PolicyDocument(
    backends: [
        BackendSpec(
            name: "azure-east", kind: .azure, baseURL: "https://east.openai.azure.com", credentialEnv: "AZURE_KEY", apiVersion: "2024-10-21",
            deployments: [DeploymentSpec(name: "prod-4o", model: "gpt-4o")], connectTimeoutSeconds: 10, readTimeoutSeconds: 120),
        BackendSpec(
            name: "mock", kind: .mock,
            deployments: [DeploymentSpec(name: "mock-a", model: "mock-a"), DeploymentSpec(name: "mock-b", model: "mock-small")],
            mockLatencyMilliseconds: 25),
        BackendSpec(
            name: "openai", kind: .openai, baseURL: "https://api.openai.com/v1", credentialEnv: "OPENAI_KEY",
            deployments: [DeploymentSpec(name: "gpt-4o-mini", model: "gpt-4o-mini")]),
    ],
    products: [
        ProductSpec(
            name: "standard", displayName: "Standard",
            limits: ProductLimits(tokensPerMinute: 10_000, tokenQuota: 5_000_000_000, quotaPeriod: .monthly)),
        ProductSpec(name: "premium", limits: ProductLimits(quotaPeriod: .weekly)),
    ],
    subscriptions: [
        SubscriptionSpec(id: "team-a", displayName: "Team A", team: "search", costCenter: "cc-100", product: "standard", state: .active),
        SubscriptionSpec(id: "team-b", state: .suspended),
        SubscriptionSpec(id: "team-c", team: "ads", product: "premium", state: .cancelled),
    ]
)

private func apply(_ document: PolicyDocument, _ client: PostgresClient) async throws {
    try await CatalogStore(client: client).apply(document, logger: TestDatabase.logger)
}

private func plan(_ document: PolicyDocument, _ client: PostgresClient) async throws -> [String] {
    try await CatalogStore(client: client).plan(document, logger: TestDatabase.logger)
}

private func snapshot(_ client: PostgresClient) async throws -> CatalogSnapshot {
    try await CatalogStore(client: client).snapshot(logger: TestDatabase.logger)
}

/// One line per stored subscription, `-` for a missing value.
private func describe(_ s: CatalogSnapshot.Subscription) -> String {
    [s.id.rawValue, s.displayName, s.team, s.costCenter, s.product, s.state.rawValue, s.stateReason, s.stateActor].map { $0 ?? "-" }.joined(
        separator: "|")
}

// The catalog is one per database, so each scenario is a suite with a database of its own.

@Suite(.freshDatabase) struct CatalogRoundTripTests {
    @Test func applyThenSnapshotGivesTheDocumentBack() async throws {
        try await TestDatabase.withClient { client in
            #expect(
                try await plan(document, client) == [
                    "+ backend azure-east (azure, 1 deployment(s))", "+ backend mock (mock, 2 deployment(s))",
                    "+ backend openai (openai, 1 deployment(s))",
                    "+ product standard", "+ product premium", "+ subscription team-a", "+ subscription team-b", "+ subscription team-c",
                ])
            try await apply(document, client)
            let stored = try await snapshot(client)
            #expect(stored.backends == ["azure-east": document.backends[0], "mock": document.backends[1], "openai": document.backends[2]])
            #expect(
                stored.routes.mapValues { $0.map { "\($0.backend) \($0.deployment) \($0.model)" }.joined(separator: ", ") } == [
                    "prod-4o": "azure-east prod-4o gpt-4o",
                    "mock-a": "mock mock-a mock-a",
                    "mock-b": "mock mock-b mock-small",
                    "gpt-4o-mini": "openai gpt-4o-mini gpt-4o-mini",
                ])
            #expect(stored.products == ["standard": document.products[0], "premium": document.products[1]])
            #expect(
                stored.subscriptions.mapValues(describe) == [
                    "team-a": "team-a|Team A|search|cc-100|standard|active|-|config",
                    "team-b": "team-b|-|-|-|-|suspended|-|config",
                    "team-c": "team-c|-|ads|-|premium|cancelled|-|config",
                ])
        }
    }
}

@Suite(.freshDatabase) struct CatalogReapplyTests {
    @Test func reapplyingChangesNothingAndAnEditShowsInThePlan() async throws {
        try await TestDatabase.withClient { client in
            try await apply(document, client)
            try await apply(document, client)
            #expect(try await plan(document, client) == [])

            var edited = document
            edited.backends.remove(at: 1)  // mock
            edited.backends[1].baseURL = "https://proxy.internal/v1"  // openai
            edited.subscriptions[0].team = "search-platform"
            #expect(try await plan(edited, client) == ["~ backend openai", "- backend mock", "~ subscription team-a"])
            try await apply(edited, client)
            #expect(try await plan(edited, client) == [])
            let stored = try await snapshot(client)
            #expect(stored.backends.keys.sorted() == ["azure-east", "openai"])
            #expect(stored.routes.keys.sorted() == ["gpt-4o-mini", "prod-4o"])  // the removed backend's names are gone with it
            #expect(stored.backends["openai"]?.baseURL == "https://proxy.internal/v1")
            #expect(stored.subscriptions["team-a"]?.team == "search-platform")
        }
    }
}

/// A name on several backends is a pool: its members come back ordered by priority, then backend name, with their
/// weights, and each backend keeps its circuit-breaker settings.
@Suite(.freshDatabase) struct CatalogPoolTests {
    @Test func aPoolAndItsBreakerSettingsRoundTrip() async throws {
        try await TestDatabase.withClient { client in
            var pooled = document
            pooled.backends[1].deployments.append(DeploymentSpec(name: "gpt-4o-mini", model: "mock-4o", priority: 2, weight: 3))
            pooled.backends[0].deployments.append(DeploymentSpec(name: "gpt-4o-mini", model: "gpt-4o-mini", weight: 5))
            pooled.backends[0].circuitBreaker = CircuitBreakerSpec(failures: 3, windowSeconds: 10, openSeconds: 45)
            try await apply(pooled, client)
            let stored = try await snapshot(client)
            #expect(
                stored.routes["gpt-4o-mini"] == [
                    .init(backend: "azure-east", deployment: "gpt-4o-mini", model: "gpt-4o-mini", priority: 1, weight: 5),
                    .init(backend: "openai", deployment: "gpt-4o-mini", model: "gpt-4o-mini"),
                    .init(backend: "mock", deployment: "gpt-4o-mini", model: "mock-4o", priority: 2, weight: 3),
                ])
            #expect(stored.backends["azure-east"]?.circuitBreaker == CircuitBreakerSpec(failures: 3, windowSeconds: 10, openSeconds: 45))
            #expect(try await plan(pooled, client) == [])
            // What the in-memory catalog makes of the same document is the same pool.
            #expect(CatalogSnapshot(document: pooled).routes["gpt-4o-mini"] == stored.routes["gpt-4o-mini"])
        }
    }
}

@Suite(.freshDatabase) struct CatalogRulesEngineStateTests {
    @Test func applyDoesNotLiftASuspensionByTheRulesEngine() async throws {
        try await TestDatabase.withClient { client in
            try await apply(document, client)
            let found = try await CatalogStore(client: client).setState(
                "team-a", to: .suspended, reason: "budget exhausted for 2026-11", actor: "rules-engine", logger: TestDatabase.logger)
            #expect(found)
            try await apply(document, client)  // the file still says active
            let teamA = try #require(try await snapshot(client).subscriptions["team-a"])
            #expect(teamA.state == .suspended)
            #expect(teamA.stateReason == "budget exhausted for 2026-11")
            #expect(teamA.stateActor == "rules-engine")
            #expect(try await plan(document, client) == [])
            #expect(
                try await !CatalogStore(client: client).setState(
                    "no-such-team", to: .active, reason: nil, actor: "admin:x", logger: TestDatabase.logger))
        }
    }
}

@Suite(.freshDatabase) struct CatalogFileStateTests {
    @Test func aStateChangeInTheFileIsApplied() async throws {
        try await TestDatabase.withClient { client in
            try await apply(document, client)
            var edited = document
            edited.subscriptions[0].state = .suspended
            #expect(try await plan(edited, client) == ["~ subscription team-a"])
            try await apply(edited, client)
            #expect(try await snapshot(client).subscriptions["team-a"]?.state == .suspended)
            #expect(try await plan(edited, client) == [])
            try await apply(document, client)
            #expect(try await snapshot(client).subscriptions["team-a"]?.state == .active)
        }
    }
}

@Suite(.freshDatabase) struct CatalogAtomicApplyTests {
    @Test func aFailingApplyChangesNothing() async throws {
        try await TestDatabase.withClient { client in
            try await apply(document, client)
            var broken = document
            broken.subscriptions[0].team = "changed"
            broken.subscriptions.append(SubscriptionSpec(id: "team-d", product: "no-such-product"))  // foreign key violation
            await #expect(throws: (any Error).self) { try await apply(broken, client) }  // a foreign-key violation inside the transaction
            let stored = try await snapshot(client)
            #expect(stored.subscriptions["team-a"]?.team == "search")
            #expect(stored.subscriptions["team-d"] == nil)
        }
    }
}

/// A backend kind this version has no dialect for (a newer version wrote it during a rolling upgrade) fails the
/// catalog load, which the caller reports; it is never served as some other kind.
@Suite(.freshDatabasePerTest) struct CatalogUnknownBackendKindTests {
    @Test func anUnknownBackendKindFailsTheLoad() async throws {
        try await TestDatabase.withClient { client in
            try await apply(document, client)
            // The CHECK stands in the way of exactly this; a newer version's migration would have widened it.
            try await client.query("ALTER TABLE backends DROP CONSTRAINT backends_kind_check", logger: TestDatabase.logger)
            try await client.query("UPDATE backends SET kind = 'bedrock' WHERE name = 'openai'", logger: TestDatabase.logger)
            await #expect(throws: CatalogError.unknownBackendKind(backend: "openai", kind: "bedrock")) {
                try await CatalogStore(client: client).snapshot(logger: TestDatabase.logger)
            }
        }
    }
}
