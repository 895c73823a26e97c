import Foundation
import Logging
import PostgresNIO
import TollgateCore

/// One UTC month of the raw ledger: a partition of `usage_events` (sql/0400).
public struct LedgerMonth: Hashable, Sendable {
    /// The month, as a billing period (UTC, half-open).
    public var period: BillingPeriod
    /// The partition's table name, `usage_events_YYYY_MM`.
    public var table: String
    /// Whether the month's billing period is closed (`tollgate period close`).
    public var closed: Bool
    /// The partition's size on disk, indexes included.
    public var bytes: Int

    public init(period: BillingPeriod, table: String, closed: Bool, bytes: Int) {
        self.period = period
        self.table = table
        self.closed = closed
        self.bytes = bytes
    }
}

/// What a retention run dropped, or would drop (`dryRun`).
public struct RetentionOutcome: Hashable, Sendable {
    /// Raw months before this instant are dropped: the first day of the current UTC month, `keepMonths` months back.
    public var cutoff: Date
    public var dropped: [LedgerMonth]
    public var dryRun: Bool

    public init(cutoff: Date, dropped: [LedgerMonth], dryRun: Bool) {
        self.cutoff = cutoff
        self.dropped = dropped
        self.dryRun = dryRun
    }
}

/// Why retention dropped nothing.
public enum RetentionError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Months older than the horizon whose billing period is still open: their raw rows may still be needed (a period
    /// close, a recomputation), so none is dropped until they are closed.
    case openMonths([String], keepMonths: Int)
    case negativeKeepMonths(Int)

    public var description: String {
        switch self {
        case .openMonths(let months, let keep):
            "raw usage of \(months.joined(separator: ", ")) is older than the \(keep) month\(keep == 1 ? "" : "s") kept, but "
                + "\(months.count == 1 ? "its billing period is" : "their billing periods are") still open; nothing was dropped. "
                + "Close \(months.count == 1 ? "it" : "them") first (`tollgate period close \(months[0])`), then run retention again"
        case .negativeKeepMonths(let keep): "--keep-months must be 0 or more, not \(keep)"
        }
    }
}

/// The raw ledger's monthly partitions: made ahead of time by the service, dropped by retention once their month is
/// closed. Rollups, reports and the `reporting` views never read the raw ledger, so they keep the whole history.
public protocol UsageLedger: Sendable {
    /// Creates the partitions of the current month (of `now`) and of `monthsAhead` months after it, and of every month
    /// the default partition caught rows of (moving them in). Safe to run from several instances at once.
    /// - Returns: the partitions created, `usage_events_YYYY_MM`.
    func createPartitions(now: Date, monthsAhead: Int, logger: Logger) async throws -> [String]

    /// The monthly partitions, oldest first.
    func months(logger: Logger) async throws -> [LedgerMonth]

    /// Drops the raw months that start before the current month of `now` minus `keepMonths` months, all of them or none:
    /// throws `RetentionError.openMonths` when one of them is not closed.
    func applyRetention(keepMonths: Int, now: Date, dryRun: Bool, logger: Logger) async throws -> RetentionOutcome
}

/// `UsageLedger` on PostgreSQL: the partition functions of sql/0400 and `DROP TABLE` of a month's partition.
public struct PostgresUsageLedger: UsageLedger {
    public let client: PostgresClient
    public init(client: PostgresClient) { self.client = client }

    public func createPartitions(now: Date, monthsAhead: Int, logger: Logger) async throws -> [String] {
        let rows = try await client.query("SELECT tollgate_create_usage_partitions(\(now), \(monthsAhead)::integer)", logger: logger)
        var created: [String] = []
        for try await name in rows.decode(String.self) { created.append(name) }
        if !created.isEmpty { logger.info("Usage partitions created", metadata: ["usage.partitions": "\(created.joined(separator: ","))"]) }
        return created
    }

    public func months(logger: Logger) async throws -> [LedgerMonth] {
        try await client.withConnection { connection in try await Self.months(on: connection, lockingCloses: false, logger: logger) }
    }

    public func applyRetention(keepMonths: Int, now: Date, dryRun: Bool, logger: Logger) async throws -> RetentionOutcome {
        guard keepMonths >= 0 else { throw RetentionError.negativeKeepMonths(keepMonths) }
        // Rows the default partition caught go to their month's partition first, so every old row is in one that can go.
        _ = try await createPartitions(now: now, monthsAhead: 0, logger: logger)
        let cutoff = Self.cutoff(keepMonths: keepMonths, now: now)
        do {
            return try await drop(before: cutoff, keepMonths: keepMonths, dryRun: dryRun, logger: logger)
        } catch let error as PostgresTransactionError {
            if let refusal = error.closureError as? RetentionError { throw refusal }
            throw error
        }
    }

    private func drop(before cutoff: Date, keepMonths: Int, dryRun: Bool, logger: Logger) async throws -> RetentionOutcome {
        try await client.withTransaction(logger: logger) { tx in
            // Writers of the ledger wait while a month's ids move into `usage_request_ids` (sql/0410), so that none
            // checks an id of the month between its row going and its claim appearing.
            if !dryRun { try await tx.query(PostgresQuery(unsafeSQL: UsageSQL.lockExclusive), logger: logger) }
            // The closes of the months dropped are locked (FOR SHARE) until commit: no month reopens while it is dropped.
            let old = try await Self.months(on: tx, lockingCloses: true, logger: logger).filter { $0.period.start < cutoff }
            let open = old.filter { !$0.closed }
            if !open.isEmpty { throw RetentionError.openMonths(open.map(\.period.monthLabel), keepMonths: keepMonths) }
            if !dryRun {
                for month in old {
                    // The name was read from the catalog and matched `usage_events_YYYY_MM`: safe as an identifier.
                    // Its self-located rows' ids become claims (the others are claimed already): a replay of the month
                    // after it is gone still lands nothing.
                    try await tx.query(
                        """
                        INSERT INTO usage_request_ids (request_id)
                        SELECT request_id FROM \(unescaped: month.table) WHERE tollgate_usage_self_located(request_id, started_at)
                        """, logger: logger)
                    try await tx.query("DROP TABLE \(unescaped: month.table)", logger: logger)
                    logger.info("Usage month dropped", metadata: ["usage.month": "\(month.period.monthLabel)", "usage.bytes": "\(month.bytes)"])
                }
            }
            return RetentionOutcome(cutoff: cutoff, dropped: old, dryRun: dryRun)
        }
    }

    /// The first day of `now`'s UTC month, `keepMonths` months back.
    static func cutoff(keepMonths: Int, now: Date) -> Date {
        let month = BillingPeriod.containing(now, kind: .monthly).start
        return Calendar.utc.date(byAdding: .month, value: -keepMonths, to: month) ?? month
    }

    private static func months(on connection: PostgresConnection, lockingCloses: Bool, logger: Logger) async throws -> [LedgerMonth] {
        let rows = try await connection.query(
            """
            SELECT c.relname, pg_total_relation_size(c.oid)
            FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = 'usage_events'::regclass AND c.relname ~ '^usage_events_[0-9]{4}_[0-9]{2}$'
            ORDER BY c.relname
            """, logger: logger)
        var partitions: [(String, Int)] = []
        for try await (name, bytes) in rows.decode((String, Int).self) { partitions.append((name, bytes)) }
        let closes = try await connection.query(
            lockingCloses ? "SELECT period_start FROM billing_period_closes FOR SHARE" : "SELECT period_start FROM billing_period_closes",
            logger: logger)
        var closed: Set<Date> = []
        for try await start in closes.decode(Date.self) { closed.insert(start) }
        return partitions.compactMap { name, bytes in
            let label = name.dropFirst("usage_events_".count).replacingOccurrences(of: "_", with: "-")
            guard let period = BillingPeriod.month(label) else { return nil }
            return LedgerMonth(period: period, table: name, closed: closed.contains(period.start), bytes: bytes)
        }
    }
}

extension PostgresDatabase {
    /// The raw ledger's monthly partitions.
    public var usageLedger: PostgresUsageLedger { .init(client: client) }
}
