import Foundation
import Logging
import NIOCore
import PostgresNIO
import Testing
import TollgateCore
import TollgateStore
import TollgateStoreMemory
import TollgateTestSupport

/// One `UsageEventRepository` and a way to read back what it stored.
protocol UsageEventFixture {
    var repository: any UsageEventRepository { get }
    /// The prompt tokens of each stored request id.
    func storedPromptTokens() async throws -> [UUID: Int]
}

/// The checks every `UsageEventRepository` passes: the in-memory one and PostgreSQL's (`UsageStore`).
enum UsageEventRepositoryContract {
    static let logger = Logger(label: "contract")
    static let november = Date(iso8601: "2026-11-30T23:59:59.500Z")!
    static let december = Date(iso8601: "2026-12-01T00:00:00.500Z")!

    static func event(_ id: UUID, at start: Date, prompt: Int) -> UsageEvent {
        UsageEvent(
            requestID: id, startedAt: start, endedAt: start, subscription: "contract", backend: "openai", model: "gpt-4o",
            route: "chat.completions", httpStatus: 200, streamed: false, usage: TokenUsage(promptTokens: prompt, completionTokens: 1),
            usageSource: .reported)
    }

    static func lines(_ events: [UsageEvent]) -> [ByteBuffer] { [ByteBuffer(string: events.map(UsageStore.copyLine(for:)).joined())] }

    static func landsEachRequestIDOnceWhateverTheBatchOrMonth(_ fixture: some UsageEventFixture) async throws {
        let gatewayNovember = event(UUIDv7.make(at: november), at: november, prompt: 1)
        let gatewayDecember = event(UUIDv7.make(at: december), at: december, prompt: 2)
        let ingested = event(UUID(uuidString: "1b4e28ba-2fa1-41d2-883f-0016d3cca427")!, at: december, prompt: 4)
        let batch = [gatewayNovember, gatewayDecember, ingested]
        #expect(try await fixture.repository.insert(copyText: lines(batch), logger: logger) == 3)
        #expect(try await fixture.repository.insert(copyText: lines(batch), logger: logger) == 0)
        // The same ids with their times in the other month, beside a new one: only the new one lands.
        var moved = gatewayNovember
        moved.startedAt = december
        moved.endedAt = december
        var movedIngested = ingested
        movedIngested.startedAt = november
        movedIngested.endedAt = november
        let fresh = event(UUIDv7.make(at: december), at: december, prompt: 8)
        #expect(try await fixture.repository.insert(copyText: lines([moved, fresh, movedIngested]), logger: logger) == 1)
        let stored = try await fixture.storedPromptTokens()
        #expect(stored == [gatewayNovember.requestID: 1, gatewayDecember.requestID: 2, ingested.requestID: 4, fresh.requestID: 8])
    }

    static func theFirstLineOfAnIDRepeatedInABatchWins(_ fixture: some UsageEventFixture) async throws {
        let id = UUIDv7.make(at: december)
        let batch = [event(id, at: december, prompt: 10), event(id, at: december, prompt: 20)]
        #expect(try await fixture.repository.insert(copyText: lines(batch), logger: logger) == 1)
        #expect(try await fixture.storedPromptTokens() == [id: 10])
    }

    static func aBatchWithALineThatIsNotAUsageRowLandsNothing(_ fixture: some UsageEventFixture) async throws {
        let good = event(UUIDv7.make(at: december), at: december, prompt: 3)
        var chunk = lines([good])[0]
        chunk.writeString("not a usage row\n")
        await #expect(throws: (any Error).self) { try await fixture.repository.insert(copyText: [chunk], logger: logger) }
        #expect(try await fixture.storedPromptTokens().isEmpty)
    }
}

@Suite struct InMemoryUsageEventRepositoryContractTests {
    struct Fixture: UsageEventFixture {
        let memory = InMemoryUsageEvents()
        var repository: any UsageEventRepository { memory }
        func storedPromptTokens() async throws -> [UUID: Int] {
            memory.stored.mapValues { line in Int(line.split(separator: "\t", omittingEmptySubsequences: false)[15]) ?? -1 }
        }
    }

    @Test func landsEachRequestIDOnceWhateverTheBatchOrMonth() async throws {
        try await UsageEventRepositoryContract.landsEachRequestIDOnceWhateverTheBatchOrMonth(Fixture())
    }
    @Test func theFirstLineOfAnIDRepeatedInABatchWins() async throws {
        try await UsageEventRepositoryContract.theFirstLineOfAnIDRepeatedInABatchWins(Fixture())
    }
    @Test func aBatchWithALineThatIsNotAUsageRowLandsNothing() async throws {
        try await UsageEventRepositoryContract.aBatchWithALineThatIsNotAUsageRowLandsNothing(Fixture())
    }
}

@Suite(.freshDatabasePerTest) struct PostgresUsageEventRepositoryContractTests {
    struct Fixture: UsageEventFixture {
        let client: PostgresClient
        var repository: any UsageEventRepository { UsageStore(client: client) }
        func storedPromptTokens() async throws -> [UUID: Int] {
            var stored: [UUID: Int] = [:]
            let rows = try await client.query("SELECT request_id, prompt_tokens FROM usage_events", logger: TestDatabase.logger)
            for try await (id, prompt) in rows.decode((UUID, Int).self) { stored[id] = prompt }
            return stored
        }
    }

    static func withFixture(_ body: @Sendable (Fixture) async throws -> Void) async throws {
        try await TestDatabase.withClient { client in
            _ = try await PostgresUsageLedger(client: client).createPartitions(
                now: UsageEventRepositoryContract.november, monthsAhead: 1, logger: TestDatabase.logger)
            try await body(Fixture(client: client))
        }
    }

    @Test func landsEachRequestIDOnceWhateverTheBatchOrMonth() async throws {
        try await Self.withFixture { try await UsageEventRepositoryContract.landsEachRequestIDOnceWhateverTheBatchOrMonth($0) }
    }
    @Test func theFirstLineOfAnIDRepeatedInABatchWins() async throws {
        try await Self.withFixture { try await UsageEventRepositoryContract.theFirstLineOfAnIDRepeatedInABatchWins($0) }
    }
    @Test func aBatchWithALineThatIsNotAUsageRowLandsNothing() async throws {
        try await Self.withFixture { try await UsageEventRepositoryContract.aBatchWithALineThatIsNotAUsageRowLandsNothing($0) }
    }
}
