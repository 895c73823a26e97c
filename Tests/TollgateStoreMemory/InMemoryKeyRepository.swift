import Foundation
import Logging
import Synchronization
import TollgateCore
import TollgateStore

/// `KeyRepository` in memory: one live key per subscription and slot, revocation by id or unique prefix. Keys it
/// creates are also added to `catalog`, as the database's keys table is what the catalog reads.
public final class InMemoryKeyRepository: KeyRepository {
    private struct Stored {
        var info: SubscriptionKeyInfo
        var hash: [UInt8]
    }
    private let keys = Mutex<[Stored]>([])
    private let catalog: InMemoryCatalogRepository
    private let now: @Sendable () -> Date

    public init(catalog: InMemoryCatalogRepository, now: @escaping @Sendable () -> Date = { Date() }) {
        self.catalog = catalog
        self.now = now
    }

    public func create(for subscription: SubscriptionID, slot: KeySlot, logger: Logger) async throws -> (key: String, info: SubscriptionKeyInfo) {
        guard try await catalog.snapshot(logger: logger).subscriptions[subscription] != nil else {
            throw KeyStoreError.unknownSubscription(subscription)
        }
        let key = KeyStore.generateKey()
        let info = SubscriptionKeyInfo(
            id: UUIDv7.make(), subscription: subscription, slot: slot.rawValue, prefix: KeyStore.prefix(of: key), createdAt: now(), revokedAt: nil)
        let hash = KeyStore.hash(key)
        try keys.withLock { keys in
            if keys.contains(where: { $0.info.subscription == subscription && $0.info.slot == slot.rawValue && $0.info.revokedAt == nil }) {
                throw KeyStoreError.slotTaken(subscription, slot)
            }
            keys.append(Stored(info: info, hash: hash))
        }
        catalog.addKey(.init(id: info.id, subscription: subscription, slot: slot.rawValue, hash: hash))
        return (key, info)
    }

    public func list(subscription: SubscriptionID?, includeRevoked: Bool, logger: Logger) async throws -> [SubscriptionKeyInfo] {
        keys.withLock { keys in
            keys.map(\.info)
                .filter { (subscription == nil || $0.subscription == subscription) && (includeRevoked || $0.revokedAt == nil) }
                .sorted { ($0.subscription, $0.slot, $0.createdAt) < ($1.subscription, $1.slot, $1.createdAt) }
        }
    }

    public func revoke(_ idOrPrefix: String, logger: Logger) async throws -> SubscriptionKeyInfo {
        let id = UUID(uuidString: idOrPrefix)
        let revoked = try keys.withLock { keys -> SubscriptionKeyInfo in
            let matches = keys.indices.filter { index in
                let info = keys[index].info
                return info.revokedAt == nil && (id.map { info.id == $0 } ?? (info.prefix == idOrPrefix))
            }
            guard matches.count == 1, let index = matches.first else { throw KeyStoreError.unknownKey(idOrPrefix) }
            keys[index].info.revokedAt = now()
            return keys[index].info
        }
        catalog.removeKey(id: revoked.id)
        return revoked
    }
}
