import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
import Synchronization
import TollgateCore
import TollgateStore

/// Each instance's in-memory copy of routes, subscriptions and keys. Requests read it without touching PostgreSQL,
/// so the gateway keeps serving known keys while the database is down.
public final class GatewayCatalog: Sendable {
    private let state = Mutex(CatalogSnapshot())
    private let refreshing = Mutex<Task<Void, Never>?>(nil)
    let store: CatalogStore
    let logger: Logger
    /// How soon after the last load an unknown key may trigger another (bounds the database load bad keys can cause).
    let missRefreshInterval: Duration

    public init(store: CatalogStore, logger: Logger, missRefreshInterval: Duration = .seconds(1)) {
        self.store = store
        self.logger = logger
        self.missRefreshInterval = missRefreshInterval
    }

    public var snapshot: CatalogSnapshot { state.withLock { $0 } }

    public var isLoaded: Bool { state.withLock { $0.loadedAt != .distantPast } }

    /// Reloads from PostgreSQL. Concurrent callers share a load, but only one that started after they called: a load
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

/// Keeps the catalog current: a LISTEN on `tollgate_catalog` (every change to keys, subscriptions and backends
/// notifies it) and a periodic reload as the safety net.
public struct CatalogRefresher: Service {
    let catalog: GatewayCatalog
    let database: DatabaseLocation
    let interval: Duration
    let logger: Logger

    public init(catalog: GatewayCatalog, database: DatabaseLocation, interval: Duration = .seconds(30), logger: Logger) {
        self.catalog = catalog
        self.database = database
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
            group.addTask { await listen() }
            try? await gracefulShutdown()
            group.cancelAll()
        }
    }

    private func listen() async {
        var attempt = 0
        while !Task.isCancelled {
            do {
                let connection = try await PostgresConnection.connect(
                    configuration: database.connectionConfiguration(), id: 1, logger: logger)
                defer { Task { try? await connection.close() } }
                let notifications = try await connection.listen(NotificationChannel.catalog.name)
                attempt = 0
                await catalog.refresh()  // whatever changed while we were not listening
                for try await _ in notifications { await catalog.refresh() }
            } catch {
                if Task.isCancelled { return }
                attempt += 1
                logger.debug("Catalog listener reconnecting", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .milliseconds(min(5_000, 200 * attempt)))
            }
        }
    }
}
