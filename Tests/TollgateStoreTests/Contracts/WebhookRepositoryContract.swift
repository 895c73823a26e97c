import Foundation
import Testing
import TollgateCore
import TollgateStore
import TollgateTestSupport

/// What every `WebhookRepository` promises, run on the in-memory and the PostgreSQL implementation.
enum WebhookRepositoryContract {
    static let logger = TestDatabase.logger
    static let secret = Secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")

    static func message(_ id: String, _ type: WebhookEventType) -> WebhookMessage {
        WebhookMessage(id: id, type: type, body: #"{"type":"\#(type.rawValue)"}"#)
    }

    static func messagesAreQueuedForSubscribedEndpointsAndClaimedOnce(_ fixture: some RulesContractFixture) async throws {
        let webhooks = fixture.rules.webhooks
        let all = try await webhooks.createEndpoint(
            url: "https://all.example/hook", secret: secret, eventTypes: [], description: "all", logger: logger)
        let exceededOnly = try await webhooks.createEndpoint(
            url: "https://exceeded.example/hook", secret: secret, eventTypes: [.exceeded], description: nil, logger: logger)
        #expect(try await webhooks.endpoints(logger: logger).map(\.id) == [all, exceededOnly])
        #expect(try await webhooks.enqueue(message("msg_one", .suspended), logger: logger) == 1)
        #expect(try await webhooks.enqueue(message("msg_two", .exceeded), logger: logger) == 2)
        // Messages enqueued in a rules transaction are queued the same way.
        let queued = try await fixture.rules.budgets.transaction(logger: logger) { tx in try await tx.enqueue(message("msg_three", .exceeded)) }
        #expect(queued == 2)

        let claimed = try await webhooks.claimDue(limit: 10, lease: .seconds(60), logger: logger)
        #expect(claimed.count == 5)
        let first = try #require(claimed.first { $0.messageID == "msg_one" })
        #expect(first.endpointID == all)
        #expect(first.attempt == 1)
        #expect(first.eventType == "subscription.suspended")
        #expect(first.body == #"{"type":"subscription.suspended"}"#)
        #expect(first.url == "https://all.example/hook")
        #expect(first.secrets == [secret.value])
        // Leased: nobody else gets them while the lease runs.
        #expect(try await webhooks.claimDue(limit: 10, lease: .seconds(60), logger: logger).isEmpty)
    }

    static func anAttemptIsLoggedAndDecidesWhatHappensNext(_ fixture: some RulesContractFixture) async throws {
        let webhooks = fixture.rules.webhooks
        let endpoint = try await webhooks.createEndpoint(
            url: "https://r.example/hook", secret: secret, eventTypes: [], description: nil, logger: logger)
        try await webhooks.enqueue(message("msg_retry", .suspended), logger: logger)
        try await webhooks.enqueue(message("msg_done", .reactivated), logger: logger)
        let claimed = try await webhooks.claimDue(limit: 10, lease: .seconds(60), logger: logger)
        let retried = try #require(claimed.first { $0.messageID == "msg_retry" })
        let done = try #require(claimed.first { $0.messageID == "msg_done" })
        let at = utcDate("2026-11-25T10:00:00Z")
        try await webhooks.record(
            WebhookAttempt(
                message: retried, attemptedAt: at, durationMilliseconds: 12, httpStatus: 503, error: "receiver answered 503",
                outcome: .retry(after: .zero)),
            logger: logger)
        try await webhooks.record(
            WebhookAttempt(message: done, attemptedAt: at, durationMilliseconds: 8, httpStatus: 204, error: nil, outcome: .delivered), logger: logger)
        // The retry is due at once; the delivered message is done.
        let again = try await webhooks.claimDue(limit: 10, lease: .seconds(60), logger: logger)
        #expect(again.map(\.messageID) == ["msg_retry"])
        #expect(again.first?.attempt == 2)
        try await webhooks.record(
            WebhookAttempt(
                message: try #require(again.first), attemptedAt: at.addingTimeInterval(1), durationMilliseconds: 5, httpStatus: nil,
                error: "refused", outcome: .failed),
            logger: logger)
        #expect(try await webhooks.claimDue(limit: 10, lease: .seconds(60), logger: logger).isEmpty)

        let log = try await webhooks.deliveries(endpoint: endpoint, logger: logger)  // newest first
        #expect(log.map(\.outcome) == ["failed", "delivered", "retrying"])  // same attempt time: the later record first
        #expect(log.first?.attempt == 2)
        #expect(log.first?.error == "refused")
        let retries = try await webhooks.deliveries(endpoint: nil, message: "msg_retry", limit: 10, logger: logger)
        #expect(retries.map(\.httpStatus) == [nil, 503])
        #expect(retries.map(\.durationMilliseconds) == [5, 12])
    }

    static func aGoneEndpointIsDisabledAndItsQueueCancelled(_ fixture: some RulesContractFixture) async throws {
        let webhooks = fixture.rules.webhooks
        let endpoint = try await webhooks.createEndpoint(
            url: "https://g.example/hook", secret: secret, eventTypes: [], description: nil, logger: logger)
        try await webhooks.enqueue(message("msg_first", .suspended), logger: logger)
        let claimed = try #require(try await webhooks.claimDue(limit: 1, lease: .seconds(60), logger: logger).first)
        try await webhooks.enqueue(message("msg_second", .suspended), logger: logger)
        try await webhooks.record(
            WebhookAttempt(
                message: claimed, attemptedAt: Date(), durationMilliseconds: 3, httpStatus: 410, error: nil,
                outcome: .endpointGone(reason: "receiver answered 410 Gone")),
            logger: logger)
        let disabled = try #require(try await webhooks.endpoints(logger: logger).first)
        #expect(disabled.disabledAt != nil)
        #expect(disabled.disabledReason == "receiver answered 410 Gone")
        #expect(try await webhooks.claimDue(limit: 10, lease: .seconds(60), logger: logger).isEmpty)
        #expect(try await webhooks.enqueue(message("msg_third", .suspended), logger: logger) == 0)
        #expect(try await webhooks.deliveries(endpoint: endpoint, logger: logger).map(\.outcome) == ["endpoint_disabled"])
    }

    static func onlyLiveSecretsAreHandedOut(_ fixture: some RulesContractFixture) async throws {
        let webhooks = fixture.rules.webhooks
        let next = Secret("whsec_c2Vjb25kLXNlY3JldC1mb3ItdGVzdHM=")
        let endpoint = try await webhooks.createEndpoint(
            url: "https://s.example/hook", secret: secret, eventTypes: [], description: nil, logger: logger)
        try await webhooks.addSecret(next, to: endpoint, logger: logger)
        try await webhooks.enqueue(message("msg_both", .suspended), logger: logger)
        #expect(try await webhooks.claimDue(limit: 10, lease: .seconds(60), logger: logger).first?.secrets == [secret.value, next.value])
        try await webhooks.expireSecret(secret, of: endpoint, at: Date().addingTimeInterval(-1), logger: logger)
        try await webhooks.enqueue(message("msg_new", .suspended), logger: logger)
        #expect(try await webhooks.claimDue(limit: 10, lease: .seconds(60), logger: logger).first?.secrets == [next.value])
    }
}

@Suite struct InMemoryWebhookRepositoryContractTests {
    @Test func messagesAreQueuedForSubscribedEndpointsAndClaimedOnce() async throws {
        try await WebhookRepositoryContract.messagesAreQueuedForSubscribedEndpointsAndClaimedOnce(MemoryRulesFixture())
    }
    @Test func anAttemptIsLoggedAndDecidesWhatHappensNext() async throws {
        try await WebhookRepositoryContract.anAttemptIsLoggedAndDecidesWhatHappensNext(MemoryRulesFixture())
    }
    @Test func aGoneEndpointIsDisabledAndItsQueueCancelled() async throws {
        try await WebhookRepositoryContract.aGoneEndpointIsDisabledAndItsQueueCancelled(MemoryRulesFixture())
    }
    @Test func onlyLiveSecretsAreHandedOut() async throws {
        try await WebhookRepositoryContract.onlyLiveSecretsAreHandedOut(MemoryRulesFixture())
    }
}

@Suite(.freshDatabasePerTest) struct PostgresWebhookRepositoryContractTests {
    @Test func messagesAreQueuedForSubscribedEndpointsAndClaimedOnce() async throws {
        try await PostgresRulesFixture.with { try await WebhookRepositoryContract.messagesAreQueuedForSubscribedEndpointsAndClaimedOnce($0) }
    }
    @Test func anAttemptIsLoggedAndDecidesWhatHappensNext() async throws {
        try await PostgresRulesFixture.with { try await WebhookRepositoryContract.anAttemptIsLoggedAndDecidesWhatHappensNext($0) }
    }
    @Test func aGoneEndpointIsDisabledAndItsQueueCancelled() async throws {
        try await PostgresRulesFixture.with { try await WebhookRepositoryContract.aGoneEndpointIsDisabledAndItsQueueCancelled($0) }
    }
    @Test func onlyLiveSecretsAreHandedOut() async throws {
        try await PostgresRulesFixture.with { try await WebhookRepositoryContract.onlyLiveSecretsAreHandedOut($0) }
    }
}
