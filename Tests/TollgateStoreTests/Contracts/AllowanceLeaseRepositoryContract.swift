import Foundation
import Logging
import Testing
import TollgateCore
import TollgateStore
import TollgateStoreMemory
import TollgateTestSupport

/// The checks every `AllowanceLeaseRepository` passes: the in-memory one and PostgreSQL's.
enum AllowanceLeaseRepositoryContract {
    static let logger = Logger(label: "contract")
    /// 2026-03-14 12:00:00 UTC, a minute's start.
    static let minute = Date(timeIntervalSince1970: 1_773_489_600)

    static func slice(_ amount: Int, scope: String = "subscription:a", kind: AllowanceSlice.Kind = .tokensPerMinute, window: Date = minute, allowance: Int = 100)
        -> AllowanceSlice
    {
        AllowanceSlice(kind: kind, scope: scope, window: window, allowance: allowance, amount: amount)
    }

    static func grantsUpToTheAllowanceThenWhatIsLeftThenNothing(_ repository: any AllowanceLeaseRepository) async throws {
        let first = try await repository.lease([slice(60)], logger: logger)
        #expect(first.map(\.granted) == [60] && first.map(\.left) == [40])
        let second = try await repository.lease([slice(60)], logger: logger)
        #expect(second.map(\.granted) == [40] && second.map(\.left) == [0])
        #expect(try await repository.lease([slice(1)], logger: logger).map(\.granted) == [0])
    }

    static func windowsScopesAndKindsAreSeparateAndABatchIsAnsweredInOrder(_ repository: any AllowanceLeaseRepository) async throws {
        let granted = try await repository.lease(
            [
                slice(100), slice(30, scope: "subscription:b"), slice(100, kind: .requestsPerMinute, allowance: 5),
                slice(70, window: minute.addingTimeInterval(60)), slice(1),
            ], logger: logger)
        #expect(granted.map(\.granted) == [100, 30, 5, 70, 0])
    }

    static func whatIsGivenBackCanBeLeasedAgain(_ repository: any AllowanceLeaseRepository) async throws {
        _ = try await repository.lease([slice(100)], logger: logger)
        try await repository.giveBack([slice(25)], logger: logger)
        #expect(try await repository.lease([slice(100)], logger: logger).map(\.granted) == [25])
        // Giving back more than was granted cannot make room beyond the allowance.
        try await repository.giveBack([slice(500)], logger: logger)
        #expect(try await repository.lease([slice(500)], logger: logger).map(\.granted) == [100])
    }

    static func aLimitChangedMidMinuteAppliesToWhatIsStillToBeGranted(_ repository: any AllowanceLeaseRepository) async throws {
        _ = try await repository.lease([slice(60)], logger: logger)
        #expect(try await repository.lease([slice(60, allowance: 80)], logger: logger).map(\.granted) == [20])
        #expect(try await repository.lease([slice(60, allowance: 50)], logger: logger).map(\.granted) == [0])
    }

    static func purgeForgetsOldWindows(_ repository: any AllowanceLeaseRepository) async throws {
        _ = try await repository.lease([slice(100), slice(100, window: minute.addingTimeInterval(60))], logger: logger)
        try await repository.purge(before: minute.addingTimeInterval(60), logger: logger)
        // The old window starts afresh (forgotten), the newer one is still used up.
        let granted = try await repository.lease([slice(100), slice(100, window: minute.addingTimeInterval(60))], logger: logger)
        #expect(granted.map(\.granted) == [100, 0])
    }

    /// Many instances asking at once: the sum granted is exactly the allowance, never more.
    static func concurrentLeasesNeverGrantMoreThanTheAllowance(_ repository: any AllowanceLeaseRepository) async throws {
        let total = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<16 {
                group.addTask {
                    var got = 0
                    for _ in 0..<10 { got += try await repository.lease([slice(7, allowance: 500)], logger: logger)[0].granted }
                    return got
                }
            }
            return try await group.reduce(0, +)
        }
        #expect(total == 500)  // 16 × 10 × 7 = 1120 asked
    }
}

@Suite struct InMemoryAllowanceLeaseRepositoryContractTests {
    @Test func grantsUpToTheAllowanceThenWhatIsLeftThenNothing() async throws {
        try await AllowanceLeaseRepositoryContract.grantsUpToTheAllowanceThenWhatIsLeftThenNothing(InMemoryAllowanceLeaseRepository())
    }
    @Test func windowsScopesAndKindsAreSeparate() async throws {
        try await AllowanceLeaseRepositoryContract.windowsScopesAndKindsAreSeparateAndABatchIsAnsweredInOrder(InMemoryAllowanceLeaseRepository())
    }
    @Test func whatIsGivenBackCanBeLeasedAgain() async throws {
        try await AllowanceLeaseRepositoryContract.whatIsGivenBackCanBeLeasedAgain(InMemoryAllowanceLeaseRepository())
    }
    @Test func aLimitChangedMidMinute() async throws {
        try await AllowanceLeaseRepositoryContract.aLimitChangedMidMinuteAppliesToWhatIsStillToBeGranted(InMemoryAllowanceLeaseRepository())
    }
    @Test func purgeForgetsOldWindows() async throws {
        try await AllowanceLeaseRepositoryContract.purgeForgetsOldWindows(InMemoryAllowanceLeaseRepository())
    }
    @Test func concurrentLeasesNeverGrantMoreThanTheAllowance() async throws {
        try await AllowanceLeaseRepositoryContract.concurrentLeasesNeverGrantMoreThanTheAllowance(InMemoryAllowanceLeaseRepository())
    }
}

@Suite(.freshDatabasePerTest) struct PostgresAllowanceLeaseRepositoryContractTests {
    static func withRepository(_ body: @Sendable (any AllowanceLeaseRepository) async throws -> Void) async throws {
        try await PostgresDatabase.withDatabase(try await TestDatabase.location(), logger: TestDatabase.logger) { database in
            try await body(database.allowanceLeases)
        }
    }

    @Test func grantsUpToTheAllowanceThenWhatIsLeftThenNothing() async throws {
        try await Self.withRepository { try await AllowanceLeaseRepositoryContract.grantsUpToTheAllowanceThenWhatIsLeftThenNothing($0) }
    }
    @Test func windowsScopesAndKindsAreSeparate() async throws {
        try await Self.withRepository { try await AllowanceLeaseRepositoryContract.windowsScopesAndKindsAreSeparateAndABatchIsAnsweredInOrder($0) }
    }
    @Test func whatIsGivenBackCanBeLeasedAgain() async throws {
        try await Self.withRepository { try await AllowanceLeaseRepositoryContract.whatIsGivenBackCanBeLeasedAgain($0) }
    }
    @Test func aLimitChangedMidMinute() async throws {
        try await Self.withRepository { try await AllowanceLeaseRepositoryContract.aLimitChangedMidMinuteAppliesToWhatIsStillToBeGranted($0) }
    }
    @Test func purgeForgetsOldWindows() async throws {
        try await Self.withRepository { try await AllowanceLeaseRepositoryContract.purgeForgetsOldWindows($0) }
    }
    @Test func concurrentLeasesNeverGrantMoreThanTheAllowance() async throws {
        try await Self.withRepository { try await AllowanceLeaseRepositoryContract.concurrentLeasesNeverGrantMoreThanTheAllowance($0) }
    }
}
