import Foundation
import HTTPTypes
import NIOCore
import NIOHTTP1
import Synchronization
import Testing
import TollgateCore
import TollgateStore
import TollgateStoreMemory

@testable import TollgateGateway

/// The token limits on a hand-set clock and in-memory period usage: tokens per minute (429 with Retry-After, per
/// instance) and the period quota (403 until the period rolls over, counting other instances' usage).
@Suite struct LimitTests {
    /// A clock tests move by hand.
    final class Clock: Sendable {
        private let instant: Mutex<Date>
        init(_ start: Date) { instant = Mutex(start) }
        var now: Date { instant.withLock { $0 } }
        func advance(seconds: Double) { instant.withLock { $0 = $0.addingTimeInterval(seconds) } }
    }

    /// 2026-03-31 23:59:00 UTC: a minute before a month ends.
    static let lateInMarch = Date(timeIntervalSince1970: 1_775_001_540)
    static let tpm = ProductLimits(tokensPerMinute: 40)
    static let quota = ProductLimits(tokenQuota: 30, quotaPeriod: .monthly)

    @Test func tokensPerMinuteRefusesAtTheLimitWithRetryAfterUntilTheOldestSecondLeaves() throws {
        let clock = Clock(Self.lateInMarch)
        let limiter = TokenLimiter(now: { clock.now })
        try limiter.admit("sub-a", limits: Self.tpm)
        limiter.consumed(18, by: "sub-a", limits: Self.tpm)
        clock.advance(seconds: 10)
        limiter.consumed(18, by: "sub-a", limits: Self.tpm)
        try limiter.admit("sub-a", limits: Self.tpm)  // 36 < 40
        limiter.consumed(18, by: "sub-a", limits: Self.tpm)
        clock.advance(seconds: 5)
        let error = refusal { try limiter.admit("sub-a", limits: Self.tpm); return .next }
        #expect(error?.status == .tooManyRequests && error?.code == "tokens_per_minute_exceeded" && error?.type == "rate_limit_error")
        // The first 18 were used 15 s ago: they leave the window in 45 s.
        #expect(error?.headers[HTTPField.Name("Retry-After")!] == "45")
        #expect(refusal { try limiter.admit("sub-b", limits: Self.tpm); return .next } == nil)  // per subscription
        clock.advance(seconds: 45)  // 54 − 18 = 36 left in the window
        try limiter.admit("sub-a", limits: Self.tpm)
    }

    @Test func aProductWithoutASettingIsNotLimitedByIt() throws {
        let limiter = TokenLimiter()
        limiter.consumed(1_000_000, by: "sub-a", limits: ProductLimits())
        try limiter.admit("sub-a", limits: ProductLimits())
        try limiter.admit("sub-a", limits: Self.tpm)
        try limiter.admit("sub-a", limits: Self.quota)
    }

    @Test func theQuotaCountsOtherInstancesUsageAfterARefreshAndResetsWithThePeriod() async throws {
        let clock = Clock(Self.lateInMarch)
        let limiter = TokenLimiter(now: { clock.now })
        let usage = InMemoryQuotaUsageRepository()
        let document = PolicyDocument(products: [ProductSpec(name: "p", limits: Self.quota)], subscriptions: [SubscriptionSpec(id: "sub-a", product: "p")])
        let catalog = CatalogSnapshot(document: document)
        usage.record(25, by: "sub-a", at: Self.lateInMarch.addingTimeInterval(-86_400))  // served elsewhere this month
        usage.record(500, by: "sub-a", at: Self.lateInMarch.addingTimeInterval(-40 * 86_400))  // last month: not counted
        try limiter.admit("sub-a", limits: Self.quota)  // not refreshed yet: nothing known
        try await limiter.refresh(catalog: catalog, from: LimitSources(quotaUsage: usage), logger: PipelineFixture.logger)
        try limiter.admit("sub-a", limits: Self.quota)  // 25 < 30
        limiter.consumed(5, by: "sub-a", limits: Self.quota)  // served here, not landed yet
        let error = refusal { try limiter.admit("sub-a", limits: Self.quota); return .next }
        #expect(error?.status == .forbidden && error?.code == "token_quota_exceeded" && error?.type == "insufficient_quota")
        #expect(error?.message.contains("2026-04-01T00:00:00.000Z") == true)
        // A refresh before the local request has landed keeps counting it.
        try await limiter.refresh(catalog: catalog, from: LimitSources(quotaUsage: usage), logger: PipelineFixture.logger)
        #expect(refusal { try limiter.admit("sub-a", limits: Self.quota); return .next }?.code == "token_quota_exceeded")
        clock.advance(seconds: 60)  // April: a new period
        try limiter.admit("sub-a", limits: Self.quota)
    }

    @Test func theAdmitStepAsksTheLimitsAndTheSettleStepCountsTheMeteredTokens() async throws {
        let fixture = await PipelineFixture()
        let limiter = TokenLimiter()
        var request = try fixture.identified()
        _ = try AdmitStep(limiter: limiter).run(&request)
        _ = try SettleStep(limiter: limiter).run(&request)
        #expect(request.afterReply.count == 1)
        let event = UsageEvent(
            requestID: request.requestID, startedAt: request.startedAt, endedAt: request.startedAt, subscription: "sub-a", backend: "openai",
            model: "gpt-4o-mini", route: "chat.completions", httpStatus: 200, streamed: false, usage: TokenUsage(promptTokens: 30, completionTokens: 10),
            usageSource: .reported)
        var reply = ProxyReply(status: 200, content: .failed, event: event)
        request.replied(&reply)
        var next = try fixture.identified()
        #expect(refusal { try AdmitStep(limiter: limiter).run(&next) }?.code == "tokens_per_minute_exceeded")  // 40 of 40 used

        // Without a product there is nothing to settle.
        var unlimited = try fixture.identified(subscription: "sub-c")
        _ = try SettleStep(limiter: limiter).run(&unlimited)
        #expect(unlimited.afterReply.isEmpty)
    }
}
