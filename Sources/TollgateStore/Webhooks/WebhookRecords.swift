import Foundation
import TollgateCore

/// A receiver of webhooks.
public struct WebhookEndpoint: Sendable, Hashable, Codable {
    public var id: UUID
    public var url: String
    public var description: String?
    /// Empty: every event type.
    public var eventTypes: [String]
    public var disabledAt: Date?
    public var disabledReason: String?

    public init(id: UUID, url: String, description: String?, eventTypes: [String], disabledAt: Date?, disabledReason: String?) {
        self.id = id
        self.url = url
        self.description = description
        self.eventTypes = eventTypes
        self.disabledAt = disabledAt
        self.disabledReason = disabledReason
    }

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

    public init(
        id: Int, messageID: String, endpointID: UUID, eventType: String, attempt: Int, attemptedAt: Date, durationMilliseconds: Int,
        httpStatus: Int?, error: String?, outcome: String
    ) {
        self.id = id
        self.messageID = messageID
        self.endpointID = endpointID
        self.eventType = eventType
        self.attempt = attempt
        self.attemptedAt = attemptedAt
        self.durationMilliseconds = durationMilliseconds
        self.httpStatus = httpStatus
        self.error = error
        self.outcome = outcome
    }

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

/// A message claimed from the outbox for one endpoint, leased to the dispatcher that claimed it.
public struct ClaimedWebhook: Sendable, Hashable {
    public var messageID: String
    public var endpointID: UUID
    /// This attempt's number, from 1.
    public var attempt: Int
    public var firstAttemptAt: Date
    public var eventType: String
    public var body: String
    public var url: String
    /// The endpoint's live signing secrets (`whsec_…`), oldest first.
    public var secrets: [String]

    public init(
        messageID: String, endpointID: UUID, attempt: Int, firstAttemptAt: Date, eventType: String, body: String, url: String, secrets: [String]
    ) {
        self.messageID = messageID
        self.endpointID = endpointID
        self.attempt = attempt
        self.firstAttemptAt = firstAttemptAt
        self.eventType = eventType
        self.body = body
        self.url = url
        self.secrets = secrets
    }
}

/// What became of one delivery attempt, and so of the message for that endpoint.
public enum WebhookAttemptOutcome: Sendable, Hashable {
    case delivered
    /// The receiver is gone (410): the endpoint is disabled and what is queued for it cancelled, with this reason.
    case endpointGone(reason: String)
    /// Try again after this long.
    case retry(after: Duration)
    /// Given up.
    case failed

    /// The delivery log's `outcome` text.
    public var logText: String {
        switch self {
        case .delivered: "delivered"
        case .endpointGone: "endpoint_disabled"
        case .retry: "retrying"
        case .failed: "failed"
        }
    }
}

/// One attempt to record: the delivery log row and the outbox row's new state, written together.
public struct WebhookAttempt: Sendable, Hashable {
    public var message: ClaimedWebhook
    public var attemptedAt: Date
    public var durationMilliseconds: Int
    public var httpStatus: Int?
    public var error: String?
    public var outcome: WebhookAttemptOutcome

    public init(
        message: ClaimedWebhook, attemptedAt: Date, durationMilliseconds: Int, httpStatus: Int?, error: String?, outcome: WebhookAttemptOutcome
    ) {
        self.message = message
        self.attemptedAt = attemptedAt
        self.durationMilliseconds = durationMilliseconds
        self.httpStatus = httpStatus
        self.error = error
        self.outcome = outcome
    }
}
