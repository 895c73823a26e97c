import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import PostgresNIO
import TollgateCore
import TollgateServer
import TollgateStore

/// A Tollgate built through `buildApplication`, exactly as `tollgate serve` builds it, on the suite's database.
public enum GatewayHarness {
    public static let adminToken = "test-admin-token-0123456789"
    /// The backend credential the fake upstream should receive; clients never see it.
    public static let upstreamSecret = "sk-upstream-secret-for-tests"

    /// A configuration for the current suite's database with a private spool directory.
    public static func configuration(spool: URL? = nil) async throws -> TollgateConfiguration {
        var configuration = TollgateConfiguration()
        configuration.database = try await TestDatabase.location()
        configuration.port = 0
        configuration.dataDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("tollgate-test-\(UUID().uuidString)")
        configuration.spoolDirectory = spool ?? configuration.dataDirectory.appendingPathComponent("spool")
        configuration.adminToken = Secret(adminToken)
        configuration.flushInterval = .milliseconds(20)
        configuration.credentials = ["UPSTREAM_KEY": upstreamSecret]
        configuration.databaseConnections = 4
        return configuration
    }

    /// A document with an `openai` backend and an `azure` backend, both pointing at `upstreamPort`, and subscriptions
    /// `sub-a` (team search) and `sub-b` (team support). The timeouts are generous: on a CI machine whose two cores
    /// run every suite at once, an event loop can be held up for seconds; tests of the timeouts pass their own.
    public static func document(upstreamPort: Int, readTimeoutSeconds: Int = 30, scheme: String = "http") -> PolicyDocument {
        PolicyDocument(
            backends: [
                BackendSpec(
                    name: "fake-openai", kind: .openai, baseURL: "\(scheme)://\(scheme == "https" ? "localhost" : "127.0.0.1"):\(upstreamPort)/v1", credentialEnv: "UPSTREAM_KEY",
                    deployments: ["gpt-4o-mini", "no-usage", "rate-limited", "server-error", "broken-stream", "slow", "slow-stream", "text-embedding-3-small"]
                        .map { DeploymentSpec(name: $0, model: $0) },
                    connectTimeoutSeconds: 30, readTimeoutSeconds: readTimeoutSeconds),
                BackendSpec(
                    name: "fake-azure", kind: .azure, baseURL: "http://127.0.0.1:\(upstreamPort)", credentialEnv: "UPSTREAM_KEY", apiVersion: "2024-10-21",
                    deployments: [DeploymentSpec(name: "gpt4o-prod", model: "gpt-4o")], connectTimeoutSeconds: 30, readTimeoutSeconds: 30),
                BackendSpec(name: "dead", kind: .openai, baseURL: "http://127.0.0.1:1/v1", credentialEnv: "UPSTREAM_KEY",
                            deployments: [DeploymentSpec(name: "unreachable-model", model: "gpt-4o")], connectTimeoutSeconds: 1),
                BackendSpec(name: "mock", kind: .mock, deployments: [DeploymentSpec(name: "mock-model", model: "mock-model")]),
            ],
            products: [ProductSpec(name: "standard")],
            subscriptions: [
                SubscriptionSpec(id: "sub-a", displayName: "A", team: "search", costCenter: "CC-1", product: "standard"),
                SubscriptionSpec(id: "sub-b", displayName: "B", team: "support", costCenter: "CC-2", product: "standard"),
            ])
    }

    /// Applies `document`, creates a primary key for each subscription, and returns the keys by subscription.
    public static func prepare(_ document: PolicyDocument) async throws -> [String: String] {
        try await TestDatabase.withClient { client in
            try await CatalogStore(client: client).apply(document, logger: TestDatabase.logger)
            var keys: [String: String] = [:]
            for subscription in document.subscriptions {
                keys[subscription.id.rawValue] = try await KeyStore(client: client).create(for: subscription.id, slot: .primary, logger: TestDatabase.logger).key
            }
            return keys
        }
    }

    /// Runs a live Tollgate (real sockets) for `body`.
    public static func withLiveGateway<T: Sendable>(
        configuration: TollgateConfiguration, _ body: @Sendable (_ client: any TestClientProtocol, _ runtime: TollgateRuntime) async throws -> T
    ) async throws -> T {
        let (app, runtime) = try await buildApplication(configuration: configuration, logger: TestDatabase.logger)
        return try await app.test(.live) { client in try await body(client, runtime) }
    }

    /// Usage rows of the suite's database, oldest first.
    public static func usageRows() async throws -> [UsageRow] {
        try await TestDatabase.withClient { client in
            let rows = try await client.query("""
                SELECT request_id, response_id, subscription_id, team, cost_center, product, backend, deployment, model, route, http_status, streamed,
                       prompt_tokens, completion_tokens, total_tokens, cached_tokens, reasoning_tokens, usage_source
                FROM usage_events ORDER BY started_at, request_id
                """, logger: TestDatabase.logger)
            var result: [UsageRow] = []
            for try await row in rows {
                let r = try row.decode((UUID, String?, String, String?, String?, String?, String, String?, String, String, Int, Bool, Int, Int, Int, Int, Int, String).self)
                result.append(UsageRow(
                    requestID: r.0, responseID: r.1, subscription: r.2, team: r.3, costCenter: r.4, product: r.5, backend: r.6, deployment: r.7,
                    model: r.8, route: r.9, httpStatus: r.10, streamed: r.11, promptTokens: r.12, completionTokens: r.13, totalTokens: r.14,
                    cachedTokens: r.15, reasoningTokens: r.16, usageSource: r.17))
            }
            return result
        }
    }
}

public struct UsageRow: Sendable, Equatable {
    public var requestID: UUID
    public var responseID: String?
    public var subscription: String
    public var team: String?
    public var costCenter: String?
    public var product: String?
    public var backend: String
    public var deployment: String?
    public var model: String
    public var route: String
    public var httpStatus: Int
    public var streamed: Bool
    public var promptTokens: Int
    public var completionTokens: Int
    public var totalTokens: Int
    public var cachedTokens: Int
    public var reasoningTokens: Int
    public var usageSource: String
}

extension HTTPFields {
    /// `Authorization: Bearer <key>` and a JSON content type.
    public static func bearer(_ key: String) -> HTTPFields {
        [.authorization: "Bearer \(key)", .contentType: "application/json"]
    }
}

extension ByteBuffer {
    public static func json(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }
}
