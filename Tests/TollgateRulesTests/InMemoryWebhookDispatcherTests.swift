import AsyncHTTPClient
import Foundation
import Testing
import TollgateCore
import TollgateRules
import TollgateStore
import TollgateStoreMemory

private let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

private func message(_ type: WebhookEventType = .suspended) throws -> WebhookMessage {
    try WebhookMessage(
        type: type, occurredAt: utc("2026-11-25T10:00:00Z"),
        data: SubscriptionStatePayload(
            subscription: "team-a", budget: nil, state: "suspended", reason: "r", actor: "admin:a", adapter: "tollgate", resetsAt: nil))
}

/// The dispatcher on the in-memory outbox, against a local receiver: signing, retry and 410 handling without PostgreSQL.
@Suite struct InMemoryWebhookDispatcherTests {
    func dispatcher(_ store: InMemoryRulesStore, http: HTTPClient, notifications: InMemoryChangeNotifications = .init()) -> WebhookDispatcher {
        WebhookDispatcher(
            webhooks: store.webhooks, notifications: notifications, http: http,
            configuration: .init(
                targets: .init(allowLoopback: true), retry: RetrySchedule(initial: .zero, factor: 2, maximum: .zero, giveUpAfter: .seconds(60)),
                requestTimeout: .seconds(5), pollInterval: .seconds(60)),
            logger: Fixtures.logger)
    }

    @Test func aMessageIsSignedDeliveredAndLoggedOnce() async throws {
        let receiver = Receiver()
        let http = Fixtures.httpClient()
        let store = InMemoryRulesStore()
        try await Fixtures.withLiveServer(receiver.router()) { port async throws in
            let endpoint = try await store.webhooks.createEndpoint(
                url: "http://127.0.0.1:\(port)/hook", secret: try WebhookSecret(secret), logger: Fixtures.logger)
            let sent = try message()
            #expect(try await store.webhooks.enqueue(sent, logger: Fixtures.logger) == 1)
            #expect(try await dispatcher(store, http: http).deliverDue() == 1)
            let delivery = try #require(await receiver.deliveries.first)
            #expect(delivery.id == sent.id)
            #expect(delivery.body == sent.body)
            let verified = StandardWebhooks.verify(
                id: delivery.id, timestamp: try #require(Int(delivery.timestamp)), signatureHeader: delivery.signature,
                body: Array(delivery.body.utf8), secret: try WebhookSecret(secret), now: Date())
            #expect(verified)
            #expect(try await store.webhooks.deliveries(endpoint: endpoint, logger: Fixtures.logger).map(\.outcome) == ["delivered"])
            #expect(try await dispatcher(store, http: http).deliverDue() == 0)
        }
        try await http.shutdown()
    }

    @Test func aFailedAttemptIsRetriedAndAGoneReceiverDisablesTheEndpoint() async throws {
        let receiver = Receiver()
        await receiver.answer([503, 204, 410])
        let http = Fixtures.httpClient()
        let store = InMemoryRulesStore()
        try await Fixtures.withLiveServer(receiver.router()) { port async throws in
            let endpoint = try await store.webhooks.createEndpoint(
                url: "http://127.0.0.1:\(port)/hook", secret: try WebhookSecret(secret), logger: Fixtures.logger)
            try await store.webhooks.enqueue(try message(), logger: Fixtures.logger)
            let service = dispatcher(store, http: http)
            #expect(try await service.deliverDue() == 1)  // 503: retried at once (zero backoff)
            #expect(try await service.deliverDue() == 1)  // 204
            #expect(try await store.webhooks.deliveries(endpoint: endpoint, logger: Fixtures.logger).map(\.outcome) == ["delivered", "retrying"])
            try await store.webhooks.enqueue(try message(.reactivated), logger: Fixtures.logger)
            #expect(try await service.deliverDue() == 1)  // 410
            let disabled = try #require(try await store.webhooks.endpoints(logger: Fixtures.logger).first)
            #expect(disabled.disabledReason == "receiver answered 410 Gone")
            #expect(try await store.webhooks.enqueue(try message(), logger: Fixtures.logger) == 0)
        }
        try await http.shutdown()
    }

    @Test func aNotificationWakesTheRunningDispatcher() async throws {
        let receiver = Receiver()
        let http = Fixtures.httpClient()
        let store = InMemoryRulesStore()
        let notifications = InMemoryChangeNotifications()
        try await Fixtures.withLiveServer(receiver.router()) { port async throws in
            try await store.webhooks.createEndpoint(url: "http://127.0.0.1:\(port)/hook", secret: try WebhookSecret(secret), logger: Fixtures.logger)
            let service = dispatcher(store, http: http, notifications: notifications)
            try await Fixtures.running({ try await service.run() }) { () async throws in
                #expect(try await Fixtures.eventually { notifications.watcherCount(.webhooks) == 1 })
                try await Task.sleep(for: .milliseconds(50))  // the first pass found nothing
                try await store.webhooks.enqueue(try message(), logger: Fixtures.logger)
                // The poll interval is a minute: only the notification can make this prompt.
                notifications.post(.webhooks)
                #expect(try await Fixtures.eventually(timeout: .seconds(20)) { await receiver.deliveries.count == 1 })
            }
        }
        try await http.shutdown()
    }
}
