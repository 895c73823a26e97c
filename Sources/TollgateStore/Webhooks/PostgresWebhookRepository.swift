import Foundation
import Logging
import PostgresNIO
import TollgateCore

/// `WebhookRepository` on PostgreSQL: `webhook_endpoints`, `webhook_secrets`, `webhook_messages`, `webhook_outbox`
/// (claimed with `FOR UPDATE SKIP LOCKED`, so any number of dispatchers share it) and `webhook_deliveries`.
public struct PostgresWebhookRepository: WebhookRepository {
    let client: PostgresClient
    package init(client: PostgresClient) { self.client = client }

    public func createEndpoint(
        url: String, secret: Secret, eventTypes: [WebhookEventType], description: String?, logger: Logger
    ) async throws -> UUID {
        let id = UUIDv7.make()
        let types = eventTypes.map(\.rawValue)
        try await client.withTransaction(logger: logger) { tx in
            try await tx.query(
                "INSERT INTO webhook_endpoints (id, url, description, event_types) VALUES (\(id), \(url), \(description), \(types))",
                logger: logger)
            try await tx.query("INSERT INTO webhook_secrets (endpoint_id, secret) VALUES (\(id), \(secret.value))", logger: logger)
        }
        logger.info("Webhook endpoint created", metadata: ["webhook.endpoint_id": "\(id)"])
        return id
    }

    public func addSecret(_ secret: Secret, to endpoint: UUID, logger: Logger) async throws {
        try await client.query("INSERT INTO webhook_secrets (endpoint_id, secret) VALUES (\(endpoint), \(secret.value))", logger: logger)
    }

    public func expireSecret(_ secret: Secret, of endpoint: UUID, at: Date, logger: Logger) async throws {
        try await client.query(
            "UPDATE webhook_secrets SET expires_at = \(at) WHERE endpoint_id = \(endpoint) AND secret = \(secret.value)", logger: logger)
    }

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

    public func deliveries(endpoint: UUID?, message: String?, limit: Int, logger: Logger) async throws -> [WebhookDelivery] {
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

    @discardableResult
    public func enqueue(_ message: WebhookMessage, logger: Logger) async throws -> Int {
        try await client.withTransaction(logger: logger) { tx in try await Self.enqueue(message, on: tx, logger: logger) }
    }

    /// Enqueues on the connection of the caller's transaction: the message commits with the change it announces.
    static func enqueue(_ message: WebhookMessage, on connection: PostgresConnection, logger: Logger) async throws -> Int {
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

    public func claimDue(limit: Int, lease: Duration, logger: Logger) async throws -> [ClaimedWebhook] {
        let leaseMilliseconds = Int(lease.components.seconds * 1000)
        let rows = try await client.query(
            """
            UPDATE webhook_outbox o SET attempts = o.attempts + 1, last_attempt_at = now(),
                first_attempt_at = coalesce(o.first_attempt_at, now()), next_attempt_at = now() + \(leaseMilliseconds) * interval '1 millisecond'
            FROM (SELECT q.message_id, q.endpoint_id FROM webhook_outbox q JOIN webhook_endpoints e ON e.id = q.endpoint_id
                  WHERE q.status = 'pending' AND q.next_attempt_at <= now() AND e.disabled_at IS NULL
                  ORDER BY q.next_attempt_at LIMIT \(limit) FOR UPDATE OF q SKIP LOCKED) due,
                 webhook_messages m, webhook_endpoints e
            WHERE o.message_id = due.message_id AND o.endpoint_id = due.endpoint_id AND m.id = o.message_id AND e.id = o.endpoint_id
            RETURNING o.message_id, o.endpoint_id, o.attempts, o.first_attempt_at, m.event_type, m.body, e.url,
                coalesce((SELECT array_agg(s.secret ORDER BY s.id) FROM webhook_secrets s
                          WHERE s.endpoint_id = o.endpoint_id AND (s.expires_at IS NULL OR s.expires_at > now())), '{}')
            """, logger: logger)
        var claimed: [ClaimedWebhook] = []
        for try await (message, endpoint, attempt, first, type, body, url, secrets) in rows.decode(
            (String, UUID, Int, Date, String, String, String, [String]).self)
        {
            claimed.append(
                ClaimedWebhook(
                    messageID: message, endpointID: endpoint, attempt: attempt, firstAttemptAt: first, eventType: type, body: body, url: url,
                    secrets: secrets))
        }
        return claimed
    }

    public func record(_ attempt: WebhookAttempt, logger: Logger) async throws {
        let message = attempt.message
        let code = attempt.httpStatus
        try await client.withTransaction(logger: logger) { tx in
            switch attempt.outcome {
            case .delivered:
                try await tx.query(
                    """
                    UPDATE webhook_outbox SET status = 'delivered', delivered_at = now(), last_http_status = \(code), last_error = NULL
                    WHERE message_id = \(message.messageID) AND endpoint_id = \(message.endpointID)
                    """, logger: logger)
            case .endpointGone(let reason):
                try await Self.disable(message.endpointID, reason: reason, on: tx, logger: logger)
            case .retry(let delay):
                let delayMilliseconds = Int(delay.components.seconds * 1000 + delay.components.attoseconds / 1_000_000_000_000_000)
                try await tx.query(
                    """
                    UPDATE webhook_outbox SET next_attempt_at = now() + \(delayMilliseconds) * interval '1 millisecond',
                        last_http_status = \(code), last_error = \(attempt.error)
                    WHERE message_id = \(message.messageID) AND endpoint_id = \(message.endpointID)
                    """, logger: logger)
            case .failed:
                try await tx.query(
                    """
                    UPDATE webhook_outbox SET status = 'failed', last_http_status = \(code), last_error = \(attempt.error)
                    WHERE message_id = \(message.messageID) AND endpoint_id = \(message.endpointID)
                    """, logger: logger)
            }
            try await tx.query(
                """
                INSERT INTO webhook_deliveries (message_id, endpoint_id, event_type, attempt, attempted_at, duration_ms, http_status, error, outcome)
                VALUES (\(message.messageID), \(message.endpointID), \(message.eventType), \(message.attempt), \(attempt.attemptedAt),
                        \(attempt.durationMilliseconds), \(code), \(attempt.error), \(attempt.outcome.logText))
                """, logger: logger)
        }
    }
}

extension PostgresDatabase {
    /// Webhook endpoints, the outbox and the delivery log.
    public var webhooks: PostgresWebhookRepository { PostgresWebhookRepository(client: client) }
}
