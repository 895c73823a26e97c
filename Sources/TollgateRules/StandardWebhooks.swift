import Crypto
import Foundation
import TollgateCore

/// A Standard Webhooks signing secret: `whsec_` followed by the base64 of the key bytes.
public struct WebhookSecret: Sendable, Hashable, CustomStringConvertible {
    /// The full `whsec_…` text, as stored and as handed to receivers.
    public let text: Secret
    let key: SymmetricKey

    public init(_ text: String) throws(WebhookSecretError) {
        guard text.hasPrefix("whsec_"), let bytes = Data(base64Encoded: String(text.dropFirst("whsec_".count))), bytes.count >= 16 else {
            throw .malformed
        }
        self.text = Secret(text)
        self.key = SymmetricKey(data: bytes)
    }

    /// A new random secret of 32 bytes.
    public static func generate() -> WebhookSecret {
        let key = SymmetricKey(size: .bits256)
        let encoded = key.withUnsafeBytes { Data($0).base64EncodedString() }
        // Cannot fail: the text is built in the accepted shape.
        return try! WebhookSecret("whsec_" + encoded)
    }

    public var description: String { "whsec_<redacted>" }
    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.text == rhs.text }
    public func hash(into hasher: inout Hasher) { hasher.combine(text) }
}

public enum WebhookSecretError: Error, Hashable, Sendable, CustomStringConvertible {
    case malformed
    public var description: String { "a webhook secret is 'whsec_' followed by the base64 of at least 16 bytes" }
}

/// Signing per the Standard Webhooks specification (https://www.standardwebhooks.com).
public enum StandardWebhooks {
    /// `v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")).
    public static func signature(id: String, timestamp: Int, body: [UInt8], secret: WebhookSecret) -> String {
        var content = Array("\(id).\(timestamp).".utf8)
        content.append(contentsOf: body)
        let mac = HMAC<SHA256>.authenticationCode(for: content, using: secret.key)
        return "v1," + Data(mac).base64EncodedString()
    }

    /// The three headers of one delivery attempt. With several live secrets (rotation) the signature header carries one
    /// signature per secret, separated by spaces; a receiver accepts the message when any of them verifies.
    public static func headers(id: String, timestamp: Int, body: [UInt8], secrets: [WebhookSecret]) -> [(name: String, value: String)] {
        [
            ("webhook-id", id),
            ("webhook-timestamp", String(timestamp)),
            ("webhook-signature", secrets.map { signature(id: id, timestamp: timestamp, body: body, secret: $0) }.joined(separator: " ")),
        ]
    }

    /// Verifies a delivery the way a receiver does: some `v1` signature matches and the timestamp is within `tolerance`.
    public static func verify(
        id: String, timestamp: Int, signatureHeader: String, body: [UInt8], secret: WebhookSecret, now: Date,
        tolerance: TimeInterval = 300
    ) -> Bool {
        guard abs(now.timeIntervalSince1970 - TimeInterval(timestamp)) <= tolerance else { return false }
        let expected = Array(signature(id: id, timestamp: timestamp, body: body, secret: secret).utf8)
        return signatureHeader.split(separator: " ").contains { candidate in
            let bytes = Array(candidate.utf8)
            // Constant time over equal lengths.
            return bytes.count == expected.count && zip(bytes, expected).reduce(0) { $0 | ($1.0 ^ $1.1) } == 0
        }
    }

    /// A new message id, `msg_` + 32 hex digits of a UUIDv7 (time-ordered, so ids sort by creation).
    public static func newMessageID(at date: Date = Date()) -> String { WebhookMessage.newID(at: date) }
}
