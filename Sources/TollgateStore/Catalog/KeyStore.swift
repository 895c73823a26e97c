import Crypto
import Foundation
import Logging
import PostgresNIO
import TollgateCore

/// A subscription key as shown to an operator: never the key itself, only its prefix.
public struct SubscriptionKeyInfo: Sendable, Hashable, Codable {
    public var id: UUID
    public var subscription: SubscriptionID
    public var slot: String
    public var prefix: String
    public var createdAt: Date
    public var revokedAt: Date?

    enum CodingKeys: String, CodingKey {
        case id, subscription, slot, prefix
        case createdAt = "created_at"
        case revokedAt = "revoked_at"
    }

    public init(id: UUID, subscription: SubscriptionID, slot: String, prefix: String, createdAt: Date, revokedAt: Date? = nil) {
        self.id = id
        self.subscription = subscription
        self.slot = slot
        self.prefix = prefix
        self.createdAt = createdAt
        self.revokedAt = revokedAt
    }
}

public enum KeySlot: String, Sendable, CaseIterable, Codable { case primary, secondary }

public enum KeyStoreError: Error, Hashable, CustomStringConvertible, Sendable {
    case unknownSubscription(SubscriptionID)
    case slotTaken(SubscriptionID, KeySlot)
    case unknownKey(String)

    public var description: String {
        switch self {
        case .unknownSubscription(let id): "no subscription '\(id)'; create it in tollgate.yaml and run `tollgate apply` first"
        case .slotTaken(let id, let slot):
            "subscription '\(id)' already has a live \(slot.rawValue) key; revoke it first or use the other slot (--slot \(slot == .primary ? "secondary" : "primary"))"
        case .unknownKey(let key): "no live key matches '\(key)'"
        }
    }
}

/// Subscription keys: generated here, shown once, stored as SHA-256 plus a short visible prefix.
public struct KeyStore: Sendable {
    public let client: PostgresClient
    public init(client: PostgresClient) { self.client = client }

    /// `tgk_` then 40 base62 characters (about 238 random bits).
    public static func generateKey() -> String {
        let alphabet = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
        var generator = SystemRandomNumberGenerator()
        return "tgk_" + String((0..<40).map { _ in alphabet[Int(generator.next(upperBound: UInt64(alphabet.count)))] })
    }

    public static func hash(_ key: String) -> [UInt8] { Array(SHA256.hash(data: Data(key.utf8))) }

    /// The part of a key that is safe to show: `tgk_` and the first 8 characters.
    public static func prefix(of key: String) -> String { String(key.prefix(12)) }

    /// Creates a key in `slot` and returns it. This is the only time the key exists outside the caller's hands.
    public func create(for subscription: SubscriptionID, slot: KeySlot, logger: Logger) async throws -> (key: String, info: SubscriptionKeyInfo) {
        let key = Self.generateKey()
        let id = UUIDv7.make()
        let hash = ByteBuffer(bytes: Self.hash(key))
        let prefix = Self.prefix(of: key)
        do {
            let rows = try await client.query("""
                INSERT INTO subscription_keys (id, subscription_id, slot, prefix, key_hash)
                SELECT \(id), id, \(slot.rawValue), \(prefix), \(hash) FROM subscriptions WHERE id = \(subscription.rawValue)
                RETURNING created_at
                """, logger: logger)
            guard let createdAt = try await rows.collect().first?.decode(Date.self) else { throw KeyStoreError.unknownSubscription(subscription) }
            return (key, SubscriptionKeyInfo(id: id, subscription: subscription, slot: slot.rawValue, prefix: prefix, createdAt: createdAt, revokedAt: nil))
        } catch let error as PSQLError where error.serverInfo?[.sqlState] == "23505" {
            throw KeyStoreError.slotTaken(subscription, slot)
        }
    }

    public func list(subscription: SubscriptionID?, includeRevoked: Bool, logger: Logger) async throws -> [SubscriptionKeyInfo] {
        let rows = try await client.query("""
            SELECT id, subscription_id, slot, prefix, created_at, revoked_at FROM subscription_keys
            WHERE (\(subscription?.rawValue)::text IS NULL OR subscription_id = \(subscription?.rawValue))
              AND (\(includeRevoked) OR revoked_at IS NULL)
            ORDER BY subscription_id, slot, created_at
            """, logger: logger)
        var keys: [SubscriptionKeyInfo] = []
        for try await (id, sub, slot, prefix, created, revoked) in rows.decode((UUID, String, String, String, Date, Date?).self) {
            keys.append(.init(id: id, subscription: SubscriptionID(sub), slot: slot, prefix: prefix, createdAt: created, revokedAt: revoked))
        }
        return keys
    }

    /// Revokes a live key named by its id or its prefix (as `keys list` shows them).
    /// - Throws: `KeyStoreError.unknownKey` when nothing live matches, or when a prefix matches more than one key.
    public func revoke(_ idOrPrefix: String, logger: Logger) async throws -> SubscriptionKeyInfo {
        let id = UUID(uuidString: idOrPrefix)
        let rows = try await client.query("""
            UPDATE subscription_keys SET revoked_at = now()
            WHERE revoked_at IS NULL AND (id = \(id) OR (\(id)::uuid IS NULL AND prefix = \(idOrPrefix)))
              AND (SELECT count(*) FROM subscription_keys WHERE revoked_at IS NULL AND (id = \(id) OR (\(id)::uuid IS NULL AND prefix = \(idOrPrefix)))) = 1
            RETURNING id, subscription_id, slot, prefix, created_at, revoked_at
            """, logger: logger)
        for try await (id, sub, slot, prefix, created, revoked) in rows.decode((UUID, String, String, String, Date, Date?).self) {
            return .init(id: id, subscription: SubscriptionID(sub), slot: slot, prefix: prefix, createdAt: created, revokedAt: revoked)
        }
        throw KeyStoreError.unknownKey(idOrPrefix)
    }
}
