// Webhook events as the rules engine emits them and the outbox stores them: the types receivers subscribe to, and the
// exact body bytes that are signed and sent. Signing (HMAC) lives in TollgateRules; these are plain values.
import Foundation

/// The event types Tollgate sends. docs/webhooks.md documents each payload.
public enum WebhookEventType: String, Hashable, Sendable, Codable, CaseIterable {
    case thresholdCrossed = "budget.threshold_crossed"
    case exceeded = "budget.exceeded"
    case forecastExceeded = "budget.forecast_exceeded"
    case suspended = "subscription.suspended"
    case reactivated = "subscription.reactivated"
}

/// The Standard Webhooks envelope: `{"type", "timestamp", "data"}`.
public struct WebhookEnvelope<Payload: Encodable & Sendable>: Encodable, Sendable {
    public var type: String
    /// RFC 3339, UTC, when the event happened.
    public var timestamp: String
    public var data: Payload
}

/// A message ready for the outbox: its type and the exact body bytes that will be signed and sent.
public struct WebhookMessage: Sendable, Hashable {
    public var id: String
    public var type: WebhookEventType
    public var body: String

    public init<Payload: Encodable & Sendable>(type: WebhookEventType, occurredAt: Date, data: Payload, id: String? = nil) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let envelope = WebhookEnvelope(type: type.rawValue, timestamp: occurredAt.iso8601, data: data)
        self.id = id ?? Self.newID(at: occurredAt)
        self.type = type
        self.body = String(decoding: try encoder.encode(envelope), as: UTF8.self)
    }

    /// A stored message as it was enqueued (the outbox hands messages back this way).
    public init(id: String, type: WebhookEventType, body: String) {
        self.id = id
        self.type = type
        self.body = body
    }

    /// A new message id, `msg_` + 32 hex digits of a UUIDv7 (time-ordered, so ids sort by creation).
    public static func newID(at date: Date = Date()) -> String {
        "msg_" + UUIDv7.make(at: date).uuidString.replacingOccurrences(of: "-", with: "").lowercased()
    }
}
