import Foundation
import Logging
import PostgresNIO
import Testing
import TollgateCore
import TollgateGateway
import TollgateStore
import TollgateTestSupport

private func event(_ n: Int, subscription: SubscriptionID = "sub-a") -> UsageEvent {
    let start = Date(timeIntervalSince1970: 1_793_000_000 + Double(n))
    return UsageEvent(
        requestID: UUIDv7.make(at: start), startedAt: start, endedAt: start.addingTimeInterval(0.25), subscription: subscription, team: "search",
        backend: "fake", deployment: "gpt-4o-mini", model: "gpt-4o-mini", route: "chat.completions", httpStatus: 200, streamed: false,
        usage: TokenUsage(promptTokens: 10, completionTokens: 5), usageSource: .reported)
}

private func countRows(_ client: PostgresClient) async throws -> (rows: Int, tokens: Int) {
    let row = try await client.query("SELECT count(*)::bigint, coalesce(sum(total_tokens), 0)::bigint FROM usage_events", logger: TestDatabase.logger)
        .collect().first
    return try row.map { try $0.decode((Int, Int).self) } ?? (0, 0)
}

/// The spool and batched writer: nothing lost while PostgreSQL is down, nothing doubled by replays.
@Suite(.freshDatabasePerTest) struct UsageWriterTests {
    @Test func usageSpooledWhilePostgresIsDownIsLoadedWhenItReturns() async throws {
        let spoolDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("spool-\(UUID().uuidString)")
        // A writer whose database is unreachable: records still succeed (on disk) and loading fails.
        do {
            let dead = DatabaseLocation(host: "127.0.0.1", port: 1, username: "nobody", password: nil, database: "none", sslMode: .disable)
            let client = PostgresClient(configuration: dead.clientConfiguration(maximumConnections: 1), backgroundLogger: TestDatabase.logger)
            let spool = try UsageSpool(directory: spoolDirectory)
            let writer = UsageWriter(spool: spool, store: UsageStore(client: client), logger: TestDatabase.logger, loadTimeout: .seconds(2))
            for n in 0..<25 { writer.record(event(n)) }
            let loaded = await withTaskGroup(of: Bool.self) { group in
                group.addTask { await client.run(); return false }
                let result = await writer.flush()
                group.cancelAll()
                return result
            }
            #expect(loaded == false)
            #expect(writer.isLoading == false)
        }
        // The next writer on the same spool (a restart) loads everything, once.
        try await TestDatabase.withClient { client in
            let writer = UsageWriter(spool: try UsageSpool(directory: spoolDirectory), store: UsageStore(client: client), logger: TestDatabase.logger)
            #expect(await writer.flush())
            let (rows, tokens) = try await countRows(client)
            #expect(rows == 25 && tokens == 375)
            let left = try FileManager.default.contentsOfDirectory(atPath: spoolDirectory.path).filter { $0.hasSuffix(".copy") }
            #expect(left.isEmpty)
        }
    }

    @Test func aSegmentReplayedAfterACrashDoesNotDoubleCount() async throws {
        let spoolDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("spool-\(UUID().uuidString)")
        try await TestDatabase.withClient { client in
            let events = (0..<10).map { event($0) }
            let writer = UsageWriter(spool: try UsageSpool(directory: spoolDirectory), store: UsageStore(client: client), logger: TestDatabase.logger)
            for e in events { writer.record(e) }
            #expect(await writer.flush())
            // A crash between COMMIT and deleting the segment leaves it behind: simulate by spooling the same rows again.
            let again = UsageWriter(spool: try UsageSpool(directory: spoolDirectory.appendingPathComponent("again")), store: UsageStore(client: client), logger: TestDatabase.logger)
            for e in events { again.record(e) }
            #expect(await again.flush())
            let (rows, tokens) = try await countRows(client)
            #expect(rows == 10 && tokens == 150)
            let hourly = try await client.query("SELECT sum(requests)::bigint, sum(total_tokens)::bigint FROM usage_hourly", logger: TestDatabase.logger)
                .collect().first?.decode((Int, Int).self)
            #expect(hourly?.0 == 10 && hourly?.1 == 150)
        }
    }

    @Test func aPartialLineLeftByACrashIsDroppedAndTheRestLoads() async throws {
        let spoolDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("spool-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: spoolDirectory, withIntermediateDirectories: true)
        let complete = UsageStore.copyLine(for: event(1)) + UsageStore.copyLine(for: event(2))
        let torn = String(UsageStore.copyLine(for: event(3)).prefix(40))
        try Data((complete + torn).utf8).write(to: spoolDirectory.appendingPathComponent("usage-00000000000000000007.copy.open"))
        try await TestDatabase.withClient { client in
            let writer = UsageWriter(spool: try UsageSpool(directory: spoolDirectory), store: UsageStore(client: client), logger: TestDatabase.logger)
            #expect(await writer.flush())
            #expect(try await countRows(client).rows == 2)
        }
    }

    @Test func twoProcessesCannotShareASpool() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("spool-\(UUID().uuidString)")
        let first = try UsageSpool(directory: directory)
        #expect(throws: UsageSpoolError.self) { _ = try UsageSpool(directory: directory) }
        _ = first
    }
}
