import Foundation
import Logging
import NIOCore
import PostgresNIO
import TollgateCore

/// Lands usage events in `usage_events` and keeps `usage_hourly` in step, idempotently by request id.
///
/// Events travel as lines of PostgreSQL's COPY text format: the gateway's durable spool stores exactly these lines,
/// so replaying a spool file is a straight COPY with no decoding in between.
public struct UsageStore: Sendable {
    public let client: PostgresClient
    public init(client: PostgresClient) { self.client = client }

    /// Columns of the staging table, in COPY order. Times travel as integer microseconds since the Unix epoch,
    /// which is exact and cheap to format.
    static let stagingColumns = [
        "request_id", "response_id", "started_us", "ended_us", "subscription_id", "product", "team", "cost_center",
        "backend", "deployment", "model", "route", "http_status", "latency_ms", "streamed", "prompt_tokens",
        "completion_tokens", "total_tokens", "cached_tokens", "reasoning_tokens", "usage_source", "source",
    ]

    /// One event as a COPY text line, newline included.
    public static func copyLine(for event: UsageEvent) -> String {
        var line = ""
        line.reserveCapacity(320)
        func field(_ value: String?) {
            if !line.isEmpty { line.append("\t") }
            guard let value else { line.append("\\N"); return }
            for scalar in value.unicodeScalars {
                switch scalar {
                case "\\": line.append("\\\\")
                case "\t": line.append("\\t")
                case "\n": line.append("\\n")
                case "\r": line.append("\\r")
                default: line.unicodeScalars.append(scalar)
                }
            }
        }
        func number(_ value: Int) {
            if !line.isEmpty { line.append("\t") }
            line.append(String(value))
        }
        field(event.requestID.uuidString)
        field(event.responseID)
        number(microseconds(event.startedAt))
        number(microseconds(event.endedAt))
        field(event.subscription.rawValue)
        field(event.product)
        field(event.team)
        field(event.costCenter)
        field(event.backend)
        field(event.deployment)
        field(event.model)
        field(event.route)
        number(event.httpStatus)
        number(event.latencyMilliseconds)
        field(event.streamed ? "t" : "f")
        number(event.usage.promptTokens)
        number(event.usage.completionTokens)
        number(event.usage.totalTokens)
        number(event.usage.cachedPromptTokens)
        number(event.usage.reasoningTokens)
        field(event.usageSource.rawValue)
        field(event.source)
        line.append("\n")
        return line
    }

    static func microseconds(_ date: Date) -> Int {
        Int((date.timeIntervalSince1970 * 1_000_000).rounded())
    }

    /// Inserts events; rows whose request id is already stored are skipped.
    /// - Returns: how many rows were new.
    @discardableResult
    public func insert(_ events: [UsageEvent], logger: Logger) async throws -> Int {
        guard !events.isEmpty else { return 0 }
        var buffer = ByteBuffer()
        for event in events { buffer.writeString(Self.copyLine(for: event)) }
        return try await insert(copyText: [buffer], logger: logger)
    }

    /// Inserts pre-encoded COPY text (whole lines) in one transaction: COPY into a session-local staging table, then
    /// move the rows that are new into the ledger and add exactly those to the hourly rollup.
    /// - Returns: how many rows were new.
    @discardableResult
    public func insert(copyText chunks: [ByteBuffer], logger: Logger) async throws -> Int {
        try await client.withTransaction(logger: logger) { tx in
            try await tx.query("""
                CREATE TEMP TABLE IF NOT EXISTS usage_stage (
                    request_id uuid, response_id text, started_us bigint, ended_us bigint, subscription_id text, product text,
                    team text, cost_center text, backend text, deployment text, model text, route text, http_status smallint,
                    latency_ms integer, streamed boolean, prompt_tokens integer, completion_tokens integer, total_tokens integer,
                    cached_tokens integer, reasoning_tokens integer, usage_source text, source text) ON COMMIT DELETE ROWS
                """, logger: logger)
            try await tx.copyFrom(table: "usage_stage", columns: Self.stagingColumns, logger: logger) { writer in
                for chunk in chunks { try await writer.write(chunk) }
            }
            let rows = try await tx.query("""
                WITH inserted AS (
                    INSERT INTO usage_events (request_id, response_id, started_at, ended_at, subscription_id, product, team, cost_center,
                        backend, deployment, model, route, http_status, latency_ms, streamed, prompt_tokens, completion_tokens,
                        total_tokens, cached_tokens, reasoning_tokens, usage_source, source)
                    SELECT request_id, response_id,
                        timestamptz 'epoch' + started_us * interval '1 microsecond', timestamptz 'epoch' + ended_us * interval '1 microsecond',
                        subscription_id, product, team, cost_center, backend, deployment, model, route, http_status, latency_ms, streamed,
                        prompt_tokens, completion_tokens, total_tokens, cached_tokens, reasoning_tokens, usage_source, source
                    FROM usage_stage
                    ON CONFLICT (request_id) DO NOTHING
                    RETURNING started_at, subscription_id, product, team, cost_center, backend, deployment, model, usage_source,
                        prompt_tokens, completion_tokens, total_tokens, cached_tokens, reasoning_tokens
                ), rolled AS (
                    INSERT INTO usage_hourly AS h (hour_start, subscription_id, product, team, cost_center, backend, deployment, model, usage_source,
                        requests, prompt_tokens, completion_tokens, total_tokens, cached_tokens, reasoning_tokens)
                    SELECT date_trunc('hour', started_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', subscription_id, coalesce(product, ''),
                        coalesce(team, ''), coalesce(cost_center, ''), backend, coalesce(deployment, ''), model, usage_source,
                        count(*), sum(prompt_tokens), sum(completion_tokens), sum(total_tokens), sum(cached_tokens), sum(reasoning_tokens)
                    FROM inserted GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
                    ON CONFLICT (hour_start, subscription_id, product, team, cost_center, backend, deployment, model, usage_source) DO UPDATE SET
                        requests = h.requests + EXCLUDED.requests, prompt_tokens = h.prompt_tokens + EXCLUDED.prompt_tokens,
                        completion_tokens = h.completion_tokens + EXCLUDED.completion_tokens, total_tokens = h.total_tokens + EXCLUDED.total_tokens,
                        cached_tokens = h.cached_tokens + EXCLUDED.cached_tokens, reasoning_tokens = h.reasoning_tokens + EXCLUDED.reasoning_tokens
                    RETURNING 1
                )
                SELECT count(*) FROM inserted
                """, logger: logger)
            let inserted = try await rows.collect().first?.decode(Int.self) ?? 0
            if inserted > 0 {
                // Wakes whoever watches usage (the rules engine) on every instance; delivered at commit.
                try await tx.query("SELECT pg_notify('tollgate_usage', \(String(inserted)))", logger: logger)
            }
            return inserted
        }
    }
}
