import Foundation
import Logging
import Synchronization
import Testing
import TollgateCore
import TollgateStore

/// What the maintainer asked of the ledger, in order; retention answers with `refusal` when set.
final class RecordingLedger: UsageLedger {
    let calls = Mutex<[String]>([])
    let refusal: RetentionError?
    init(refusal: RetentionError? = nil) { self.refusal = refusal }

    func createPartitions(now: Date, monthsAhead: Int, logger: Logger) async throws -> [String] {
        calls.withLock { $0.append("create \(now.iso8601) +\(monthsAhead)") }
        return []
    }

    func months(logger: Logger) async throws -> [LedgerMonth] { [] }

    func applyRetention(keepMonths: Int, now: Date, dryRun: Bool, logger: Logger) async throws -> RetentionOutcome {
        calls.withLock { $0.append("retain \(keepMonths) dry-run \(dryRun)") }
        if let refusal { throw refusal }
        return RetentionOutcome(cutoff: now, dropped: [], dryRun: dryRun)
    }
}

struct UsagePartitionMaintainerTests {
    static let now = Date(iso8601: "2026-12-04T01:00:00Z")!

    @Test func makesThePartitionsAheadAndRetainsOnlyWhenConfigured() async {
        let keepAll = RecordingLedger()
        await UsagePartitionMaintainer(ledger: keepAll, retentionMonths: nil, now: { Self.now }, logger: Logger(label: "test")).maintain()
        #expect(keepAll.calls.withLock { $0 } == ["create 2026-12-04T01:00:00.000Z +3"])

        let keepThirteen = RecordingLedger()
        await UsagePartitionMaintainer(ledger: keepThirteen, retentionMonths: 13, now: { Self.now }, logger: Logger(label: "test")).maintain()
        #expect(keepThirteen.calls.withLock { $0 } == ["create 2026-12-04T01:00:00.000Z +3", "retain 13 dry-run false"])
    }

    @Test func anOpenMonthIsARefusalThatDoesNotStopTheService() async {
        let ledger = RecordingLedger(refusal: .openMonths(["2025-10"], keepMonths: 13))
        let maintainer = UsagePartitionMaintainer(ledger: ledger, retentionMonths: 13, now: { Self.now }, logger: Logger(label: "test"))
        await maintainer.maintain()  // does not throw: logged, tried again at the next run
        await maintainer.maintain()
        #expect(ledger.calls.withLock { $0 }.count == 4)
    }
}
