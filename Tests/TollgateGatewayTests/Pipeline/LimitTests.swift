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

    /// A request that was admitted reserving nothing and used `tokens` (what the limits saw before reservations).
    static func serve(_ limiter: TokenLimiter, _ subscription: SubscriptionID, _ limits: ProductLimits, tokens: Int) {
        guard let reservation = try? limiter.reserve(subscription, limits: limits).reservation else {
            Issue.record("refused")
            return
        }
        limiter.settle(reservation, used: tokens)
    }

    static func admit(_ limiter: TokenLimiter, _ subscription: SubscriptionID, _ limits: ProductLimits, prompt: Int = 0, cap: Int = 0) throws {
        _ = try limiter.reserve(subscription, limits: limits, promptTokens: prompt, completionCap: cap)
    }

    @Test func tokensPerMinuteRefusesAtTheLimitWithRetryAfterUntilTheOldestSecondLeaves() throws {
        let clock = Clock(Self.lateInMarch)
        let limiter = TokenLimiter(now: { clock.now })
        Self.serve(limiter, "sub-a", Self.tpm, tokens: 18)
        clock.advance(seconds: 10)
        Self.serve(limiter, "sub-a", Self.tpm, tokens: 18)
        try Self.admit(limiter, "sub-a", Self.tpm)  // 36 < 40
        Self.serve(limiter, "sub-a", Self.tpm, tokens: 18)
        clock.advance(seconds: 5)
        let error = refusal { try Self.admit(limiter, "sub-a", Self.tpm); return .next }
        #expect(error?.status == .tooManyRequests && error?.code == "tokens_per_minute_exceeded" && error?.type == "rate_limit_error")
        // The first 18 were used 15 s ago: they leave the window in 45 s.
        #expect(error?.headers[HTTPField.Name("Retry-After")!] == "45")
        #expect(error?.headers[HTTPField.Name("retry-after-ms")!] == "45000")
        // And where the caller stands: 54 of 40 used (it used more than it reserved), nothing left.
        #expect(error?.headers[HTTPField.Name("x-ratelimit-limit-tokens")!] == "40")
        #expect(error?.headers[HTTPField.Name("x-ratelimit-remaining-tokens")!] == "0")
        #expect(error?.headers[HTTPField.Name("x-ratelimit-reset-tokens")!] == "45s")
        #expect(refusal { try Self.admit(limiter, "sub-b", Self.tpm); return .next } == nil)  // per subscription
        clock.advance(seconds: 45)  // 54 − 18 = 36 left in the window
        try Self.admit(limiter, "sub-a", Self.tpm)
    }

    @Test func aProductWithoutASettingIsNotLimitedByIt() throws {
        let limiter = TokenLimiter()
        Self.serve(limiter, "sub-a", ProductLimits(), tokens: 1_000_000)
        try Self.admit(limiter, "sub-a", ProductLimits(), prompt: 1_000_000)
        try Self.admit(limiter, "sub-a", Self.tpm)
        try Self.admit(limiter, "sub-a", Self.quota)
    }

    @Test func theQuotaCountsOtherInstancesUsageAfterARefreshAndResetsWithThePeriod() async throws {
        let clock = Clock(Self.lateInMarch)
        let limiter = TokenLimiter(now: { clock.now })
        let usage = InMemoryQuotaUsageRepository()
        let document = PolicyDocument(products: [ProductSpec(name: "p", limits: Self.quota)], subscriptions: [SubscriptionSpec(id: "sub-a", product: "p")])
        let catalog = CatalogSnapshot(document: document)
        usage.record(25, by: "sub-a", at: Self.lateInMarch.addingTimeInterval(-86_400))  // served elsewhere this month
        usage.record(500, by: "sub-a", at: Self.lateInMarch.addingTimeInterval(-40 * 86_400))  // last month: not counted
        try Self.admit(limiter, "sub-a", Self.quota)  // not refreshed yet: nothing known
        try await limiter.refresh(catalog: catalog, from: LimitSources(quotaUsage: usage), logger: PipelineFixture.logger)
        Self.serve(limiter, "sub-a", Self.quota, tokens: 5)  // 25 < 30; served here, not landed yet
        let error = refusal { try Self.admit(limiter, "sub-a", Self.quota); return .next }
        #expect(error?.status == .forbidden && error?.code == "token_quota_exceeded" && error?.type == "insufficient_quota")
        #expect(error?.message.contains("2026-04-01T00:00:00.000Z") == true)
        // A refresh before the local request has landed keeps counting it.
        try await limiter.refresh(catalog: catalog, from: LimitSources(quotaUsage: usage), logger: PipelineFixture.logger)
        #expect(refusal { try Self.admit(limiter, "sub-a", Self.quota); return .next }?.code == "token_quota_exceeded")
        clock.advance(seconds: 60)  // April: a new period
        try Self.admit(limiter, "sub-a", Self.quota)
    }

    @Test func aReservationThatDoesNotFitIsRefusedAndConcurrentRequestsCannotOvershoot() throws {
        let clock = Clock(Self.lateInMarch)
        let limiter = TokenLimiter(now: { clock.now })
        // Nothing used yet, but three requests in flight of 10 prompt + 4 cap = 14 each: the third would make 42 > 40.
        var held: [Reservation] = []
        for _ in 0..<2 { held.append(try limiter.reserve("sub-a", limits: Self.tpm, promptTokens: 10, completionCap: 4).reservation) }
        let error = refusal { try Self.admit(limiter, "sub-a", Self.tpm, prompt: 10, cap: 4); return .next }
        #expect(error?.code == "tokens_per_minute_exceeded" && error?.message.contains("may use 14") == true)
        // It fits once the first settles to what it really used (5 tokens): 5 + 14 + 14 = 33.
        limiter.settle(held[0], used: 5)
        try Self.admit(limiter, "sub-a", Self.tpm, prompt: 10, cap: 4)
        // The quota works the same way: 30 tokens, a 20-token reservation in flight, another 20 does not fit.
        let first = try limiter.reserve("sub-a", limits: Self.quota, promptTokens: 12, completionCap: 8).reservation
        let quotaError = refusal { try Self.admit(limiter, "sub-a", Self.quota, prompt: 12, cap: 8); return .next }
        #expect(quotaError?.code == "token_quota_exceeded" && quotaError?.status == .forbidden)
        limiter.settle(first, used: 0)  // the upstream failed: nothing used, the hold is released
        try Self.admit(limiter, "sub-a", Self.quota, prompt: 12, cap: 8)
    }

    @Test func aRequestLargerThanTheWholeLimitIsRefusedWithoutARetryTime() throws {
        let limiter = TokenLimiter()
        let error = refusal { try Self.admit(limiter, "sub-a", Self.tpm, prompt: 30, cap: 20); return .next }
        #expect(error?.status == .tooManyRequests && error?.message.contains("Request too large") == true)
        #expect(error?.headers[HTTPField.Name("Retry-After")!] == nil)
        // It held nothing: a request that fits is admitted.
        try Self.admit(limiter, "sub-a", Self.tpm, prompt: 30, cap: 10)
    }

    @Test func aRefusalByALaterLimitReleasesWhatTheEarlierOnesTook() throws {
        let limiter = TokenLimiter()
        let both = ProductLimits(tokensPerMinute: 100, tokenQuota: 30)
        // 25 fits both; 25 more fits the minute (50 ≤ 100) but not the quota (50 > 30).
        _ = try limiter.reserve("sub-a", limits: both, promptTokens: 25)
        #expect(refusal { try Self.admit(limiter, "sub-a", both, prompt: 25); return .next }?.code == "token_quota_exceeded")
        // Had the refused request's 25 stayed in the minute window, 25 + 25 + 60 = 110 > 100 would refuse this one.
        try Self.admit(limiter, "sub-a", ProductLimits(tokensPerMinute: 100), prompt: 60)
    }

    @Test func requestsPerMinuteCountsRequestsNotTokens() throws {
        let clock = Clock(Self.lateInMarch)
        let limiter = TokenLimiter(now: { clock.now })
        let rpm = ProductLimits(requestsPerMinute: 2)
        let (first, standings) = try limiter.reserve("sub-a", limits: rpm, promptTokens: 1_000)
        #expect(standings == [LimitStanding(kind: .requestsPerMinute, limit: 2, remaining: 1, resetsIn: .seconds(60))])
        limiter.settle(first, used: 5_000)  // tokens do not matter
        clock.advance(seconds: 20)
        try Self.admit(limiter, "sub-a", rpm)
        let error = refusal { try Self.admit(limiter, "sub-a", rpm); return .next }
        #expect(error?.code == "requests_per_minute_exceeded" && error?.headers[HTTPField.Name("Retry-After")!] == "40")
        #expect(error?.headers[HTTPField.Name("x-ratelimit-remaining-requests")!] == "0" && error?.headers[HTTPField.Name("x-ratelimit-limit-requests")!] == "2")
        clock.advance(seconds: 40)
        try Self.admit(limiter, "sub-a", rpm)
    }

    @Test func anUnsettledQuotaHoldExpires() async throws {
        let clock = Clock(Self.lateInMarch.addingTimeInterval(-86_400))
        let limiter = TokenLimiter(now: { clock.now })
        _ = try limiter.reserve("sub-a", limits: Self.quota, promptTokens: 30)  // never settles (its reply never came)
        #expect(refusal { try Self.admit(limiter, "sub-a", Self.quota, prompt: 1); return .next }?.code == "token_quota_exceeded")
        clock.advance(seconds: 15 * 60 + 1)
        try Self.admit(limiter, "sub-a", Self.quota, prompt: 1)
    }

    @Test func theHeadersSayWhereTheCallerStands() throws {
        let limits = ProductLimits(
            tokensPerMinute: 1_000, requestsPerMinute: 10, tokenQuota: 100_000, remainingTokensHeaderName: "remaining-tokens",
            tokensConsumedHeaderName: "tokens-consumed")
        let limiter = TokenLimiter(now: { Self.lateInMarch })
        let (reservation, standings) = try limiter.reserve("sub-a", limits: limits, promptTokens: 120, completionCap: 80)
        let fields = RateLimitHeaders.fields(standings, reservation: reservation)
        func header(_ name: String) -> String? { fields[HTTPField.Name(name)!] }
        #expect(header("x-ratelimit-limit-tokens") == "1000" && header("x-ratelimit-remaining-tokens") == "800")
        #expect(header("x-ratelimit-reset-tokens") == "1m0s")
        #expect(header("x-ratelimit-limit-requests") == "10" && header("x-ratelimit-remaining-requests") == "9")
        #expect(header("remaining-tokens") == "800" && header("tokens-consumed") == "120")
        // Without a minute limit the APIM header tells what is left of the quota.
        let quotaOnly = ProductLimits(tokenQuota: 100_000, remainingTokensHeaderName: "remaining-tokens")
        let (second, quotaStandings) = try limiter.reserve("sub-b", limits: quotaOnly, promptTokens: 100)
        #expect(RateLimitHeaders.fields(quotaStandings, reservation: second)[HTTPField.Name("remaining-tokens")!] == "99900")
        #expect(RateLimitHeaders.goDuration(.seconds(3 * 3600 + 4 * 60 + 5)) == "3h4m5s" && RateLimitHeaders.goDuration(.seconds(7)) == "7s")
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

        // The admit step reserved the prompt, counted by the tokenizer, plus the body's max_tokens.
        var capped = try fixture.identified(body: #"{"model":"gpt-4o-mini","max_tokens":7,"messages":[{"role":"user","content":"12345678"}]}"#)
        _ = try AdmitStep(limiter: TokenLimiter()).run(&capped)
        #expect(capped.reservation?.promptTokens == 10 && capped.reservation?.completionCap == 7)
        #expect(capped.replyHeaders[HTTPField.Name("x-ratelimit-remaining-tokens")!] == "23")

        // Without a product there is nothing to settle.
        var unlimited = try fixture.identified(subscription: "sub-c")
        _ = try SettleStep(limiter: limiter).run(&unlimited)
        #expect(unlimited.afterReply.isEmpty)
    }
}
