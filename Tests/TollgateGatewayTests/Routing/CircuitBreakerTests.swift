import Foundation
import Logging
import NIOHTTP1
import Testing
import TollgateCore
import TollgateStore

@testable import TollgateGateway

/// The breaker event by event: closed → open → half-open → closed or open again.
@Suite struct CircuitBreakerTests {
    static let t0 = Date(timeIntervalSince1970: 1_790_000_000)
    static let spec = CircuitBreakerSpec(failures: 3, windowSeconds: 10, openSeconds: 30)

    static func at(_ seconds: Double) -> Date { t0.addingTimeInterval(seconds) }

    @Test func failuresWithinTheWindowOpenItAndOlderOnesDoNotCount() {
        var breaker = CircuitBreaker(at: Self.t0)
        #expect(breaker.failed("HTTP 500", at: Self.at(0), spec: Self.spec) == nil)
        #expect(breaker.failed("HTTP 500", at: Self.at(5), spec: Self.spec) == nil)
        // The first failure is out of the window by now: two in it, still closed.
        #expect(breaker.failed("timeout", at: Self.at(11), spec: Self.spec) == nil)
        #expect(breaker.state == .closed && breaker.isAvailable(at: Self.at(11), spec: Self.spec))
        let opened = breaker.failed("unreachable", at: Self.at(12), spec: Self.spec)
        #expect(opened == .init(from: .closed, to: .open, reason: "3 failures in 10 s, the last unreachable"))
        #expect(breaker.openUntil == Self.at(42))
        #expect(!breaker.isAvailable(at: Self.at(41.9), spec: Self.spec))
        #expect(breaker.attempt(at: Self.at(41.9), spec: Self.spec).allowed == false)
        // A failure reported while open (a request sent before it opened) changes nothing.
        #expect(breaker.failed("HTTP 500", at: Self.at(20), spec: Self.spec) == nil && breaker.openUntil == Self.at(42))
    }

    @Test func afterTheOpenTimeOneProbeDecides() {
        var breaker = CircuitBreaker(at: Self.t0)
        for second in 0..<3 { _ = breaker.failed("HTTP 503", at: Self.at(Double(second)), spec: Self.spec) }
        // The first request after the open time is the probe; while it is out, nobody else may go.
        let (allowed, transition) = breaker.attempt(at: Self.at(33), spec: Self.spec)
        #expect(allowed && transition?.to == .halfOpen && breaker.state == .halfOpen)
        #expect(breaker.attempt(at: Self.at(34), spec: Self.spec).allowed == false)
        #expect(!breaker.isAvailable(at: Self.at(34), spec: Self.spec))
        // The probe fails: open again for the whole open time.
        #expect(breaker.failed("HTTP 503", at: Self.at(35), spec: Self.spec) == .init(from: .halfOpen, to: .open, reason: "probe failed: HTTP 503"))
        #expect(breaker.openUntil == Self.at(65))
        // The next probe succeeds: closed, with a clean count.
        #expect(breaker.attempt(at: Self.at(65), spec: Self.spec).allowed)
        #expect(breaker.succeeded(at: Self.at(66)) == .init(from: .halfOpen, to: .closed, reason: "probe succeeded"))
        #expect(breaker.state == .closed && breaker.since == Self.at(66))
        #expect(breaker.failed("HTTP 500", at: Self.at(67), spec: Self.spec) == nil)
        // Success while closed is no transition.
        #expect(breaker.succeeded(at: Self.at(68)) == nil)
    }

    @Test func aProbeThatNeverReportsLetsAnotherGoAfterTheOpenTime() {
        var breaker = CircuitBreaker(at: Self.t0)
        for second in 0..<3 { _ = breaker.failed("timeout", at: Self.at(Double(second)), spec: Self.spec) }
        #expect(breaker.attempt(at: Self.at(32), spec: Self.spec).allowed)
        #expect(breaker.attempt(at: Self.at(61), spec: Self.spec).allowed == false)
        #expect(breaker.attempt(at: Self.at(62), spec: Self.spec).allowed)
    }
}

@Suite struct RetryAfterTests {
    static let now = Date(timeIntervalSince1970: 1_790_000_000)

    @Test func eachHeaderTheUpstreamsSend() {
        #expect(RetryAfter.wait(in: ["retry-after-ms": "1500", "retry-after": "9"], now: Self.now) == .milliseconds(1500))
        #expect(RetryAfter.wait(in: ["Retry-After": "7"], now: Self.now) == .seconds(7))
        #expect(RetryAfter.wait(in: ["Retry-After": "Sat, 12 Sep 2026 14:13:40 GMT"], now: Date(timeIntervalSince1970: 1_789_222_400)) == .seconds(20))
        #expect(RetryAfter.wait(in: ["x-ratelimit-reset-requests": "1s", "x-ratelimit-reset-tokens": "6m0s"], now: Self.now) == .seconds(360))
        #expect(RetryAfter.wait(in: ["x-ratelimit-reset-tokens": "20ms"], now: Self.now) == .milliseconds(20))
        #expect(RetryAfter.wait(in: ["x-ratelimit-reset-requests": "1h2m3.5s"], now: Self.now) == .milliseconds(3_723_500))
        #expect(RetryAfter.wait(in: ["retry-after": "soon"], now: Self.now) == nil)
        #expect(RetryAfter.wait(in: [:], now: Self.now) == nil)
        #expect(RetryAfter.goDuration("5x") == nil && RetryAfter.goDuration("") == nil && RetryAfter.goDuration("s") == nil)
    }
}

/// Which members a pool tries, in which order.
@Suite struct PoolOrderTests {
    static func member(_ backend: String, priority: Int = 1, weight: Int = 1) -> CatalogSnapshot.Route {
        .init(backend: backend, deployment: "pooled", model: "m", priority: priority, weight: weight)
    }

    @Test func theLowestPriorityNumberComesFirstAndWeightsShareItsRequests() {
        let pool = [Self.member("ptu-a", weight: 3), Self.member("ptu-b", weight: 1), Self.member("paygo", priority: 2)]
        // `random(4)` picks in 0..<4: 0, 1 or 2 fall on ptu-a's weight of 3, 3 on ptu-b.
        #expect(BackendHealth.weightedOrder(pool, random: { _ in 0 }).map(\.backend) == ["ptu-a", "ptu-b", "paygo"])
        #expect(BackendHealth.weightedOrder(pool, random: { $0 - 1 }).map(\.backend) == ["ptu-b", "ptu-a", "paygo"])
        var firsts: [String: Int] = [:]
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<4000 { firsts[BackendHealth.weightedOrder(pool, random: { Int.random(in: 0..<$0, using: &generator) })[0].backend, default: 0] += 1 }
        #expect((2_700...3_300).contains(firsts["ptu-a"] ?? 0) && firsts["paygo"] == nil)
    }

    @Test func aThrottledMemberIsLeftOutForItsWaitAndAnOpenBreakerUntilItsProbe() {
        let clock = LimitTests.Clock(Date(timeIntervalSince1970: 1_790_000_000))
        let health = BackendHealth(logger: Logger(label: "test"), now: { clock.now })
        let backends = ["a": BackendSpec(name: "a", kind: .mock, circuitBreaker: .init(failures: 1, openSeconds: 10)), "b": BackendSpec(name: "b", kind: .mock)]
        let pool = [Self.member("a"), Self.member("b", priority: 2)]
        health.record(.throttled(wait: .seconds(3)), for: pool[0], spec: backends["a"]!.circuitBreaker, at: clock.now)
        #expect(health.candidates(pool, backends: backends, at: clock.now).map(\.backend) == ["b"])
        #expect(health.earliestReturn(of: pool, backends: backends, at: clock.now) == clock.now.addingTimeInterval(3))
        clock.advance(seconds: 3)
        #expect(health.candidates(pool, backends: backends, at: clock.now).map(\.backend) == ["a", "b"])
        // An answer clears nothing else; a failure opens a's breaker (one failure is enough here) for ten seconds.
        health.record(.failed(reason: "HTTP 502"), for: pool[0], spec: backends["a"]!.circuitBreaker, at: clock.now)
        #expect(health.candidates(pool, backends: backends, at: clock.now).map(\.backend) == ["b"])
        #expect(health.report(backends: ["a", "b"], at: clock.now).map(\.breaker) == ["open", "closed"])
        clock.advance(seconds: 10)
        #expect(health.attempt(pool[0], spec: backends["a"]!.circuitBreaker, at: clock.now))
        #expect(!health.attempt(pool[0], spec: backends["a"]!.circuitBreaker, at: clock.now))  // one probe at a time
        health.record(.answered, for: pool[0], spec: backends["a"]!.circuitBreaker, at: clock.now)
        #expect(health.report(backends: ["a"], at: clock.now).first?.breaker == "closed")
    }
}
