import Foundation
import Logging
import ServiceLifecycle

/// Keeps the raw ledger's monthly partitions ahead of the clock, at start-up and every `interval`, so rows land in
/// their month's partition rather than the default one; and, when a retention is configured, drops the closed months
/// older than it. Per-run errors are logged and retried at the next run: a missing partition costs nothing but rows
/// in the default partition (moved out at the next run), so it never stops the service.
public struct UsagePartitionMaintainer: Service {
    /// Months made ahead of the current one: a quarter, so a maintainer that is down for weeks still leaves room.
    public static let defaultMonthsAhead = 3

    private let ledger: any UsageLedger
    private let monthsAhead: Int
    private let retentionMonths: Int?
    private let interval: Duration
    private let now: @Sendable () -> Date
    private let logger: Logger

    /// - Parameters:
    ///   - retentionMonths: closed raw months older than this many months before the current one are dropped; nil keeps all.
    ///   - interval: time between runs.
    public init(
        ledger: any UsageLedger, monthsAhead: Int = defaultMonthsAhead, retentionMonths: Int?, interval: Duration = .seconds(6 * 3600),
        now: @escaping @Sendable () -> Date = Date.init, logger: Logger
    ) {
        self.ledger = ledger
        self.monthsAhead = monthsAhead
        self.retentionMonths = retentionMonths
        self.interval = interval
        self.now = now
        self.logger = logger
    }

    /// One run: the partitions ahead, then retention if configured.
    public func maintain() async {
        do {
            _ = try await ledger.createPartitions(now: now(), monthsAhead: monthsAhead, logger: logger)
        } catch {
            logger.error("Usage partitions could not be created", metadata: ["error": "\(String(reflecting: error))"])
        }
        guard let retentionMonths else { return }
        do {
            _ = try await ledger.applyRetention(keepMonths: retentionMonths, now: now(), dryRun: false, logger: logger)
        } catch let refusal as RetentionError {
            logger.warning("Usage retention waits for months to close", metadata: ["usage.retention": "\(refusal)"])
        } catch {
            logger.error("Usage retention failed", metadata: ["error": "\(String(reflecting: error))"])
        }
    }

    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            await maintain()
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
    }
}
