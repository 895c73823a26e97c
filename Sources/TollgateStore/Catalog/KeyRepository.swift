import Foundation
import Logging
import TollgateCore

/// Subscription keys: created (shown once), listed, revoked. `KeyStore` is the PostgreSQL implementation.
public protocol KeyRepository: Sendable {
    /// Creates a key in `slot` and returns it; the only time the key exists outside the caller's hands.
    /// - Throws: `KeyStoreError.unknownSubscription`, `.slotTaken`.
    func create(for subscription: SubscriptionID, slot: KeySlot, logger: Logger) async throws -> (key: String, info: SubscriptionKeyInfo)
    /// Keys ordered by subscription, slot and creation time.
    func list(subscription: SubscriptionID?, includeRevoked: Bool, logger: Logger) async throws -> [SubscriptionKeyInfo]
    /// Revokes the one live key with this id or prefix.
    /// - Throws: `KeyStoreError.unknownKey` when none, or more than one, matches.
    func revoke(_ idOrPrefix: String, logger: Logger) async throws -> SubscriptionKeyInfo
}

extension KeyStore: KeyRepository {}
