import Foundation
import Logging
import Synchronization
import Testing
import TollgateCore
import TollgateGateway
import TollgateStore
import TollgateStoreMemory

/// The usage writer on the in-memory ledger (`UsageEventRepository`): the spool's guarantees, without a database.
struct UsageWriterMemoryTests {
    static let logger = Logger(label: "test")

    static func event(_ n: Int) -> UsageEvent {
        let start = Date(timeIntervalSince1970: 1_793_000_000 + Double(n))
        return UsageEvent(
            requestID: UUIDv7.make(at: start), startedAt: start, endedAt: start, subscription: "sub-a", backend: "fake", model: "gpt-4o-mini",
            route: "chat.completions", httpStatus: 200, streamed: false, usage: TokenUsage(promptTokens: 10, completionTokens: 5),
            usageSource: .reported)
    }

    struct Down: Error {}

    @Test func whatIsSpooledWhileTheLedgerFailsLandsOnceItRecovers() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("spool-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let ledger = InMemoryUsageEvents()
        ledger.failure.withLock { $0 = Down() }
        let writer = UsageWriter(spool: try UsageSpool(directory: directory), store: ledger, logger: Self.logger)
        let events = (0..<25).map(Self.event)
        for event in events[..<20] { writer.record(event) }
        #expect(await writer.flush() == false)
        #expect(ledger.stored.isEmpty)
        let spooled = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".copy") }
        #expect(!spooled.isEmpty)  // kept on disk for the next try

        ledger.failure.withLock { $0 = nil }
        for event in events[20...] { writer.record(event) }
        #expect(await writer.flush())
        #expect(ledger.stored.count == 25)
        #expect(Set(ledger.stored.keys) == Set(events.map(\.requestID)))
        let left = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".copy") }
        #expect(left.isEmpty)
    }
}
