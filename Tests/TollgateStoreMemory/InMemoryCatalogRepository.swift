import Foundation
import Logging
import Synchronization
import TollgateCore
import TollgateStore

/// `CatalogRepository` in memory, applying a document by the same rules as `CatalogStore.apply`: backends replaced,
/// products and subscriptions upserted (never deleted), a subscription's state taken from the file only while the file
/// owns it.
public final class InMemoryCatalogRepository: CatalogRepository {
    private let state: Mutex<CatalogSnapshot>

    public init(_ snapshot: CatalogSnapshot = CatalogSnapshot()) { state = Mutex(snapshot) }

    public func snapshot(logger: Logger) async throws -> CatalogSnapshot {
        state.withLock {
            $0.loadedAt = Date()
            return $0
        }
    }

    public func plan(_ document: PolicyDocument, logger: Logger) async throws -> [String] {
        CatalogPlan.changes(from: try await snapshot(logger: logger), to: document)
    }

    public func apply(_ document: PolicyDocument, logger: Logger) async throws {
        state.withLock { catalog in
            catalog.backends = [:]
            for backend in document.backends { catalog.backends[backend.name] = backend }
            catalog.routes = CatalogSnapshot.pools(of: document.backends)
            for product in document.products { catalog.products[product.name] = product }
            for spec in document.subscriptions {
                let existing = catalog.subscriptions[spec.id]
                let fileOwnsState = existing.map { $0.stateActor == "config" } ?? true
                catalog.subscriptions[spec.id] = .init(
                    id: spec.id, displayName: spec.displayName, team: spec.team, costCenter: spec.costCenter, product: spec.product,
                    state: fileOwnsState ? spec.state : existing!.state, stateReason: fileOwnsState ? nil : existing?.stateReason,
                    stateActor: existing?.stateActor ?? "config", allowedModels: spec.allowedModels)
            }
        }
    }

    /// Adds or replaces a live key (what `InMemoryKeyRepository.create` does for the gateway's view).
    public func addKey(_ key: CatalogSnapshot.Key) {
        state.withLock { $0.keys[key.hash] = key }
    }

    /// Removes a key from the live set.
    public func removeKey(id: UUID) {
        state.withLock { catalog in catalog.keys = catalog.keys.filter { $0.value.id != id } }
    }
}
