import AsyncHTTPClient
import Foundation
import Testing
import TollgateCore
import TollgateRules
import TollgateStore
import TollgateTestSupport

private let environment = ProcessInfo.processInfo.environment

/// Delivers one message of every event type, produced by the real evaluator and manual control, to an external
/// receiver: `Tests/e2e/verify_webhook.py serve`, which answers 204 only when `standardwebhooks` verifies the signature.
/// Runs when TOLLGATE_E2E_WEBHOOK_URL and TOLLGATE_E2E_WEBHOOK_SECRET are set (the end-to-end run sets them).
@Suite(
    .freshDatabase, .timeLimit(.minutes(1)),
    .enabled(if: environment["TOLLGATE_E2E_WEBHOOK_URL"] != nil && environment["TOLLGATE_E2E_WEBHOOK_SECRET"] != nil))
struct WebhookE2ETests {
    @Test func everyEventTypeVerifiesWithAnIndependentImplementation() async throws {
        let url = try #require(environment["TOLLGATE_E2E_WEBHOOK_URL"])
        let secret = try WebhookSecret(try #require(environment["TOLLGATE_E2E_WEBHOOK_SECRET"]))
        let http = Fixtures.httpClient()
        try await TestDatabase.withClient { client in
            try await Fixtures.subscriptions([("team-a", "search", nil)], client: client)
            var budget = Fixtures.hardBudget
            budget.forecast = true
            try await PostgresBudgetRepository(client: client).upsert(budget, source: "config", logger: Fixtures.logger)
            let endpoint = try await PostgresWebhookRepository(client: client).createEndpoint(url: url, secret: secret, logger: Fixtures.logger)
            let clock = TestClock(utc("2026-11-16T00:00:00Z"))
            let engine = Fixtures.evaluator(client, location: try await TestDatabase.location(), now: clock.closure)
            try await Fixtures.usage("team-a", tokens: 600, at: utc("2026-11-15T10:00:00Z"), client: client)
            try await engine.evaluateNow()  // 50 % crossed, forecast 1200 > 1000
            try await Fixtures.usage("team-a", tokens: 400, at: utc("2026-11-15T11:00:00Z"), client: client)
            try await engine.evaluateNow()  // 80 %, 100 %: exceeded, suspended
            clock.set(utc("2026-12-01T00:00:00Z"))
            try await engine.evaluateNow()  // rollover: reactivated
            let dispatcher = Fixtures.dispatcher(
                client, location: try await TestDatabase.location(), http: http,
                configuration: .init(targets: .init(allowLoopback: true, allowPrivateNetworks: true)))
            #expect(try await dispatcher.deliverDue() == 7)
            let log = try await PostgresWebhookRepository(client: client).deliveries(endpoint: endpoint, logger: Fixtures.logger)
            #expect(log.map(\.outcome) == Array(repeating: "delivered", count: 7))
            #expect(Set(log.map(\.eventType)) == Set(WebhookEventType.allCases.map(\.rawValue)))
        }
        try await http.shutdown()
    }
}
