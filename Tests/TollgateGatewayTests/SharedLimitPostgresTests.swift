import Foundation
import Testing
import TollgateCore
import TollgateStore
import TollgateTestSupport

@testable import TollgateGateway

/// The shared minute limits on a real PostgreSQL: three instances, each with its own pool and leases, admitting
/// concurrently for one subscription; together they admit no more than the limit.
@Suite(.freshDatabasePerTest) struct SharedLimitPostgresTests {
    @Test func threeInstancesOnPostgreSQLHoldOneLimitTogether() async throws {
        let location = try await TestDatabase.location()
        try await PostgresDatabase.withDatabase(location, logger: TestDatabase.logger) { a in
            try await PostgresDatabase.withDatabase(location, logger: TestDatabase.logger) { b in
                try await PostgresDatabase.withDatabase(location, logger: TestDatabase.logger) { c in
                    // A minute well away from its end, so every request falls in the same window.
                    let clock = LimitTests.Clock(Date(timeIntervalSince1970: (Date().timeIntervalSince1970 / 60).rounded(.down) * 60 + 5))
                    let instances = [a, b, c].map { SharedLimitTests.Instance($0.allowanceLeases, clock: clock) }
                    let limits = ProductLimits(tokensPerMinute: 4_000, requestsPerMinute: 100)
                    let (tokens, requests) = await withTaskGroup(of: (Int, Int).self) { group in
                        for instance in instances {
                            for _ in 0..<4 {
                                group.addTask {
                                    var (tokens, requests) = (0, 0)
                                    for _ in 0..<15 {
                                        if case .success(let reservation) = await instance.admit(limits, prompt: 40, cap: 10) {
                                            instance.limiter.settle(reservation, used: 30)
                                            tokens += 30
                                            requests += 1
                                        }
                                    }
                                    return (tokens, requests)
                                }
                            }
                        }
                        return await group.reduce((0, 0)) { ($0.0 + $1.0, $0.1 + $1.1) }
                    }
                    // 3 × 4 × 15 = 180 requests asked for: the 100 requests a minute bind first. Never more than the limit;
                    // at worst less by what the other instances hold while one is refused: N × slice = 3 × 10.
                    #expect(requests <= 100 && requests >= 100 - 3 * 10)
                    #expect(tokens <= 4_000)
                    // What PostgreSQL granted in all: a zero-sized lease reads what is left of each allowance.
                    let window = AllowanceLeases.window(of: clock.now)
                    let left = try await a.allowanceLeases.lease(
                        [
                            AllowanceSlice(kind: .requestsPerMinute, scope: "subscription:sub-a", window: window, allowance: 100, amount: 0),
                            AllowanceSlice(kind: .tokensPerMinute, scope: "subscription:sub-a", window: window, allowance: 4_000, amount: 0),
                        ], logger: TestDatabase.logger
                    ).map(\.left)
                    #expect(left[0] >= 0 && left[0] <= 100 - requests && left[1] >= 0)
                    #expect(!instances.contains { $0.leases.degraded })
                }
            }
        }
    }
}
