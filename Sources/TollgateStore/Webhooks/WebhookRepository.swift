import Foundation
import Logging
import TollgateCore

/// Webhook endpoints and their secrets, the outbox, and the delivery log.
///
/// Messages that announce a change are enqueued inside the change's transaction (`RulesTransaction.enqueue`); `enqueue`
/// here is for a message on its own.
public protocol WebhookRepository: Sendable {
    /// Registers an endpoint with its first secret (`whsec_…`).
    /// - Parameter eventTypes: the types it receives; empty for all.
    func createEndpoint(url: String, secret: Secret, eventTypes: [WebhookEventType], description: String?, logger: Logger) async throws -> UUID
    /// Rotation, step one: add a secret. Messages are signed with every live secret until the old one expires.
    func addSecret(_ secret: Secret, to endpoint: UUID, logger: Logger) async throws
    /// Rotation, step two: stop signing with `secret` at `at`.
    func expireSecret(_ secret: Secret, of endpoint: UUID, at: Date, logger: Logger) async throws
    /// Stops sending to an endpoint and cancels what was queued for it.
    func disable(_ endpoint: UUID, reason: String, logger: Logger) async throws
    /// Every endpoint, oldest first.
    func endpoints(logger: Logger) async throws -> [WebhookEndpoint]
    /// The delivery log, newest first, optionally of one endpoint or one message.
    func deliveries(endpoint: UUID?, message: String?, limit: Int, logger: Logger) async throws -> [WebhookDelivery]
    /// Stores `message` and queues it for every enabled endpoint subscribed to its type, in a transaction of its own.
    /// - Returns: how many endpoints it was queued for.
    @discardableResult
    func enqueue(_ message: WebhookMessage, logger: Logger) async throws -> Int
    /// Claims up to `limit` due messages of enabled endpoints, counting the attempt and leasing each for `lease`, so no
    /// other dispatcher claims it meanwhile (a dispatcher that dies mid-send leaves it to be retried after the lease).
    func claimDue(limit: Int, lease: Duration, logger: Logger) async throws -> [ClaimedWebhook]
    /// Records an attempt: the delivery log row and the outbox row's new state, in one transaction.
    func record(_ attempt: WebhookAttempt, logger: Logger) async throws
}

extension WebhookRepository {
    /// The delivery log, newest first, of every message.
    /// - Parameter endpoint: only this endpoint's attempts.
    public func deliveries(endpoint: UUID? = nil, limit: Int = 100, logger: Logger) async throws -> [WebhookDelivery] {
        try await deliveries(endpoint: endpoint, message: nil, limit: limit, logger: logger)
    }
}
