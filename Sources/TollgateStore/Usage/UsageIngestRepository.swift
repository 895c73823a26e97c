import Foundation
import Logging
import PostgresNIO

/// Usage sent by other gateways (`POST /admin/v1/usage-events`): validated event by event, the accepted ones written
/// idempotently on their ids. `PostgresUsageIngest` is the PostgreSQL implementation.
public protocol UsageIngestRepository: Sendable {
    /// - Throws: `IngestError` when the batch as a whole is unusable (empty, too large, bad source); per-event problems
    ///   are reported in the result's rejections instead.
    func ingest(body: Data, contentType: String?, source: String, now: Date, logger: Logger) async throws -> IngestResult
}

/// `UsageIngestRepository` over `ExternalUsageIngest` and the usage ledger.
public struct PostgresUsageIngest: UsageIngestRepository {
    let client: PostgresClient

    public func ingest(body: Data, contentType: String?, source: String, now: Date, logger: Logger) async throws -> IngestResult {
        try await ExternalUsageIngest.ingest(body: body, contentType: contentType, source: source, now: now, client: client, logger: logger)
    }
}
