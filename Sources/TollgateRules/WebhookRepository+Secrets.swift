import Foundation
import Logging
import TollgateCore
import TollgateStore

extension WebhookRepository {
    /// Registers an endpoint with its first signing secret.
    /// - Parameter eventTypes: the types it receives; empty for all.
    @discardableResult
    public func createEndpoint(
        url: String, secret: WebhookSecret, eventTypes: [WebhookEventType] = [], description: String? = nil, logger: Logger
    ) async throws -> UUID {
        try await createEndpoint(url: url, secret: secret.text, eventTypes: eventTypes, description: description, logger: logger)
    }

    /// Rotation, step one: add a secret. Messages are signed with every live secret until the old one expires.
    public func addSecret(_ secret: WebhookSecret, to endpoint: UUID, logger: Logger) async throws {
        try await addSecret(secret.text, to: endpoint, logger: logger)
    }

    /// Rotation, step two: stop signing with `secret` at `at` (now by default).
    public func expireSecret(_ secret: WebhookSecret, of endpoint: UUID, at: Date = Date(), logger: Logger) async throws {
        try await expireSecret(secret.text, of: endpoint, at: at, logger: logger)
    }
}
