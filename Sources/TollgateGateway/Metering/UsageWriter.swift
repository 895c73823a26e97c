import Foundation
import Logging
import Metrics
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization
import TollgateCore
import TollgateStore

struct UsageLoadTimeout: Error {}

/// Records usage durably at once (the spool) and loads it into PostgreSQL in batches: when `batchSize` rows are waiting,
/// or every `flushInterval`. A graceful shutdown loads everything still spooled; what cannot be loaded stays on disk and
/// is loaded by the next start.
public final class UsageWriter: Service, Sendable {
    let spool: UsageSpool
    let store: any UsageEventRepository
    let logger: Logger
    let flushInterval: Duration
    let batchSize: Int
    /// Largest amount of spooled COPY text loaded in one transaction.
    let maximumTransactionBytes: Int
    /// How long one load may take before it counts as failed (and is retried; replays are idempotent).
    let loadTimeout: Duration
    private let health = Mutex(WriterHealth())

    struct WriterHealth {
        var lastSuccess: Date?
        var lastFailure: Date?
        var failing = false
    }

    private let recorded = Counter(label: "tollgate_usage_events_recorded_total")
    private let loaded = Counter(label: "tollgate_usage_events_loaded_total")
    private let spoolErrors = Counter(label: "tollgate_usage_spool_errors_total")
    private let loadFailures = Counter(label: "tollgate_usage_load_failures_total")

    public init(spool: UsageSpool, store: any UsageEventRepository, logger: Logger, flushInterval: Duration = .milliseconds(250), batchSize: Int = 5_000,
                maximumTransactionBytes: Int = 16 << 20, loadTimeout: Duration = .seconds(30)) {
        self.loadTimeout = loadTimeout
        self.spool = spool
        self.store = store
        self.logger = logger
        self.flushInterval = flushInterval
        self.batchSize = batchSize
        self.maximumTransactionBytes = maximumTransactionBytes
    }

    /// Appends the event to the spool. Returns once it is on disk (in the page cache; sealed segments are fsynced).
    public func record(_ event: UsageEvent) {
        do {
            try spool.append(UsageStore.copyLine(for: event))
            recorded.increment()
        } catch {
            // Nothing else can keep it: log everything needed to rebuild the row by hand, except secrets (there are none in it).
            spoolErrors.increment()
            logger.critical("Usage could not be spooled", metadata: [
                "error": "\(error)", "usage.request_id": "\(event.requestID)", "subscription.id": "\(event.subscription)",
                "usage.prompt_tokens": "\(event.usage.promptTokens)", "usage.completion_tokens": "\(event.usage.completionTokens)",
                "usage.model": "\(event.model)",
            ])
            return
        }
    }

    /// Whether the last load into PostgreSQL succeeded (for /readyz).
    public var isLoading: Bool { !health.withLock { $0.failing } }

    public func run() async throws {
        var wait = flushInterval
        var lastFlush = ContinuousClock.now
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            // Short ticks, so a full batch is loaded without waiting for the interval.
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .milliseconds(20)) }
            guard ContinuousClock.now - lastFlush >= wait || spool.activeLines >= batchSize else { continue }
            wait = await flush() ? flushInterval : min(wait * 2, .seconds(5))
            lastFlush = .now
        }
        // The HTTP server has stopped taking requests by now (it shuts down first): load the rest.
        if await !flush() {
            logger.warning("Usage left in the spool at shutdown; it is loaded on the next start", metadata: ["spool.directory": "\(spool.directory.path)"])
        }
    }

    /// Runs file work that may block (fsync, reading a segment) on NIO's thread pool: tasks share the event loops'
    /// threads with the sockets (`tollgate serve` runs Swift concurrency on them), which must never wait on a disk.
    static func offEventLoop<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await NIOThreadPool.singleton.runIfActive(body)
    }

    /// Seals the active segment and loads every sealed one. Returns false if PostgreSQL refused.
    @discardableResult
    public func flush() async -> Bool {
        let segments: [URL]
        do {
            let spool = self.spool
            segments = try await Self.offEventLoop { try spool.seal() }
        } catch {
            spoolErrors.increment()
            logger.error("Usage spool could not be sealed", metadata: ["error": "\(error)"])
            return false
        }
        var index = 0
        while index < segments.count {
            // Group consecutive segments into one transaction, up to the byte budget.
            var chunk: [ByteBuffer] = []
            var files: [URL] = []
            var bytes = 0
            while index < segments.count && (files.isEmpty || bytes < maximumTransactionBytes) {
                let segment = segments[index]
                guard let data = try? await Self.offEventLoop({ try Data(contentsOf: segment) }) else { index += 1; continue }
                chunk.append(ByteBuffer(bytes: data))
                files.append(segments[index])
                bytes += data.count
                index += 1
            }
            guard !files.isEmpty else { continue }
            do {
                let (store, logger, chunkToLoad) = (self.store, self.logger, chunk)
                let inserted = try await withThrowingTaskGroup(of: Int.self) { group in
                    group.addTask { try await store.insert(copyText: chunkToLoad, logger: logger) }
                    group.addTask {
                        try await Task.sleep(for: self.loadTimeout)
                        throw UsageLoadTimeout()
                    }
                    defer { group.cancelAll() }
                    return try await group.next()!
                }
                loaded.increment(by: inserted)
                let loadedFiles = files
                try? await Self.offEventLoop { for file in loadedFiles { try? FileManager.default.removeItem(at: file) } }
                let recovered = health.withLock { state -> Bool in
                    defer { state.failing = false; state.lastSuccess = Date() }
                    return state.failing
                }
                if recovered { logger.info("Usage loading recovered", metadata: ["usage.segments": "\(files.count)"]) }
            } catch {
                loadFailures.increment()
                let first = health.withLock { state -> Bool in
                    defer { state.failing = true; state.lastFailure = Date() }
                    return !state.failing
                }
                // Warn once per outage, not on every retry.
                if first {
                    logger.warning("Usage could not be loaded into PostgreSQL; it stays spooled and is retried", metadata: [
                        "error": "\(String(reflecting: error))", "usage.segments_waiting": "\(segments.count - index + files.count)",
                    ])
                }
                return false
            }
        }
        return true
    }
}
