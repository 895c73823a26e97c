import Foundation
import Logging
import Synchronization
import TollgateCore
import TollgateStore

/// `CatalogSnapshotRepository` over a policy document and keys held in memory: what `CatalogStore` would load after
/// `apply(document)` and the keys' creation.
public final class InMemoryCatalogSnapshotRepository: CatalogSnapshotRepository {
    private struct State {
        var document: PolicyDocument
        var keys: [CatalogSnapshot.Key] = []
        var failure: (any Error)?
        var loads = 0
    }
    private let state: Mutex<State>

    public init(document: PolicyDocument = PolicyDocument()) {
        state = Mutex(State(document: document))
    }

    /// Replaces the document, as `tollgate apply` would.
    public func apply(_ document: PolicyDocument) { state.withLock { $0.document = document } }

    /// Makes a live key for `subscription` and returns its text (`tgk_…`), as `KeyStore.create` would.
    @discardableResult
    public func createKey(for subscription: SubscriptionID, slot: String = "primary") -> String {
        let key = KeyStore.generateKey()
        state.withLock { $0.keys.append(CatalogSnapshot.Key(subscription: subscription, slot: slot, hash: KeyStore.hash(key))) }
        return key
    }

    /// Revokes the key whose text is `key`, as `KeyStore.revoke` would.
    public func revokeKey(_ key: String) {
        let hash = KeyStore.hash(key)
        state.withLock { $0.keys.removeAll { $0.hash == hash } }
    }

    /// Makes every later load throw `error` (nil: succeed again), as a database that is down or holds a row this
    /// version cannot read would.
    public func failLoads(with error: (any Error)?) { state.withLock { $0.failure = error } }

    /// How many loads were asked for, failed ones included.
    public var loads: Int { state.withLock { $0.loads } }

    public func snapshot(logger: Logger) async throws -> CatalogSnapshot {
        let (document, keys, failure) = state.withLock { state in
            state.loads += 1
            return (state.document, state.keys, state.failure)
        }
        if let failure { throw failure }
        return CatalogSnapshot(document: document, keys: keys, loadedAt: Date())
    }
}
