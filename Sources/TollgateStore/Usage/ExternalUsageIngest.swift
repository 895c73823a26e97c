import Crypto
import Foundation
import Logging
import PostgresNIO
import TollgateCore

/// Why one event of a batch was not accepted.
public struct IngestRejection: Hashable, Sendable, Codable {
    /// 0-based position in the batch (the JSON array index, or the NDJSON line number minus one).
    public var index: Int
    /// The event's `id` when it had a readable one.
    public var id: String?
    public var reasons: [String]

    public init(index: Int, id: String?, reasons: [String]) {
        self.index = index
        self.id = id
        self.reasons = reasons
    }
}

/// The answer to `POST /admin/v1/usage-events`.
public struct IngestResult: Hashable, Sendable, Codable {
    /// Events in the batch.
    public var received: Int
    /// Events that passed validation.
    public var accepted: Int
    /// Accepted events that were new.
    public var inserted: Int
    /// Accepted events already stored (a replayed batch): counted once, never twice.
    public var duplicates: Int
    public var rejected: Int
    public var rejections: [IngestRejection]

    public init(received: Int, accepted: Int, inserted: Int, duplicates: Int, rejected: Int, rejections: [IngestRejection]) {
        self.received = received
        self.accepted = accepted
        self.inserted = inserted
        self.duplicates = duplicates
        self.rejected = rejected
        self.rejections = rejections
    }
}

/// A batch-level problem: nothing in the body was looked at event by event.
public enum IngestError: Error, Hashable, Sendable, CustomStringConvertible {
    case emptyBody
    case notJSON(String)
    case tooManyEvents(count: Int, maximum: Int)
    case invalidSource(String)

    public var description: String {
        switch self {
        case .emptyBody: "the body holds no usage events"
        case .notJSON(let detail): "the body is neither a JSON array of events nor NDJSON (one event object per line): \(detail)"
        case .tooManyEvents(let count, let maximum): "the batch holds \(count) events; send at most \(maximum) per request"
        case .invalidSource(let source): "source '\(source)' must be a slug naming the sending gateway"
        }
    }
}

/// What the ingest needs to know about a subscription: that it exists, and the attributes events snapshot.
public struct IngestSubscription: Hashable, Sendable {
    public var team: String?
    public var costCenter: String?
    public var product: String?
    public init(team: String? = nil, costCenter: String? = nil, product: String? = nil) {
        self.team = team
        self.costCenter = costCenter
        self.product = product
    }
}

/// Usage events sent by other gateways (an APIM policy, a LiteLLM callback) to `POST /admin/v1/usage-events`.
///
/// The body is a JSON array of event objects, or NDJSON (one object per line). An event:
///
///     {"id": "0192…", "subscription": "team-search-prod", "model": "gpt-4o", "timestamp": "2026-10-03T12:00:01Z",
///      "prompt_tokens": 1200, "completion_tokens": 300, "cached_tokens": 1000, "reasoning_tokens": 0,
///      "backend": "apim-westeurope", "deployment": "gpt-4o-prod"}
///
/// Required: `id` (the idempotency key: any non-empty string unique per sending gateway, such as a CloudEvents `id`;
/// see `requestID(forEventID:source:)`), `subscription` (or `subscription_id`), `model`, `timestamp`
/// (or `started_at`, RFC 3339), `prompt_tokens`, `completion_tokens`. Optional: `ended_at`, `total_tokens` (must equal
/// prompt + completion), `cached_tokens`, `reasoning_tokens`, `backend` (default: the sending gateway's name),
/// `deployment`, `route`, `http_status`, `streamed`, `response_id`, `usage_source`. Other fields are ignored.
public enum ExternalUsageIngest {
    public static let maximumBatchSize = 10_000
    /// No single request uses ten million tokens of one kind; a count above it is a bug or an attack, not usage.
    public static let maximumTokensPerEvent: Int64 = 10_000_000
    /// Gateways buffer for minutes, not days into the future.
    public static let maximumClockSkew: TimeInterval = 300
    /// Older events are refused: nobody re-bills usage from more than a year ago.
    public static let maximumAge: TimeInterval = 366 * 86_400

    public struct Validated: Sendable {
        public var received: Int
        public var accepted: [UsageEvent]
        public var rejections: [IngestRejection]
    }

    /// Parses and validates a batch without touching the database.
    /// - Parameters:
    ///   - contentType: `application/x-ndjson` (or `application/jsonl`) for NDJSON; anything else is sniffed: a body
    ///     starting with `[` is a JSON array, otherwise NDJSON.
    ///   - source: the sending gateway's name, stored as the events' `source`.
    ///   - subscriptions: the subscriptions that exist, with the attributes to snapshot on each event.
    ///   - now: for rejecting timestamps in the future or too far in the past.
    public static func validate(
        body: Data, contentType: String?, source: String, subscriptions: [SubscriptionID: IngestSubscription], now: Date
    ) throws(IngestError) -> Validated {
        guard SubscriptionID.isValid(source) else { throw .invalidSource(source) }
        let objects = try split(body: body, contentType: contentType)
        guard !objects.isEmpty else { throw .emptyBody }
        guard objects.count <= maximumBatchSize else { throw .tooManyEvents(count: objects.count, maximum: maximumBatchSize) }
        var accepted: [UsageEvent] = []
        var rejections: [IngestRejection] = []
        for (index, object) in objects.enumerated() {
            switch object {
            case .failure(let reason):
                rejections.append(IngestRejection(index: index, id: nil, reasons: [reason.reason]))
            case .success(let fields):
                switch event(from: fields, source: source, subscriptions: subscriptions, now: now) {
                case .success(let event): accepted.append(event)
                case .failure(let rejection):
                    rejections.append(IngestRejection(index: index, id: rejection.id, reasons: rejection.reasons))
                }
            }
        }
        return Validated(received: objects.count, accepted: accepted, rejections: rejections)
    }

    private static func split(body: Data, contentType: String?) throws(IngestError) -> [Result<[String: JSONValue], Failure>] {
        let mediaType = contentType?.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        let firstByte = body.first(where: { ![0x20, 0x09, 0x0a, 0x0d].contains($0) })
        let isNDJSON =
            ["application/x-ndjson", "application/jsonl", "application/jsonlines", "application/x-jsonlines"].contains(mediaType ?? "")
            || firstByte != UInt8(ascii: "[")
        let decoder = JSONDecoder()
        if !isNDJSON {
            let values: [JSONValue]
            do { values = try decoder.decode([JSONValue].self, from: body) } catch { throw .notJSON("the JSON array does not parse") }
            return values.map { value in
                if case .object(let fields) = value { return .success(fields) }
                return .failure(Failure("an event must be a JSON object"))
            }
        }
        var objects: [Result<[String: JSONValue], Failure>] = []
        for (number, line) in body.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.drop(while: { [0x20, 0x09, 0x0d].contains($0) })
            if trimmed.allSatisfy({ [0x20, 0x09, 0x0d].contains($0) }) { continue }
            if let value = try? decoder.decode(JSONValue.self, from: Data(trimmed)), case .object(let fields) = value {
                objects.append(.success(fields))
            } else {
                objects.append(.failure(Failure("line \(number + 1) is not a JSON object")))
            }
        }
        return objects
    }

    struct Failure: Error {
        var reason: String
        init(_ reason: String) { self.reason = reason }
    }

    struct Rejection: Error {
        var id: String?
        var reasons: [String]
    }

    private static func event(
        from fields: [String: JSONValue], source: String, subscriptions: [SubscriptionID: IngestSubscription], now: Date
    ) -> Result<UsageEvent, Rejection> {
        var reasons: [String] = []
        func string(_ names: String..., required: Bool) -> String? {
            for name in names {
                switch fields[name] {
                case .string(let value)?:
                    if value.isEmpty, required { reasons.append("\(name) must not be empty") }
                    return value.isEmpty ? nil : value
                case .null?, nil: continue
                default:
                    reasons.append("\(name) must be a string")
                    return nil
                }
            }
            if required { reasons.append("\(names[0]) is required") }
            return nil
        }
        func tokens(_ name: String, required: Bool) -> Int64? {
            switch fields[name] {
            case .integer(let value)?:
                if value < 0 {
                    reasons.append("\(name) must not be negative")
                } else if value > maximumTokensPerEvent {
                    reasons.append("\(name) \(value) is absurd for one request (at most \(maximumTokensPerEvent))")
                } else {
                    return value
                }
                return nil
            case .null?, nil:
                if required { reasons.append("\(name) is required") }
                return required ? nil : 0
            default:
                reasons.append("\(name) must be a whole number")
                return nil
            }
        }
        func timestamp(_ names: String..., required: Bool) -> Date? {
            guard let text = string(names[0], names.count > 1 ? names[1] : names[0], required: required) else { return nil }
            guard let date = Date(iso8601: text) else {
                reasons.append("\(names[0]) '\(text)' is not an RFC 3339 timestamp such as 2026-10-03T12:00:01Z")
                return nil
            }
            if date > now.addingTimeInterval(maximumClockSkew) { reasons.append("\(names[0]) \(text) is in the future") }
            if date < now.addingTimeInterval(-maximumAge) { reasons.append("\(names[0]) \(text) is more than a year old") }
            return date
        }

        let idText = string("id", required: true)
        let id = idText.map { requestID(forEventID: $0, source: source) }
        let subscriptionText = string("subscription", "subscription_id", required: true)
        var attributes: IngestSubscription?
        if let subscriptionText {
            attributes = subscriptions[SubscriptionID(subscriptionText)]
            if attributes == nil { reasons.append("unknown subscription '\(subscriptionText)'") }
        }
        let model = string("model", required: true)
        let started = timestamp("timestamp", "started_at", required: true)
        let ended = timestamp("ended_at", required: false)
        if let started, let ended, ended < started { reasons.append("ended_at is before the timestamp") }
        let prompt = tokens("prompt_tokens", required: true)
        let completion = tokens("completion_tokens", required: true)
        let cached = tokens("cached_tokens", required: false)
        let reasoning = tokens("reasoning_tokens", required: false)
        let total = tokens("total_tokens", required: false)
        if let prompt, let cached, cached > prompt { reasons.append("cached_tokens must not exceed prompt_tokens") }
        if let completion, let reasoning, reasoning > completion { reasons.append("reasoning_tokens must not exceed completion_tokens") }
        if let prompt, let completion, let total, fields["total_tokens"] != nil, fields["total_tokens"] != .null, total != prompt + completion {
            reasons.append("total_tokens must equal prompt_tokens + completion_tokens")
        }
        let backend = string("backend", required: false) ?? source
        let deployment = string("deployment", required: false)
        let route = string("route", required: false) ?? "chat.completions"
        let responseID = string("response_id", required: false)
        var usageSource = UsageSource.reported
        if let text = string("usage_source", required: false) {
            if let value = UsageSource(rawValue: text) {
                usageSource = value
            } else {
                reasons.append("usage_source must be reported, estimated or missing")
            }
        }
        var httpStatus = 200
        switch fields["http_status"] {
        case .integer(let value)? where (100...599).contains(value): httpStatus = Int(value)
        case nil, .null?: break
        default: reasons.append("http_status must be an HTTP status code")
        }
        var streamed = false
        switch fields["streamed"] {
        case .bool(let value)?: streamed = value
        case nil, .null?: break
        default: reasons.append("streamed must be true or false")
        }
        guard reasons.isEmpty, let id, let subscriptionText, let attributes, let model, let started, let prompt, let completion,
            let cached, let reasoning
        else {
            return .failure(Rejection(id: idText, reasons: reasons))
        }
        return .success(
            UsageEvent(
                requestID: id, responseID: responseID, startedAt: started, endedAt: ended ?? started, subscription: SubscriptionID(subscriptionText),
                product: attributes.product, team: attributes.team, costCenter: attributes.costCenter, backend: backend, deployment: deployment,
                model: model, route: route, httpStatus: httpStatus, streamed: streamed,
                usage: TokenUsage(
                    promptTokens: Int(prompt), completionTokens: Int(completion), cachedPromptTokens: Int(cached), reasoningTokens: Int(reasoning)),
                usageSource: usageSource, source: source))
    }

    /// The namespace of the UUIDv5 request ids of events whose `id` is not a UUID (a constant: changing it would let
    /// every replayed event land twice).
    public static let eventIDNamespace = UUID(uuid: (0x8C, 0x1F, 0x5B, 0x3E, 0x27, 0xA4, 0x4D, 0x6B, 0x9E, 0x02, 0x71, 0xC8, 0x4A, 0xD5, 0x3F, 0x90))

    /// The ledger's request id for an event `id` sent by gateway `source`, the same on every call, so a replayed event
    /// meets its stored row and lands once:
    /// - an `id` that is a UUID (any version, any case) is the request id itself, as it always was;
    /// - any other string is hashed to a name-based UUID, version 5 (RFC 9562 §5.5: SHA-1, 122 bits kept) in
    ///   `eventIDNamespace` over the UTF-8 bytes of `source`, `:` and `id`. Event ids are unique per sender (CloudEvents:
    ///   `id` is unique per `source`), so the sender is part of the name; `source` is a slug and holds no `:`, so two
    ///   (source, id) pairs never give one name. A sender can compute the id itself to look its events up.
    public static func requestID(forEventID id: String, source: String) -> UUID {
        if let uuid = UUID(uuidString: id) { return uuid }
        return nameBasedUUID(namespace: eventIDNamespace, name: "\(source):\(id)")
    }

    /// RFC 9562 §5.5, UUID version 5: SHA-1 of the namespace's 16 bytes and the name's UTF-8 bytes, version and variant set.
    static func nameBasedUUID(namespace: UUID, name: String) -> UUID {
        var hash = Insecure.SHA1()
        withUnsafeBytes(of: namespace.uuid) { hash.update(bufferPointer: $0) }
        hash.update(data: Data(name.utf8))
        var bytes = Array(hash.finalize().prefix(16))
        bytes[6] = (bytes[6] & 0x0F) | 0x50  // version 5
        bytes[8] = (bytes[8] & 0x3F) | 0x80  // the RFC 9562 variant
        return UUID(uuid: (bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
                           bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]))
    }

    /// Validates a batch and writes the accepted events through `UsageStore`, idempotently on their ids.
    public static func ingest(
        body: Data, contentType: String?, source: String, now: Date, client: PostgresClient, logger: Logger
    ) async throws -> IngestResult {
        var subscriptions: [SubscriptionID: IngestSubscription] = [:]
        for try await (id, team, costCenter, product) in try await client.query(
            "SELECT id, team, cost_center, product FROM subscriptions", logger: logger
        ).decode((String, String?, String?, String?).self) {
            subscriptions[SubscriptionID(id)] = IngestSubscription(team: team, costCenter: costCenter, product: product)
        }
        let validated = try validate(body: body, contentType: contentType, source: source, subscriptions: subscriptions, now: now)
        let inserted = try await UsageStore(client: client).insert(validated.accepted, logger: logger)
        logger.info(
            "External usage ingested",
            metadata: [
                "ingest.source": "\(source)", "ingest.received": "\(validated.received)", "ingest.inserted": "\(inserted)",
                "ingest.rejected": "\(validated.rejections.count)",
            ])
        return IngestResult(
            received: validated.received, accepted: validated.accepted.count, inserted: inserted, duplicates: validated.accepted.count - inserted,
            rejected: validated.rejections.count, rejections: validated.rejections)
    }
}

/// Just enough JSON to validate events field by field: integers stay exact, and `1.5` tokens is told apart from `1`.
enum JSONValue: Hashable, Sendable, Decodable {
    case null
    case bool(Bool)
    case integer(Int64)
    case number(String)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .integer(value)
        } else if let value = try? container.decode(Decimal.self) {
            self = .number(value.description)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }
}
