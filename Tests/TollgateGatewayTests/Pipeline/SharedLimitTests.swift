import Foundation
import HTTPTypes
import Logging
import Synchronization
import Testing
import TollgateCore
import TollgateStore
import TollgateStoreMemory

@testable import TollgateGateway

/// The minute limits shared by every instance: each instance is a `TokenLimiter` with its own `AllowanceLeases`, all
/// leasing from one allowance (in memory here; `SharedLimitPostgresTests` runs instances on PostgreSQL).
@Suite struct SharedLimitTests {
    /// 2026-03-14 12:00:10 UTC: ten seconds into a minute.
    static let start = Date(timeIntervalSince1970: 1_773_489_610)

    struct Instance {
        let leases: AllowanceLeases
        let limiter: TokenLimiter

        init(_ repository: any AllowanceLeaseRepository, clock: LimitTests.Clock, sliceFraction: Double = 0.1) {
            leases = AllowanceLeases(repository: repository, sliceFraction: sliceFraction, logger: Logger(label: "test"), now: { clock.now })
            limiter = TokenLimiter(leases: leases, now: { clock.now })
        }

        /// What the admit step does: the work a limit asks for (at most twice), then the reservation.
        func admit(_ limits: ProductLimits, prompt: Int, cap: Int = 0, subscription: SubscriptionID = "sub-a") async -> Result<Reservation, GatewayError> {
            let id = UUID()
            for _ in 0..<2 {
                guard let work = limiter.workBeforeReserving(subscription, limits: limits, requestID: id, promptTokens: prompt, completionCap: cap)
                else { break }
                await work()
            }
            do throws(GatewayError) {
                return .success(try limiter.reserve(subscription, limits: limits, requestID: id, promptTokens: prompt, completionCap: cap).reservation)
            } catch {
                return .failure(error)
            }
        }
    }

    @Test func twoInstancesTogetherAdmitNoMoreThanTheLimitAndNearlyAllOfIt() async throws {
        let clock = LimitTests.Clock(Self.start)
        let allowance = InMemoryAllowanceLeaseRepository()
        let instances = [Instance(allowance, clock: clock), Instance(allowance, clock: clock)]
        let limits = ProductLimits(tokensPerMinute: 1_000)
        var admitted = 0
        var refusedInARow = 0
        var turn = 0
        // Alternate between the instances until both refuse (bounded: a limiter that never refuses fails, not hangs).
        while refusedInARow < 2 && turn < 200 {
            switch await instances[turn % 2].admit(limits, prompt: 30) {
            case .success(let reservation):
                instances[turn % 2].limiter.settle(reservation, used: 30)
                admitted += 30
                refusedInARow = 0
            case .failure(let error):
                #expect(error.code == "tokens_per_minute_exceeded" && error.headers[HTTPField.Name("Retry-After")!] == "50")  // the next minute, 50 s away
                refusedInARow += 1
            }
            turn += 1
        }
        // Each local sliding window would have let 1000 through per instance; the shared one lets 1000 through in all,
        // less what is stranded in slices smaller than a request (under 30 an instance).
        #expect(admitted <= 1_000 && admitted > 1_000 - 2 * 30)
        #expect(allowance.granted(.tokensPerMinute, scope: "subscription:sub-a", window: AllowanceLeases.window(of: Self.start)) <= 1_000)
        // The next minute starts afresh.
        clock.advance(seconds: 50)
        guard case .success = await instances[0].admit(limits, prompt: 30) else { Issue.record("refused in a new minute"); return }
    }

    @Test func concurrentRequestsOnManyInstancesCannotOvershoot() async throws {
        let clock = LimitTests.Clock(Self.start)
        let allowance = InMemoryAllowanceLeaseRepository()
        let instances = (0..<4).map { _ in Instance(allowance, clock: clock) }
        let limits = ProductLimits(tokensPerMinute: 5_000)
        let admitted = await withTaskGroup(of: Int.self) { group in
            for instance in instances {
                for _ in 0..<8 {
                    group.addTask {
                        var mine = 0
                        for _ in 0..<40 {
                            if case .success(let reservation) = await instance.admit(limits, prompt: 20, cap: 5) {
                                instance.limiter.settle(reservation, used: 25)
                                mine += 25
                            }
                        }
                        return mine
                    }
                }
            }
            return await group.reduce(0, +)
        }
        #expect(admitted <= 5_000)  // 4 × 8 × 40 × 25 = 32,000 asked for
        #expect(admitted >= 5_000 - 4 * 25)
    }

    @Test func aRequestWaitsForALeaseOnlyWhenItsInstanceSliceIsTooSmall() async throws {
        let clock = LimitTests.Clock(Self.start)
        let allowance = InMemoryAllowanceLeaseRepository()
        let instance = Instance(allowance, clock: clock)
        let limits = ProductLimits(tokensPerMinute: 1_000)
        let id = UUID()
        // Nothing held yet: the first request needs a lease (a 100-token slice, a tenth of the limit).
        #expect(instance.limiter.workBeforeReserving("sub-a", limits: limits, requestID: id, promptTokens: 20, completionCap: 0) != nil)
        guard case .success(let first) = await instance.admit(limits, prompt: 20) else { Issue.record("refused"); return }
        let window = AllowanceLeases.window(of: Self.start)
        #expect(allowance.granted(.tokensPerMinute, scope: "subscription:sub-a", window: window) == 100)
        // The slice covers the next ones: no work, no lease.
        #expect(instance.limiter.workBeforeReserving("sub-a", limits: limits, requestID: id, promptTokens: 20, completionCap: 0) == nil)
        // What a request reserved and did not use goes back into the slice.
        instance.limiter.settle(first, used: 5)
        for _ in 0..<4 { guard case .success = await instance.admit(limits, prompt: 20) else { Issue.record("refused"); return } }
        #expect(allowance.granted(.tokensPerMinute, scope: "subscription:sub-a", window: window) == 100)  // 5 + 4 × 20 = 85
        // The keeper tops the slice up before it runs out, off the request path.
        await instance.leases.maintain(at: clock.now)
        #expect(allowance.granted(.tokensPerMinute, scope: "subscription:sub-a", window: window) == 200)
    }

    @Test func anIdleInstanceGivesItsSliceBackSoAnotherCanUseIt() async throws {
        let clock = LimitTests.Clock(Self.start)
        let allowance = InMemoryAllowanceLeaseRepository()
        let (a, b) = (Instance(allowance, clock: clock, sliceFraction: 0.5), Instance(allowance, clock: clock, sliceFraction: 0.5))
        let limits = ProductLimits(tokensPerMinute: 100)
        guard case .success = await a.admit(limits, prompt: 10) else { Issue.record("refused"); return }  // a holds 40 more of its 50
        guard case .success = await b.admit(limits, prompt: 50) else { Issue.record("refused"); return }  // b takes the other 50
        guard case .failure = await b.admit(limits, prompt: 30) else { Issue.record("admitted beyond the allowance"); return }
        // A second later a has not drawn on its slice: it gives the 40 back, and b may lease them.
        clock.advance(seconds: 1.5)
        await a.leases.maintain(at: clock.now)
        await b.leases.maintain(at: clock.now)
        guard case .success = await b.admit(limits, prompt: 30) else { Issue.record("the given-back allowance was not leased"); return }
    }

    @Test func strictLeasesExactlyWhatEachRequestNeeds() async throws {
        let clock = LimitTests.Clock(Self.start)
        let allowance = InMemoryAllowanceLeaseRepository()
        let (a, b) = (Instance(allowance, clock: clock, sliceFraction: 0.5), Instance(allowance, clock: clock, sliceFraction: 0.5))
        let limits = ProductLimits(requestsPerMinute: 3, strict: true)
        // With slices of half the limit, a would hold 2 requests' worth and b could make one; strict leases one at a time.
        var admitted = 0
        for instance in [a, b, b, a] { if case .success = await instance.admit(limits, prompt: 0) { admitted += 1 } }
        #expect(admitted == 3)
        #expect(allowance.granted(.requestsPerMinute, scope: "subscription:sub-a", window: AllowanceLeases.window(of: Self.start)) == 3)
    }

    /// Lets the first lease through to the allowance at once but holds its answer back, so that a lease asked for
    /// after it could be answered first.
    final class SlowFirstAnswer: AllowanceLeaseRepository {
        let inner: InMemoryAllowanceLeaseRepository
        let calls = Mutex(0)
        init(_ inner: InMemoryAllowanceLeaseRepository) { self.inner = inner }

        func lease(_ slices: [AllowanceSlice], logger: Logger) async throws -> [(granted: Int, left: Int)] {
            let results = try await inner.lease(slices, logger: logger)
            if calls.withLock({ $0 += 1; return $0 }) == 1 { try await Task.sleep(for: .milliseconds(300)) }
            return results
        }
        func giveBack(_ slices: [AllowanceSlice], logger: Logger) async throws { try await inner.giveBack(slices, logger: logger) }
        func purge(before instant: Date, logger: Logger) async throws { try await inner.purge(before: instant, logger: logger) }
    }

    /// Leases are applied in the order the allowance answered them, so what a draw reports left of the minute is the
    /// latest figure: 1000 - 20 leased + 15 still held here = 995 (applied out of order it would be 1005).
    @Test func leasesAreAppliedInTheOrderTheAllowanceCutThem() async throws {
        let leases = AllowanceLeases(repository: SlowFirstAnswer(InMemoryAllowanceLeaseRepository()), logger: Logger(label: "test"))
        let key = AllowanceLeases.Key(kind: .tokensPerMinute, scope: "subscription:sub-a", window: AllowanceLeases.window(of: Self.start))
        async let first: Void = leases.acquire(10, key: key, allowance: 1_000, strict: true, at: Self.start)
        try await Task.sleep(for: .milliseconds(50))
        async let second: Void = leases.acquire(10, key: key, allowance: 1_000, strict: true, at: Self.start)
        _ = await (first, second)
        guard case .taken(let remaining) = leases.draw(5, key: key, allowance: 1_000, strict: true, at: Self.start) else {
            Issue.record("nothing was leased")
            return
        }
        #expect(remaining == 995)
    }

    @Test func withPostgreSQLUnreachableEachProductFailsOpenOrClosedAsConfigured() async throws {
        let clock = LimitTests.Clock(Self.start)
        let allowance = InMemoryAllowanceLeaseRepository()
        let instance = Instance(allowance, clock: clock)
        let open = ProductLimits(tokensPerMinute: 1_000)
        let closed = ProductLimits(tokensPerMinute: 1_000, failureMode: .closed)
        // While it answers, the instance leases a slice (100) and keeps admitting on it once PostgreSQL is gone.
        guard case .success = await instance.admit(open, prompt: 50) else { Issue.record("refused"); return }
        allowance.failing = true
        guard case .success = await instance.admit(open, prompt: 50) else { Issue.record("refused on what it holds"); return }
        #expect(!instance.leases.degraded)  // it did not need PostgreSQL for that
        // Beyond what it holds: open admits, closed refuses with 503.
        guard case .success = await instance.admit(open, prompt: 50) else { Issue.record("open refused"); return }
        #expect(instance.leases.degraded)
        guard case .failure(let error) = await instance.admit(closed, prompt: 50, subscription: "sub-b") else { Issue.record("closed admitted"); return }
        #expect(error.status == .serviceUnavailable && error.code == "limits_unavailable")
        // PostgreSQL back: a second later a lease is tried again, and the limit holds again.
        allowance.failing = false
        clock.advance(seconds: 1.1)
        guard case .success = await instance.admit(closed, prompt: 50, subscription: "sub-b") else { Issue.record("refused after recovery"); return }
        #expect(!instance.leases.degraded)
    }
}
