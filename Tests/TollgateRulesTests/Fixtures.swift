import AsyncHTTPClient
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import PostgresNIO
import Synchronization
import Testing
import TollgateCore
import TollgateRules
import TollgateTestSupport

@testable import TollgateStore

func utc(_ text: String) -> Date { Date(iso8601: text)! }

/// A clock tests move by hand.
final class TestClock: Sendable {
    private let instant: Mutex<Date>
    init(_ start: Date) { instant = Mutex(start) }
    var now: Date { instant.withLock { $0 } }
    func set(_ date: Date) { instant.withLock { $0 = date } }
    var closure: @Sendable () -> Date { { self.now } }
}

enum Fixtures {
    static let logger = TestDatabase.logger

    /// Subscriptions straight into the catalog: (id, team, product).
    static func subscriptions(_ rows: [(String, String?, String?)], client: PostgresClient) async throws {
        for product in Set(rows.compactMap(\.2)) {
            try await client.query("INSERT INTO products (name) VALUES (\(product)) ON CONFLICT DO NOTHING", logger: logger)
        }
        for (id, team, product) in rows {
            try await client.query(
                "INSERT INTO subscriptions (id, team, product, cost_center) VALUES (\(id), \(team), \(product), 'cc-1')", logger: logger)
        }
    }

    /// One metered request of `tokens` total tokens at `at`, landed through the real usage writer (which NOTIFYs).
    static func usage(_ subscription: String, tokens: Int, at: Date, team: String? = nil, product: String? = nil, client: PostgresClient) async throws
    {
        let event = UsageEvent(
            requestID: UUIDv7.make(at: at), startedAt: at, endedAt: at, subscription: SubscriptionID(subscription), product: product, team: team,
            costCenter: "cc-1", backend: "mock", model: "gpt-4o-mini", route: "chat.completions", httpStatus: 200, streamed: false,
            usage: TokenUsage(promptTokens: tokens, completionTokens: 0), usageSource: .reported)
        let inserted = try await UsageStore(client: client).insert([event], logger: logger)
        #expect(inserted == 1)
    }

    static func state(of subscription: String, client: PostgresClient) async throws -> (state: String, actor: String, reason: String?) {
        let rows = try await client.query("SELECT state, state_actor, state_reason FROM subscriptions WHERE id = \(subscription)", logger: logger)
        let row = try #require(try await rows.collect().first)
        let (state, actor, reason) = try row.decode((String, String, String?).self)
        return (state, actor, reason)
    }

    /// Event types queued in the outbox, sorted (ids order messages by millisecond only).
    static func messageTypes(client: PostgresClient) async throws -> [String] {
        var types: [String] = []
        for try await type in try await client.query("SELECT event_type FROM webhook_messages ORDER BY id", logger: logger).decode(String.self) {
            types.append(type)
        }
        return types.sorted()
    }

    /// Audit rows as "event subscription actor", oldest first.
    static func audit(client: PostgresClient) async throws -> [String] {
        var lines: [String] = []
        for try await (event, subscription, actor) in try await client.query(
            "SELECT event, subscription_id, actor FROM reporting.budget_events ORDER BY event_id", logger: logger
        ).decode((String, String?, String).self) {
            lines.append([event, subscription ?? "-", actor].joined(separator: " "))
        }
        return lines
    }

    /// Tollgate's own catalog as the management adapter, on `client`.
    static func suspender(_ client: PostgresClient) -> TollgateSuspender {
        TollgateSuspender(subscriptions: PostgresSubscriptionStateRepository(client: client))
    }

    static func control(_ client: PostgresClient, suspender: (any SubscriptionSuspender)? = nil) -> SubscriptionControl {
        SubscriptionControl(
            budgets: PostgresBudgetRepository(client: client), subscriptions: PostgresSubscriptionStateRepository(client: client),
            suspender: suspender ?? Self.suspender(client))
    }

    /// An evaluator on the PostgreSQL repositories of `client`, leading through a lock session on `location`.
    static func evaluator(
        _ client: PostgresClient, location: DatabaseLocation, configuration: BudgetEvaluatorConfiguration = .init(),
        now: @escaping @Sendable () -> Date = { Date() }
    ) -> BudgetEvaluator {
        BudgetEvaluator(
            budgets: PostgresBudgetRepository(client: client), subscriptions: PostgresSubscriptionStateRepository(client: client),
            leadership: PostgresLeaderElection(connection: location.connectionConfiguration(), logger: logger), suspender: suspender(client),
            configuration: configuration, now: now, logger: logger)
    }

    /// A dispatcher on the PostgreSQL outbox of `client`, woken by LISTEN on `location`.
    static func dispatcher(
        _ client: PostgresClient, location: DatabaseLocation, http: HTTPClient, configuration: WebhookDispatcherConfiguration
    ) -> WebhookDispatcher {
        WebhookDispatcher(
            webhooks: PostgresWebhookRepository(client: client), notifications: PostgresChangeNotifications(location: location, logger: logger),
            http: http, configuration: configuration, logger: logger)
    }

    static func httpClient() -> HTTPClient {
        HTTPClient(
            eventLoopGroupProvider: .singleton,
            configuration: .init(redirectConfiguration: .disallow, timeout: .init(connect: .seconds(2), read: .seconds(5))))
    }

    /// Runs `router` on 127.0.0.1 with an ephemeral port for the duration of `body`.
    static func withLiveServer<T: Sendable>(_ router: Router<BasicRequestContext>, _ body: @escaping @Sendable (Int) async throws -> T) async throws
        -> T
    {
        var quiet = Logger(label: "tollgate.tests.fake-server")
        quiet.logLevel = .critical
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)), logger: quiet)
        return try await app.test(.live) { client in
            let port = try #require(client.port)
            return try await body(port)
        }
    }

    /// Runs a service until `body` returns, then cancels it.
    static func running<T: Sendable>(_ run: @escaping @Sendable () async throws -> Void, _ body: () async throws -> T) async throws -> T {
        let task = Task { try await run() }
        defer { task.cancel() }
        let value = try await body()
        task.cancel()
        _ = await task.result
        return value
    }

    /// Polls `condition` every 5 ms until it holds or `timeout` passes.
    /// The deadline is generous and the polling unhurried: on CI's two cores every suite runs at once, so what takes
    /// milliseconds alone can take seconds there, and a tight poll (a query every few milliseconds) adds to the load.
    static func eventually(timeout: Duration = .seconds(30), _ condition: () async throws -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if try await condition() { return true }
            try await Task.sleep(for: .milliseconds(25))
        }
        return try await condition()
    }

    static let hardBudget = BudgetDefinition(
        name: "team-a-monthly", scope: .subscription("team-a"), limit: 1000,
        thresholds: [.init(percent: 50, action: .alert), .init(percent: 80, action: .alert), .init(percent: 100, action: .suspend)], forecast: false)
}
