import Foundation
import Logging
import PostgresNIO
import TollgateCore

/// The outbox side of webhooks: enqueueing inside a caller's transaction.
public enum WebhookOutbox {
    /// Stores `message` and queues it for every enabled endpoint subscribed to its type. Call it on the connection of the
    /// transaction that makes the change the message announces: both commit or neither does.
    /// - Returns: how many endpoints it was queued for.
    @discardableResult
    public static func enqueue(_ message: WebhookMessage, on connection: PostgresConnection, logger: Logger) async throws -> Int {
        try await connection.query(
            "INSERT INTO webhook_messages (id, event_type, body) VALUES (\(message.id), \(message.type.rawValue), \(message.body))",
            logger: logger)
        let rows = try await connection.query(
            """
            INSERT INTO webhook_outbox (message_id, endpoint_id)
            SELECT \(message.id), id FROM webhook_endpoints
            WHERE disabled_at IS NULL AND (cardinality(event_types) = 0 OR \(message.type.rawValue) = ANY (event_types))
            RETURNING endpoint_id
            """, logger: logger)
        return try await rows.collect().count
    }
}

/// A receiver of webhooks.
public struct WebhookEndpoint: Sendable, Hashable, Codable {
    public var id: UUID
    public var url: String
    public var description: String?
    /// Empty: every event type.
    public var eventTypes: [String]
    public var disabledAt: Date?
    public var disabledReason: String?

    enum CodingKeys: String, CodingKey {
        case id, url, description
        case eventTypes = "event_types"
        case disabledAt = "disabled_at"
        case disabledReason = "disabled_reason"
    }
}

/// One delivery attempt, as `tollgate webhooks deliveries` and `GET /admin/v1/webhooks/deliveries` show it.
public struct WebhookDelivery: Sendable, Hashable, Codable {
    public var id: Int
    public var messageID: String
    public var endpointID: UUID
    public var eventType: String
    public var attempt: Int
    public var attemptedAt: Date
    public var durationMilliseconds: Int
    public var httpStatus: Int?
    public var error: String?
    /// `delivered`, `retrying`, `failed`, `endpoint_disabled`.
    public var outcome: String

    enum CodingKeys: String, CodingKey {
        case id, attempt, error, outcome
        case messageID = "message_id"
        case endpointID = "endpoint_id"
        case eventType = "event_type"
        case attemptedAt = "attempted_at"
        case durationMilliseconds = "duration_ms"
        case httpStatus = "http_status"
    }
}

/// Endpoints, their secrets, and the delivery log.
public struct WebhookStore: Sendable {
    public let client: PostgresClient
    public init(client: PostgresClient) { self.client = client }

    /// Registers an endpoint with its first secret.
    /// - Parameter eventTypes: the types it receives; empty for all.
    @discardableResult
    public func createEndpoint(
        url: String, secret: WebhookSecret, eventTypes: [WebhookEventType] = [], description: String? = nil,
        logger: Logger
    ) async throws -> UUID {
        let id = UUIDv7.make()
        let types = eventTypes.map(\.rawValue)
        try await client.withTransaction(logger: logger) { tx in
            try await tx.query(
                "INSERT INTO webhook_endpoints (id, url, description, event_types) VALUES (\(id), \(url), \(description), \(types))",
                logger: logger)
            try await tx.query("INSERT INTO webhook_secrets (endpoint_id, secret) VALUES (\(id), \(secret.text.value))", logger: logger)
        }
        logger.info("Webhook endpoint created", metadata: ["webhook.endpoint_id": "\(id)"])
        return id
    }

    /// Rotation, step one: add a secret. Messages are signed with every live secret until the old one expires.
    public func addSecret(_ secret: WebhookSecret, to endpoint: UUID, logger: Logger) async throws {
        try await client.query("INSERT INTO webhook_secrets (endpoint_id, secret) VALUES (\(endpoint), \(secret.text.value))", logger: logger)
    }

    /// Rotation, step two: stop signing with `secret` at `at` (now by default).
    public func expireSecret(_ secret: WebhookSecret, of endpoint: UUID, at: Date = Date(), logger: Logger) async throws {
        try await client.query(
            "UPDATE webhook_secrets SET expires_at = \(at) WHERE endpoint_id = \(endpoint) AND secret = \(secret.text.value)", logger: logger)
    }

    /// Stops sending to an endpoint and cancels what was queued for it.
    public func disable(_ endpoint: UUID, reason: String, logger: Logger) async throws {
        try await client.withTransaction(logger: logger) { tx in
            try await Self.disable(endpoint, reason: reason, on: tx, logger: logger)
        }
    }

    static func disable(_ endpoint: UUID, reason: String, on connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query(
            "UPDATE webhook_endpoints SET disabled_at = now(), disabled_reason = \(reason) WHERE id = \(endpoint) AND disabled_at IS NULL",
            logger: logger)
        try await connection.query(
            "UPDATE webhook_outbox SET status = 'cancelled', last_error = \(reason) WHERE endpoint_id = \(endpoint) AND status = 'pending'",
            logger: logger)
    }

    public func endpoints(logger: Logger) async throws -> [WebhookEndpoint] {
        var result: [WebhookEndpoint] = []
        let rows = try await client.query(
            "SELECT id, url, description, event_types, disabled_at, disabled_reason FROM webhook_endpoints ORDER BY created_at, id", logger: logger)
        for try await (id, url, description, types, disabledAt, reason) in rows.decode((UUID, String, String?, [String], Date?, String?).self) {
            result.append(
                WebhookEndpoint(id: id, url: url, description: description, eventTypes: types, disabledAt: disabledAt, disabledReason: reason))
        }
        return result
    }

    /// The delivery log, newest first.
    /// - Parameters:
    ///   - endpoint: only this endpoint's attempts.
    ///   - message: only this message's attempts.
    public func deliveries(endpoint: UUID? = nil, message: String? = nil, limit: Int = 100, logger: Logger) async throws -> [WebhookDelivery] {
        var result: [WebhookDelivery] = []
        let rows = try await client.query(
            """
            SELECT id, message_id, endpoint_id, event_type, attempt, attempted_at, duration_ms, http_status, error, outcome
            FROM webhook_deliveries
            WHERE (\(endpoint)::uuid IS NULL OR endpoint_id = \(endpoint)) AND (\(message)::text IS NULL OR message_id = \(message))
            ORDER BY attempted_at DESC, id DESC LIMIT \(limit)
            """, logger: logger)
        for try await (id, messageID, endpointID, type, attempt, at, duration, status, error, outcome) in rows.decode(
            (Int, String, UUID, String, Int, Date, Int, Int?, String?, String).self)
        {
            result.append(
                WebhookDelivery(
                    id: id, messageID: messageID, endpointID: endpointID, eventType: type, attempt: attempt, attemptedAt: at,
                    durationMilliseconds: duration, httpStatus: status, error: error, outcome: outcome))
        }
        return result
    }
}
