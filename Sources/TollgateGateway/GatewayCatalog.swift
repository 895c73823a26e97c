import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import TollgateCore
import TollgateStore

/// Each instance's in-memory copy of routes, subscriptions and keys. Requests read it without touching the database,
/// so the gateway keeps serving known keys while the database is down.
public final class GatewayCatalog: Sendable {
    private let state = Mutex(CatalogSnapshot())
    private let refreshing = Mutex<Task<Void, Never>?>(nil)
    let store: any CatalogSnapshotRepository
    let logger: Logger
    /// How soon after the last load an unknown key may trigger another (bounds the database load bad keys can cause).
    let missRefreshInterval: Duration

    public init(store: any CatalogSnapshotRepository, logger: Logger, missRefreshInterval: Duration = .seconds(1)) {
        self.store = store
        self.logger = logger
        self.missRefreshInterval = missRefreshInterval
    }

    public var snapshot: CatalogSnapshot { state.withLock { $0 } }

    public var isLoaded: Bool { state.withLock { $0.loadedAt != .distantPast } }

    /// Reloads from the repository. Concurrent callers share a load, but only one that started after they called: a load
    /// already running may have read the database before the caller's change committed.
    public func refresh() async {
        let previous = refreshing.withLock { $0 }
        await previous?.value
        let task = refreshing.withLock { current -> Task<Void, Never> in
            if let current, current != previous { return current }
            let task = Task { await self.load() }
            current = task
            return task
        }
        await task.value
        refreshing.withLock { current in
            if current == task { current = nil }
        }
    }

    private func load() async {
        do {
            let snapshot = try await store.snapshot(logger: logger)
            state.withLock { $0 = snapshot }
            logger.debug("Catalog loaded", metadata: ["catalog.keys": "\(snapshot.keys.count)", "catalog.subscriptions": "\(snapshot.subscriptions.count)"])
        } catch {
            logger.warning("Catalog reload failed; serving the last one loaded", metadata: ["error": "\(String(reflecting: error))"])
        }
    }

    /// Replaces the catalog directly (tests, and the embedded single-instance path).
    public func replace(with snapshot: CatalogSnapshot) { state.withLock { $0 = snapshot } }

    enum KeyLookup {
        case found(CatalogSnapshot.Key, CatalogSnapshot)
        case unknown
        /// Unknown, but the catalog is older than `missRefreshInterval`: a reload may know it.
        case reloadFirst
    }

    /// Looks a key up by its SHA-256 in the loaded catalog, without waiting for anything.
    func lookUp(keyHash hash: [UInt8]) -> KeyLookup {
        let current = snapshot
        if let key = current.keys[hash], constantTimeEqual(key.hash, hash) { return .found(key, current) }
        let age = Date().timeIntervalSince(current.loadedAt) * 1000
        return age > Double(missRefreshInterval.components.seconds * 1000) ? .reloadFirst : .unknown
    }
}

/// Keeps the catalog current: a watch on `NotificationChannel.catalog` (every change to keys, subscriptions and backends
/// notifies it) and a periodic reload as the safety net, since a notification can be lost while the listener reconnects.
public struct CatalogRefresher: Service {
    let catalog: GatewayCatalog
    let notifications: any ChangeNotifications
    let interval: Duration
    let logger: Logger

    public init(catalog: GatewayCatalog, notifications: any ChangeNotifications, interval: Duration = .seconds(30), logger: Logger) {
        self.catalog = catalog
        self.notifications = notifications
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        await withDiscardingTaskGroup { group in
            group.addTask {
                while !Task.isCancelled && !Task.isShuttingDownGracefully {
                    try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
                    await catalog.refresh()
                }
            }
            // `watch` also reloads each time listening (re)starts: whatever changed while nobody listened.
            group.addTask { await notifications.watch(.catalog) { await catalog.refresh() } }
            try? await gracefulShutdown()
            group.cancelAll()
        }
    }
}
