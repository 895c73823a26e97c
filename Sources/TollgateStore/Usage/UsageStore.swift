import Foundation
import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import TollgateCore

/// Lands usage events in `usage_events` and keeps the rollups (`usage_hourly`, `usage_daily_rollup`) and the late-usage
/// bookings (`usage_corrections`) in step, in the same transaction, idempotently by request id.
///
/// Events travel as lines of PostgreSQL's COPY text format (`UsageCopyLine.swift`), in `usage_events`' own columns: the
/// gateway's durable spool stores exactly these lines, so replaying a spool file is a straight COPY with no decoding in
/// between. The ledger is partitioned by UTC month. A request id is stored at most once across the partitions
/// (sql/0410): a *self-located* row (a UUIDv7 id minted in the month of its started_at, as the gateway's are) is kept
/// unique by its partition's unique index on request_id; any other row (an ingested event's UUIDv4/v5 id) is checked
/// against every partition and its id claimed in `usage_request_ids`, which also keeps the ids of months retention
/// dropped. The advisory lock `UsageSQL.requestIDLock` keeps the two kinds of writer apart.
///
/// A batch of self-located rows first tries the fast path: one COPY straight into `usage_events` (PostgreSQL's
/// multi-row heap insert, the cheapest way in; the partition's unique index is part of the ledger table) plus one
/// statement that checks the batch's ids are not claimed and adds the hourly groups aggregated here, from the lines
/// (`HourlyRollup`), to the rollups. A batch holding a request id that is already stored (a replay after a timeout, a
/// spool replayed twice, an ingest batch re-sent) or twice in itself fails with a unique violation; it is then written
/// by the general path, as is a batch with a row that is not self-located: COPY into a staging table, then the rows of
/// exactly the new ids into the ledger, their claims, and their rollups. Both paths are one transaction each, and both
/// write the rollups with one statement (`UsageSQL.rollUpGroups`).
public struct UsageStore: Sendable {
    public let client: PostgresClient
    public init(client: PostgresClient) { self.client = client }

    /// Inserts events; rows whose request id is already stored are skipped.
    /// - Returns: how many rows were new.
    @discardableResult
    public func insert(_ events: [UsageEvent], logger: Logger) async throws -> Int {
        guard !events.isEmpty else { return 0 }
        var buffer = ByteBuffer()
        buffer.reserveCapacity(events.count * 300)
        for event in events { Self.appendCopyLine(for: event, to: &buffer) }
        return try await insert(copyText: [buffer], logger: logger)
    }

    /// Inserts pre-encoded COPY text (whole lines, as `copyLine(for:)` writes them) in one transaction; rows whose
    /// request id is already stored are skipped, and exactly the new rows are added to the rollups.
    /// - Returns: how many rows were new.
    @discardableResult
    public func insert(copyText chunks: [ByteBuffer], logger: Logger) async throws -> Int {
        guard chunks.contains(where: { $0.readableBytes > 0 }) else { return 0 }
        do {
            return try await insertNew(chunks, logger: logger)
        } catch let error as PostgresTransactionError where Self.isUniqueViolation(error) || error.closureError is NotForFastPath {
            logger.debug("Usage batch holds stored request ids, or rows the fast path does not take; writing it through staging")
        }
        return try await insertSkippingStored(chunks, logger: logger)
    }

    /// A duplicate request id in the ledger (a partition's unique index `usage_events_…_request_id`, or a claim in
    /// `usage_request_ids`, sql/0410), and nothing else: a unique violation anywhere else (a trigger's table) is a real
    /// error and must not send the batch down the path that skips rows it believes are stored.
    static func isUniqueViolation(_ error: PostgresTransactionError) -> Bool {
        guard let info = (error.closureError as? PSQLError)?.serverInfo, info[.sqlState] == "23505",
            let constraint = info[.constraintName]
        else { return false }
        return constraint == "usage_request_ids_pkey" || (constraint.hasPrefix("usage_events_") && constraint.hasSuffix("_request_id"))
    }

    /// Lines `HourlyRollup` cannot read (PostgreSQL may still parse them), or rows that are not self-located: the
    /// general path's.
    struct NotForFastPath: Error {}

    /// The fast path's rollup statement for a batch, its parameters encoded: the hourly groups computed from the lines,
    /// or nil when a line is not in `copyLine(for:)`'s form or a row is not self-located.
    static func rollUp(_ chunks: [ByteBuffer]) async -> RollUpBatch? {
        @Sendable func compute() -> RollUpBatch? {
            guard let rollup = HourlyRollup(lines: chunks), rollup.selfLocated else { return nil }
            return RollUpBatch(rollup)
        }
        do {
            return try await NIOThreadPool.singleton.runIfActive { compute() }
        } catch {
            return compute()  // the pool is stopping: compute it here
        }
    }

    /// The fast path: COPY every line into the ledger, then check that the batch's request ids are not claimed and add
    /// the rollup computed from the lines. Fails with a unique violation, and changes nothing, when a request id is
    /// already stored or repeated in the batch.
    private func insertNew(_ chunks: [ByteBuffer], logger: Logger) async throws -> Int {
        try await client.withTransaction(logger: logger) { tx in
            // Grouped, and the statement's parameters encoded, while PostgreSQL ingests the COPY: on one connection the two
            // would otherwise take turns. On NIO's thread pool, since `tollgate serve` runs tasks on the event loops that
            // also answer requests.
            async let computed = Self.rollUp(chunks)
            try await tx.copyFrom(table: "usage_events", columns: Self.columns, logger: logger) { writer in
                for chunk in chunks { try await writer.write(chunk) }
            }
            guard let statement = await computed else { throw NotForFastPath() }
            // One statement for the ids' check, the three rollups and the wake-up (pg_notify, delivered at commit, tells whoever watches
            // usage, such as the rules engine, on every instance): each round trip counts when the writer shares its CPUs.
            for try await _ in try await tx.execute(statement, logger: logger) {}
            return statement.rows
        }
    }

    /// The general path: COPY into a session-local staging table, then move the rows whose request id is new into the
    /// ledger and add exactly those to the rollups.
    private func insertSkippingStored(_ chunks: [ByteBuffer], logger: Logger) async throws -> Int {
        try await client.withTransaction(logger: logger) { tx in
            try await tx.query(PostgresQuery(unsafeSQL: UsageSQL.createStage), logger: logger)
            try await tx.copyFrom(table: "usage_stage", columns: Self.columns, logger: logger) { writer in
                for chunk in chunks { try await writer.write(chunk) }
            }
            let notSelfLocated = try await tx.query(PostgresQuery(unsafeSQL: UsageSQL.stageHasRowsNotSelfLocated), logger: logger)
                .collect().first?.decode(Bool.self) ?? false
            try await tx.query(PostgresQuery(unsafeSQL: notSelfLocated ? UsageSQL.lockExclusive : UsageSQL.lockShared), logger: logger)
            let rows = try await tx.query(PostgresQuery(unsafeSQL: UsageSQL.insertFromStage), logger: logger)
            let result = try await rows.collect().first?.decode((Int, String).self)
            let inserted = result?.0 ?? 0
            if inserted > 0 {
                // Wakes whoever watches usage (the rules engine) on every instance; delivered at commit.
                try await tx.query("SELECT pg_notify(\(NotificationChannel.usage.name), \(String(inserted)))", logger: logger)
            }
            return inserted
        }
    }
}
