import Foundation
import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import TollgateCore

/// Lands usage events in `usage_events` and keeps the rollups (`usage_hourly`, `usage_daily_rollup`) and the late-usage
/// bookings (`usage_corrections`) in step, in the same transaction, idempotently by request id.
///
/// Events travel as lines of PostgreSQL's COPY text format, in `usage_events`' own columns: the gateway's durable spool
/// stores exactly these lines, so replaying a spool file is a straight COPY with no decoding in between.
///
/// A batch first tries the fast path: one COPY straight into `usage_events` (PostgreSQL's multi-row heap insert, the
/// cheapest way in) plus the rollups of the hourly groups aggregated here, from the lines. A batch holding a request id that is
/// already stored (a replay after a timeout, a spool replayed twice) or twice in itself fails that COPY with a unique
/// violation; it is then written by the general path: COPY into a staging table, `INSERT … ON CONFLICT DO NOTHING`,
/// and the rollups of exactly the rows that were new. Both paths are one transaction each, and both write the rollups
/// with one statement (`rollUpGroups`).
public struct UsageStore: Sendable {
    public let client: PostgresClient
    public init(client: PostgresClient) { self.client = client }

    /// The columns of a COPY line, in order: every column of `usage_events` but `recorded_at`.
    static let columns = [
        "request_id", "response_id", "started_at", "ended_at", "subscription_id", "product", "team", "cost_center",
        "backend", "deployment", "model", "route", "http_status", "latency_ms", "streamed", "prompt_tokens",
        "completion_tokens", "total_tokens", "cached_tokens", "reasoning_tokens", "usage_source", "source",
    ]

    /// One event as a COPY text line, newline included. Times are UTC with microseconds (`2026-11-01 00:00:00.123456+00`).
    public static func copyLine(for event: UsageEvent) -> String {
        var buffer = ByteBuffer()
        appendCopyLine(for: event, to: &buffer)
        return String(buffer: buffer)
    }

    /// Appends one event as a COPY text line to `buffer`. The writer encodes every event it lands, so the line is
    /// written straight into the buffer's memory, sized beforehand for the worst case (every text byte escaped).
    public static func appendCopyLine(for event: UsageEvent, to buffer: inout ByteBuffer) {
        let texts = [
            event.responseID, event.subscription.rawValue, event.product, event.team, event.costCenter, event.backend,
            event.deployment, event.model, event.route, event.usageSource.rawValue, event.source,
        ]
        let worstCase = texts.reduce(0) { $0 + ($1.map { 2 * $0.utf8.count } ?? 2) } + 36 + 2 * 29 + 7 * 21 + 1 + 22
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: worstCase) { out in
            var at = 0
            func byte(_ value: UInt8) {
                out[at] = value
                at += 1
            }
            func tab() { byte(0x09) }
            func field(_ value: String?) {
                guard let value else {
                    byte(0x5C)  // \N: NULL
                    byte(0x4E)
                    return
                }
                var copy = value
                copy.withUTF8 { utf8 in
                    for b in utf8 {
                        switch b {
                        case 0x5C: byte(0x5C); byte(0x5C)
                        case 0x09: byte(0x5C); byte(0x74)
                        case 0x0A: byte(0x5C); byte(0x6E)
                        case 0x0D: byte(0x5C); byte(0x72)
                        default: byte(b)
                        }
                    }
                }
            }
            func number(_ value: Int) {
                if value < 0 { byte(0x2D) }
                var magnitude = value.magnitude
                var digits = 1
                var probe = magnitude
                while probe >= 10 {
                    probe /= 10
                    digits += 1
                }
                var position = at + digits - 1
                repeat {
                    out[position] = UInt8(48 + magnitude % 10)
                    magnitude /= 10
                    position -= 1
                } while magnitude > 0
                at += digits
            }
            func fixed(_ value: Int, width: Int) {
                var rest = value
                var position = at + width - 1
                for _ in 0..<width {
                    out[position] = UInt8(48 + rest % 10)
                    rest /= 10
                    position -= 1
                }
                at += width
            }
            func time(_ date: Date) {
                let t = CivilTime(microseconds: microseconds(date))
                fixed(t.year, width: 4)
                byte(0x2D)
                fixed(t.month, width: 2)
                byte(0x2D)
                fixed(t.day, width: 2)
                byte(0x20)
                fixed(t.hour, width: 2)
                byte(0x3A)
                fixed(t.minute, width: 2)
                byte(0x3A)
                fixed(t.second, width: 2)
                byte(0x2E)
                fixed(t.microsecond, width: 6)
                byte(0x2B)  // +00
                byte(0x30)
                byte(0x30)
            }
            func uuid(_ id: UUID) {
                let hex = hexDigits
                withUnsafeBytes(of: id.uuid) { bytes in
                    for (i, b) in bytes.enumerated() {
                        if i == 4 || i == 6 || i == 8 || i == 10 { byte(0x2D) }
                        byte(hex[Int(b >> 4)])
                        byte(hex[Int(b & 0x0F)])
                    }
                }
            }
            uuid(event.requestID)
            tab()
            field(event.responseID)
            tab()
            time(event.startedAt)
            tab()
            time(event.endedAt)
            tab()
            field(event.subscription.rawValue)
            tab()
            field(event.product)
            tab()
            field(event.team)
            tab()
            field(event.costCenter)
            tab()
            field(event.backend)
            tab()
            field(event.deployment)
            tab()
            field(event.model)
            tab()
            field(event.route)
            tab()
            number(event.httpStatus)
            tab()
            number(event.latencyMilliseconds)
            tab()
            byte(event.streamed ? 0x74 : 0x66)  // t / f
            tab()
            number(event.usage.promptTokens)
            tab()
            number(event.usage.completionTokens)
            tab()
            number(event.usage.totalTokens)
            tab()
            number(event.usage.cachedPromptTokens)
            tab()
            number(event.usage.reasoningTokens)
            tab()
            field(event.usageSource.rawValue)
            tab()
            field(event.source)
            byte(0x0A)
            return at
        }
    }

    private static let hexDigits: [UInt8] = Array("0123456789ABCDEF".utf8)

    static func microseconds(_ date: Date) -> Int {
        Int((date.timeIntervalSince1970 * 1_000_000).rounded())
    }

    /// A UTC instant split into calendar fields (proleptic Gregorian), by civil-from-days arithmetic
    /// (Howard Hinnant's algorithm): a date formatter per field would cost more than the rest of the line.
    struct CivilTime {
        var year, month, day, hour, minute, second, microsecond: Int

        init(microseconds: Int) {
            func floorDiv(_ a: Int, _ b: Int) -> Int { a >= 0 ? a / b : -((-a + b - 1) / b) }
            let seconds = floorDiv(microseconds, 1_000_000)
            microsecond = microseconds - seconds * 1_000_000
            let days = floorDiv(seconds, 86_400)
            let secondOfDay = seconds - days * 86_400
            hour = secondOfDay / 3_600
            minute = secondOfDay % 3_600 / 60
            second = secondOfDay % 60
            let z = days + 719_468
            let era = floorDiv(z, 146_097)
            let dayOfEra = z - era * 146_097
            let yearOfEra = (dayOfEra - dayOfEra / 1_460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
            let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
            let mp = (5 * dayOfYear + 2) / 153
            day = dayOfYear - (153 * mp + 2) / 5 + 1
            month = mp < 10 ? mp + 3 : mp - 9
            year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        }
    }

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

    /// A duplicate request id in the ledger, and nothing else: a unique violation anywhere else (a trigger's table) is a
    /// real error and must not send the batch down the path that skips rows it believes are stored.
    static func isUniqueViolation(_ error: PostgresTransactionError) -> Bool {
        guard let info = (error.closureError as? PSQLError)?.serverInfo else { return false }
        return info[.sqlState] == "23505" && info[.constraintName] == "usage_events_pkey"
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

    /// The fast path: COPY every line into the ledger, add the rollup computed from the lines. Fails with a unique
    /// violation, and changes nothing, when a request id is already stored or repeated in the batch.
    private func insertNew(_ chunks: [ByteBuffer], logger: Logger) async throws -> Int {
        try await client.withTransaction(logger: logger) { tx in
            // Grouped, and the statement's parameters encoded, while PostgreSQL ingests the COPY: on one connection the two
            // would otherwise take turns (encoding the arrays alone took 1.2 ms of a 52 ms batch). On NIO's thread pool, since
            // `tollgate serve` runs tasks on the event loops that also answer requests.
            async let computed = Self.rollUp(chunks)
            try await tx.copyFrom(table: "usage_events", columns: Self.columns, logger: logger) { writer in
                for chunk in chunks { try await writer.write(chunk) }
            }
            guard let statement = await computed else { throw NotCopyLines() }
            // One statement for the three rollups and the wake-up (pg_notify, delivered at commit, tells whoever watches usage,
            // such as the rules engine, on every instance): each round trip counts when the writer shares its CPUs.
            for try await _ in try await tx.execute(statement, logger: logger) {}
            return statement.rows
        }
    }

    /// The fast path's rollup statement, from the groups `HourlyRollup` computed. Prepared once per connection: parsing
    /// and planning a statement of this size on every batch costs about as much as a tenth of its execution.
    struct RollUpBatch: PostgresPreparedStatement {
        static let sql = """
            WITH groups AS MATERIALIZED (
                SELECT g.hour_start, g.subscription_id, g.product, g.team, g.cost_center, g.backend, g.deployment, g.model, g.usage_source,
                    g.requests, g.prompt_tokens, g.completion_tokens, g.total_tokens, g.cached_tokens, g.reasoning_tokens
                FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
                            $10::int8[], $11::int8[], $12::int8[], $13::int8[], $14::int8[], $15::int8[])
                    AS g (hour_start, subscription_id, product, team, cost_center, backend, deployment, model, usage_source,
                        requests, prompt_tokens, completion_tokens, total_tokens, cached_tokens, reasoning_tokens)
            ), \(rollUpGroups)
            SELECT pg_notify('\(NotificationChannel.usage.name)', $16::text), \(rollupsWritten)
            """
        typealias Row = PostgresRow

        /// How many lines (events) the batch holds.
        let rows: Int
        private let bindings: PostgresBindings

        /// Encodes the statement's parameters: one binary array per column of the groups, written in one pass over them.
        init(_ rollup: HourlyRollup) {
            let groups = rollup.groups
            rows = rollup.rows
            var hours = ArrayParameter(timestamptz: groups.count)
            var keys = (0..<8).map { _ in ArrayParameter(text: groups.count) }
            var sums = (0..<6).map { _ in ArrayParameter(int8: groups.count) }
            for group in groups {
                hours.append(group.hourStart)
                keys[0].append(group.key.subscription)
                keys[1].append(group.key.product)
                keys[2].append(group.key.team)
                keys[3].append(group.key.costCenter)
                keys[4].append(group.key.backend)
                keys[5].append(group.key.deployment)
                keys[6].append(group.key.model)
                keys[7].append(group.key.usageSource)
                sums[0].append(Int64(group.sums.requests))
                sums[1].append(Int64(group.sums.prompt))
                sums[2].append(Int64(group.sums.completion))
                sums[3].append(Int64(group.sums.total))
                sums[4].append(Int64(group.sums.cached))
                sums[5].append(Int64(group.sums.reasoning))
            }
            var bindings = PostgresBindings(capacity: 16)
            bindings.append(hours)
            for column in keys + sums { bindings.append(column) }
            bindings.append(String(rollup.rows))
            self.bindings = bindings
        }

        func makeBindings() throws -> PostgresBindings { bindings }

        func decodeRow(_ row: PostgresRow) throws -> PostgresRow { row }
    }

    /// A one-dimensional array of `count` elements without NULLs, in PostgreSQL's binary form, filled by `append`.
    /// postgres-nio's `[String]` encoding went through a generic path per element, from an intermediate array per column.
    struct ArrayParameter: PostgresDynamicTypeEncodable {
        let psqlType: PostgresDataType
        var psqlFormat: PostgresFormat { .binary }
        private var bytes: ByteBuffer

        private init(type: PostgresDataType, elementType: PostgresDataType, count: Int, capacity: Int) {
            psqlType = type
            bytes = ByteBuffer()
            bytes.reserveCapacity(20 + capacity)
            bytes.writeInteger(Int32(1))  // dimensions
            bytes.writeInteger(Int32(0))  // no NULLs
            bytes.writeInteger(Int32(bitPattern: elementType.rawValue))
            bytes.writeInteger(Int32(count))
            bytes.writeInteger(Int32(1))  // lower bound
        }

        /// timestamptz[]: elements are microseconds since 2000-01-01 00:00:00 UTC (PostgreSQL's epoch).
        init(timestamptz count: Int) { self.init(type: .timestamptzArray, elementType: .timestamptz, count: count, capacity: 12 * count) }
        init(int8 count: Int) { self.init(type: .int8Array, elementType: .int8, count: count, capacity: 12 * count) }
        init(text count: Int) { self.init(type: .textArray, elementType: .text, count: count, capacity: 24 * count) }

        mutating func append(_ value: Int64) {
            bytes.writeInteger(Int32(8))
            bytes.writeInteger(value)
        }

        mutating func append(_ value: String) {
            bytes.writeInteger(Int32(value.utf8.count))
            bytes.writeString(value)
        }

        func encode<JSONEncoder: PostgresJSONEncoder>(into byteBuffer: inout ByteBuffer, context: PostgresEncodingContext<JSONEncoder>) {
            byteBuffer.writeImmutableBuffer(bytes)
        }
    }

    /// The rest of both paths' one statement, after a CTE `groups` that holds the batch's new rows grouped by hourly key
    /// (hour_start, subscription_id, product, team, cost_center, backend, deployment, model, usage_source, then the six sums):
    /// add them to `usage_hourly`, add their days to `usage_daily_rollup`, and book the part that falls before the end of the
    /// closed books in `usage_corrections`, in the first open month. Every row lock is taken in one order by every writer:
    /// hourly rows in key order, all of them (the daily insert waits for `rolled` to be read to its end), then daily rows in
    /// key order, so concurrent writers cannot deadlock. A constant (no value goes through `unescaped:`).
    ///
    /// The statement's snapshot is taken after it has locked `usage_hourly`; a period close holds a SHARE lock on that
    /// table until it commits, so the close is either seen here (the batch's closed hours are corrections) or waits for
    /// this transaction (they are regular usage of the month being closed).
    static let rollUpGroups = """
        rolled AS (
            INSERT INTO usage_hourly AS h (hour_start, subscription_id, product, team, cost_center, backend, deployment, model, usage_source,
                requests, prompt_tokens, completion_tokens, total_tokens, cached_tokens, reasoning_tokens)
            SELECT hour_start, subscription_id, product, team, cost_center, backend, deployment, model, usage_source,
                requests, prompt_tokens, completion_tokens, total_tokens, cached_tokens, reasoning_tokens
            FROM groups
            ORDER BY 1, 2, 3, 4, 5, 6, 7, 8, 9
            ON CONFLICT (hour_start, subscription_id, product, team, cost_center, backend, deployment, model, usage_source) DO UPDATE SET
                requests = h.requests + EXCLUDED.requests, prompt_tokens = h.prompt_tokens + EXCLUDED.prompt_tokens,
                completion_tokens = h.completion_tokens + EXCLUDED.completion_tokens, total_tokens = h.total_tokens + EXCLUDED.total_tokens,
                cached_tokens = h.cached_tokens + EXCLUDED.cached_tokens, reasoning_tokens = h.reasoning_tokens + EXCLUDED.reasoning_tokens
            RETURNING 1
        ), daily AS (
            INSERT INTO usage_daily_rollup AS d (day_start, subscription_id, product, team, cost_center, backend, deployment, model, usage_source,
                requests, prompt_tokens, completion_tokens, total_tokens, cached_tokens, reasoning_tokens)
            SELECT date_trunc('day', hour_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', subscription_id, product, team, cost_center, backend,
                deployment, model, usage_source, sum(requests), sum(prompt_tokens), sum(completion_tokens), sum(total_tokens),
                sum(cached_tokens), sum(reasoning_tokens)
            FROM groups
            WHERE (SELECT count(*) FROM rolled) >= 0
            GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
            ORDER BY 1, 2, 3, 4, 5, 6, 7, 8, 9
            ON CONFLICT (day_start, subscription_id, product, team, cost_center, backend, deployment, model, usage_source) DO UPDATE SET
                requests = d.requests + EXCLUDED.requests, prompt_tokens = d.prompt_tokens + EXCLUDED.prompt_tokens,
                completion_tokens = d.completion_tokens + EXCLUDED.completion_tokens, total_tokens = d.total_tokens + EXCLUDED.total_tokens,
                cached_tokens = d.cached_tokens + EXCLUDED.cached_tokens, reasoning_tokens = d.reasoning_tokens + EXCLUDED.reasoning_tokens
        ), late AS (
            INSERT INTO usage_corrections (booked_period_start, hour_start, subscription_id, product, team, cost_center, backend,
                deployment, model, usage_source, requests, prompt_tokens, completion_tokens, total_tokens, cached_tokens, reasoning_tokens)
            SELECT c.closed_through, g.hour_start, g.subscription_id, g.product, g.team, g.cost_center, g.backend, g.deployment, g.model,
                g.usage_source, g.requests, g.prompt_tokens, g.completion_tokens, g.total_tokens, g.cached_tokens, g.reasoning_tokens
            FROM groups g, (SELECT max(period_end) AS closed_through FROM billing_period_closes) c
            WHERE g.hour_start < c.closed_through
        )
        """

    /// A column of the statement's final SELECT that tells the `usage_hourly` triggers (sql/0302) that this transaction's
    /// statement kept the daily rollup and the corrections itself. Statement triggers fire after the whole statement, so
    /// after this has run; the setting ends with the transaction.
    static let rollupsWritten = "set_config('tollgate.rollups_written_by', 'usage_store', true)"

    /// The general path: COPY into a session-local staging table, then move the rows that are new into the ledger and
    /// add exactly those to the rollups.
    private func insertSkippingStored(_ chunks: [ByteBuffer], logger: Logger) async throws -> Int {
        try await client.withTransaction(logger: logger) { tx in
            try await tx.query(
                """
                CREATE TEMP TABLE IF NOT EXISTS usage_stage (
                    request_id uuid, response_id text, started_at timestamptz, ended_at timestamptz, subscription_id text, product text,
                    team text, cost_center text, backend text, deployment text, model text, route text, http_status smallint,
                    latency_ms integer, streamed boolean, prompt_tokens integer, completion_tokens integer, total_tokens integer,
                    cached_tokens integer, reasoning_tokens integer, usage_source text, source text) ON COMMIT DELETE ROWS
                """, logger: logger)
            try await tx.copyFrom(table: "usage_stage", columns: Self.columns, logger: logger) { writer in
                for chunk in chunks { try await writer.write(chunk) }
            }
            let rows = try await tx.query(
                """
                WITH inserted AS (
                    INSERT INTO usage_events (request_id, response_id, started_at, ended_at, subscription_id, product, team, cost_center,
                        backend, deployment, model, route, http_status, latency_ms, streamed, prompt_tokens, completion_tokens,
                        total_tokens, cached_tokens, reasoning_tokens, usage_source, source)
                    SELECT request_id, response_id, started_at, ended_at, subscription_id, product, team, cost_center, backend, deployment,
                        model, route, http_status, latency_ms, streamed, prompt_tokens, completion_tokens, total_tokens, cached_tokens,
                        reasoning_tokens, usage_source, source
                    FROM usage_stage
                    ON CONFLICT (request_id) DO NOTHING
                    RETURNING started_at, subscription_id, product, team, cost_center, backend, deployment, model, usage_source,
                        prompt_tokens, completion_tokens, total_tokens, cached_tokens, reasoning_tokens
                ), groups AS MATERIALIZED (
                    SELECT date_trunc('hour', started_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS hour_start, subscription_id,
                        coalesce(product, '') AS product, coalesce(team, '') AS team, coalesce(cost_center, '') AS cost_center, backend,
                        coalesce(deployment, '') AS deployment, model, usage_source, count(*) AS requests, sum(prompt_tokens) AS prompt_tokens,
                        sum(completion_tokens) AS completion_tokens, sum(total_tokens) AS total_tokens, sum(cached_tokens) AS cached_tokens,
                        sum(reasoning_tokens) AS reasoning_tokens
                    FROM inserted GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
                ), \(unescaped: Self.rollUpGroups)
                SELECT (SELECT count(*) FROM inserted), \(unescaped: Self.rollupsWritten)
                """, logger: logger)
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

/// The hourly rollup of a batch of COPY lines, computed from the lines for the fast path.
struct HourlyRollup {
    struct Key: Hashable {
        /// `2026-11-01 13`: the start of the hour, as the line's UTC timestamp begins.
        var hour, subscription, product, team, costCenter, backend, deployment, model, usageSource: String
    }
    struct Sums { var requests = 0, prompt = 0, completion = 0, total = 0, cached = 0, reasoning = 0 }
    struct Group {
        var key: Key
        /// The key's hour in microseconds since 2000-01-01 00:00:00 UTC, as PostgreSQL sends a timestamptz.
        var hourStart: Int64
        var sums = Sums()
    }

    /// How many lines (events) the batch holds.
    private(set) var rows = 0
    private(set) var groups: [Group] = []

    /// Returns nil when a line is not in the form `UsageStore.copyLine(for:)` writes (22 fields, a UTC timestamp with
    /// microseconds, plain non-negative token counts); such a batch takes the general path, where PostgreSQL parses it.
    init?(lines chunks: [ByteBuffer]) {
        let nonEmpty = chunks.filter { $0.readableBytes > 0 }
        let parsed: HourlyRollup?
        if nonEmpty.count == 1 {  // the writer's batches: read in place
            parsed = nonEmpty[0].withUnsafeReadableBytes { Self.parse($0.assumingMemoryBound(to: UInt8.self)) }
        } else {
            var bytes: [UInt8] = []
            bytes.reserveCapacity(nonEmpty.reduce(0) { $0 + $1.readableBytes })
            for chunk in nonEmpty { bytes.append(contentsOf: chunk.readableBytesView) }
            parsed = bytes.withUnsafeBufferPointer { Self.parse($0) }
        }
        guard let parsed else { return nil }
        self = parsed
    }

    private init() {}

    /// One pass over the batch. A line's group is decided by its still-escaped bytes: the hour (the timestamp's first
    /// 13 bytes), the columns subscription_id … model (adjacent in a line) and usage_source; lines are matched to groups
    /// by a hash of those bytes and a byte comparison, so grouping a line allocates nothing.
    private static func parse(_ bytes: UnsafeBufferPointer<UInt8>) -> HourlyRollup? {
        let tab: UInt8 = 0x09, newline: UInt8 = 0x0A, backslash: UInt8 = 0x5C
        guard let base = bytes.baseAddress, bytes.last == newline else { return nil }
        var rollup = HourlyRollup()
        // A group's representative line: where its three key parts are in the batch.
        var representatives: [(hour: Int, columns: Range<Int>, source: Range<Int>)] = []
        var byHash: [UInt64: [Int]] = [:]
        var byKey: [Key: Int] = [:]
        var rawToGroup: [Int] = []  // representative index -> group index
        var starts = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        return withUnsafeMutableBytes(of: &starts) { startsRaw -> HourlyRollup? in
            let starts = startsRaw.bindMemory(to: Int.self)
            func equal(_ a: Range<Int>, _ b: Range<Int>) -> Bool {
                a.count == b.count && memcmp(base + a.lowerBound, base + b.lowerBound, a.count) == 0
            }
            // Eight bytes at a time (a byte-wise FNV took a third of the parse); lines are matched by comparing bytes, so
            // the hash only has to spread the groups.
            func hash(_ range: Range<Int>, _ seed: UInt64) -> UInt64 {
                var hash = seed ^ UInt64(range.count)
                var i = range.lowerBound
                while i + 8 <= range.upperBound {
                    hash = (hash ^ UnsafeRawPointer(base + i).loadUnaligned(as: UInt64.self)) &* 0x9E37_79B9_7F4A_7C15
                    hash ^= hash >> 29
                    i += 8
                }
                var tail: UInt64 = 0
                var shift: UInt64 = 0
                while i < range.upperBound {
                    tail |= UInt64(bytes[i]) << shift
                    shift += 8
                    i += 1
                }
                hash = (hash ^ tail) &* 0x9E37_79B9_7F4A_7C15
                return hash ^ (hash >> 32)
            }
            // `2026-11-01 13` at `time`: microseconds since 2000-01-01 UTC, or nil unless it is a date and an hour of 0…23
            // (PostgreSQL also reads hour 24, as the next day's 0; the general path groups such a line).
            func hourStart(_ time: Int) -> Int64? {
                func number(_ from: Int, _ count: Int) -> Int? {
                    var value = 0
                    for j in from..<(from + count) {
                        let digit = Int(bytes[j]) &- 48
                        guard digit >= 0 && digit <= 9 else { return nil }
                        value = value * 10 + digit
                    }
                    return value
                }
                guard bytes[time + 4] == 0x2D, bytes[time + 7] == 0x2D, bytes[time + 10] == 0x20,
                    let year = number(time, 4), let month = number(time + 5, 2), let day = number(time + 8, 2), let hour = number(time + 11, 2),
                    (1...12).contains(month), (1...31).contains(day), hour <= 23
                else { return nil }
                // Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
                let y = month <= 2 ? year - 1 : year
                let era = (y >= 0 ? y : y - 399) / 400
                let yearOfEra = y - era * 400
                let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
                let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
                let days = era * 146_097 + dayOfEra - 719_468
                return Int64((days - 10_957) * 86_400 + hour * 3_600) * 1_000_000  // 10,957 days from 1970 to 2000
            }
            var position = 0
            while position < bytes.count {
                var field = 0
                starts[0] = position
                var i = position
                // Eight bytes at a time: the high bit of each tab or newline byte, in address order (little-endian).
                // Exact per byte (no borrow runs into the next byte, so a 0x08 or 0x0B next to a tab is not taken for one).
                func marks(_ word: UInt64) -> UInt64 {
                    func zeroBytes(_ x: UInt64) -> UInt64 {
                        ~(((x & 0x7F7F_7F7F_7F7F_7F7F) &+ 0x7F7F_7F7F_7F7F_7F7F) | x | 0x7F7F_7F7F_7F7F_7F7F)
                    }
                    return zeroBytes(word ^ 0x0909_0909_0909_0909) | zeroBytes(word ^ 0x0A0A_0A0A_0A0A_0A0A)
                }
                var lineEnd = -1
                words: while i + 8 <= bytes.count {
                    var found = marks(UInt64(littleEndian: UnsafeRawPointer(base + i).loadUnaligned(as: UInt64.self)))  // byte k of the line is bits 8k…8k+7
                    while found != 0 {
                        let at = i + found.trailingZeroBitCount >> 3
                        if bytes[at] == newline {
                            lineEnd = at
                            break words
                        }
                        field += 1
                        if field > 21 { return nil }
                        starts[field] = at + 1
                        found &= found &- 1
                    }
                    i += 8
                }
                if lineEnd < 0 {  // the batch's last bytes; it ends with a newline
                    while bytes[i] != newline {
                        if bytes[i] == tab {
                            field += 1
                            if field > 21 { return nil }
                            starts[field] = i + 1
                        }
                        i += 1
                    }
                    lineEnd = i
                }
                i = lineEnd
                guard field == 21 else { return nil }
                starts[22] = i + 1
                position = i + 1

                // `2026-11-01 13:05:09.123456+00`: exactly what copyLine writes, so the hour is its first 13 bytes.
                let time = starts[2], timeEnd = starts[3] - 1
                guard timeEnd - time == 29, bytes[timeEnd - 3] == 0x2B, bytes[timeEnd - 2] == 0x30, bytes[timeEnd - 1] == 0x30 else { return nil }
                var counts = (0, 0, 0, 0, 0)
                for k in 15...19 {
                    var value = 0
                    let from = starts[k], to = starts[k + 1] - 1
                    guard to > from, to - from <= 10 else { return nil }
                    for j in from..<to {
                        let digit = Int(bytes[j]) &- 48
                        guard digit >= 0 && digit <= 9 else { return nil }
                        value = value * 10 + digit
                    }
                    switch k {
                    case 15: counts.0 = value
                    case 16: counts.1 = value
                    case 17: counts.2 = value
                    case 18: counts.3 = value
                    default: counts.4 = value
                    }
                }

                let hour = time..<(time + 13)
                let columns = starts[4]..<(starts[11] - 1)
                let source = starts[20]..<(starts[21] - 1)
                let hash = hash(source, hash(columns, hash(hour, 0xCBF2_9CE4_8422_2325)))
                var group = -1
                for candidate in byHash[hash] ?? [] {
                    let r = representatives[candidate]
                    if equal(r.hour..<(r.hour + 13), hour) && equal(r.columns, columns) && equal(r.source, source) {
                        group = rawToGroup[candidate]
                        break
                    }
                }
                if group < 0 {
                    func text(_ k: Int) -> String {
                        let value = UnsafeBufferPointer(rebasing: bytes[starts[k]..<(starts[k + 1] - 1)])
                        // NULL and '' are one group, as the rollup's coalesce(…, '') makes them.
                        if value.count == 2 && value[0] == backslash && value[1] == 0x4E { return "" }
                        guard value.contains(backslash) else { return String(decoding: value, as: UTF8.self) }
                        var unescaped: [UInt8] = []
                        var j = 0
                        while j < value.count {
                            if value[j] == backslash, j + 1 < value.count {
                                switch value[j + 1] {
                                case 0x74: unescaped.append(tab)
                                case 0x6E: unescaped.append(newline)
                                case 0x72: unescaped.append(0x0D)
                                default: unescaped.append(value[j + 1])
                                }
                                j += 2
                            } else {
                                unescaped.append(value[j])
                                j += 1
                            }
                        }
                        return String(decoding: unescaped, as: UTF8.self)
                    }
                    let key = Key(
                        hour: String(decoding: UnsafeBufferPointer(rebasing: bytes[hour]), as: UTF8.self), subscription: text(4), product: text(5),
                        team: text(6), costCenter: text(7), backend: text(8), deployment: text(9), model: text(10), usageSource: text(20))
                    if let known = byKey[key] {
                        group = known
                    } else {
                        guard let hourStart = hourStart(time) else { return nil }
                        group = rollup.groups.count
                        rollup.groups.append(Group(key: key, hourStart: hourStart))
                        byKey[key] = group
                    }
                    byHash[hash, default: []].append(representatives.count)
                    representatives.append((time, columns, source))
                    rawToGroup.append(group)
                }
                rollup.groups[group].sums.requests += 1
                rollup.groups[group].sums.prompt += counts.0
                rollup.groups[group].sums.completion += counts.1
                rollup.groups[group].sums.total += counts.2
                rollup.groups[group].sums.cached += counts.3
                rollup.groups[group].sums.reasoning += counts.4
                rollup.rows += 1
            }
            return rollup
        }
    }
}
