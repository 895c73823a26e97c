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
/// between. The ledger is partitioned by UTC month; its idempotency key is `usage_request_ids` (sql/0400), which both
/// paths fill in the same transaction as the rows.
///
/// A batch first tries the fast path: one COPY straight into `usage_events` (PostgreSQL's multi-row heap insert, the
/// cheapest way in) plus one statement that claims the batch's request ids and adds the hourly groups aggregated here,
/// from the lines (`HourlyRollup`), to the rollups. A batch holding a request id that is already stored (a replay after a
/// timeout, a spool replayed twice, an ingest batch re-sent) or twice in itself fails that statement with a unique
/// violation; it is then written by the general path: COPY into a staging table, `INSERT … ON CONFLICT DO NOTHING` into
/// `usage_request_ids`, the rows of exactly the new ids into the ledger, and their rollups. Both paths are one
/// transaction each, and both write the rollups with one statement (`UsageSQL.rollUpGroups`).
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
        } catch let error as PostgresTransactionError where Self.isUniqueViolation(error) || error.closureError is NotCopyLines {
            logger.debug("Usage batch holds stored request ids or foreign lines; writing it through staging")
        }
        return try await insertSkippingStored(chunks, logger: logger)
    }

    /// A duplicate request id in the ledger (its key is `usage_request_ids`, sql/0400), and nothing else: a unique
    /// violation anywhere else (a trigger's table) is a real error and must not send the batch down the path that skips
    /// rows it believes are stored.
    static func isUniqueViolation(_ error: PostgresTransactionError) -> Bool {
        guard let info = (error.closureError as? PSQLError)?.serverInfo else { return false }
        return info[.sqlState] == "23505" && info[.constraintName] == "usage_request_ids_pkey"
    }

    /// Lines `HourlyRollup` cannot read; PostgreSQL may still parse them, on the general path.
    struct NotCopyLines: Error {}

    /// The fast path's rollup statement for a batch, its parameters encoded: the hourly groups computed from the lines,
    /// or nil when a line is not in `copyLine(for:)`'s form.
    static func rollUp(_ chunks: [ByteBuffer]) async -> RollUpBatch? {
        @Sendable func compute() -> RollUpBatch? { HourlyRollup(lines: chunks).map(RollUpBatch.init) }
        do {
            return try await NIOThreadPool.singleton.runIfActive { compute() }
        } catch {
            return compute()  // the pool is stopping: compute it here
        }
    }

    /// The fast path: COPY every line into the ledger, then claim the batch's request ids and add the rollup computed from
    /// the lines. Fails with a unique violation on `usage_request_ids`, and changes nothing, when a request id is already
    /// stored or repeated in the batch.
    private func insertNew(_ chunks: [ByteBuffer], logger: Logger) async throws -> Int {
        try await client.withTransaction(logger: logger) { tx in
            // Grouped, and the statement's parameters encoded, while PostgreSQL ingests the COPY: on one connection the two
            // would otherwise take turns. On NIO's thread pool, since `tollgate serve` runs tasks on the event loops that
            // also answer requests.
            async let computed = Self.rollUp(chunks)
            try await tx.copyFrom(table: "usage_events", columns: Self.columns, logger: logger) { writer in
                for chunk in chunks { try await writer.write(chunk) }
            }
            guard let statement = await computed else { throw NotCopyLines() }
            // The batch's ids claimed by COPY too: a multi-row insert writes far less WAL than a row-by-row INSERT … SELECT.
            try await tx.copyFrom(table: "usage_request_ids", columns: ["request_id"], logger: logger) { writer in
                try await writer.write(statement.requestIDLines)
            }
            // One statement for the three rollups and the wake-up (pg_notify, delivered at commit, tells whoever watches
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
