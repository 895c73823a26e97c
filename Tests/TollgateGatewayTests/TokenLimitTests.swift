import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing
import TollgateCore
import TollgateGateway
import TollgateServer
import TollgateStore
import TollgateTestSupport

/// Token limits from the subscription's product, like APIM's llm-token-limit: tokens per minute → 429 with
/// Retry-After; a period quota → 403 until the period rolls over.
@Suite(.freshDatabasePerTest) struct TokenLimitTests {
    /// A mock backend reply to this body costs 4 prompt tokens (16 characters) + 14 completion tokens = 18.
    static let body = ByteBuffer.json(#"{"model":"mock-model","messages":[{"role":"user","content":"Say hello there!"}]}"#)

    static func document(limits: ProductLimits) -> PolicyDocument {
        PolicyDocument(
            backends: [BackendSpec(name: "mock", kind: .mock, deployments: [DeploymentSpec(name: "mock-model", model: "mock-model")])],
            products: [ProductSpec(name: "limited", limits: limits)],
            subscriptions: [SubscriptionSpec(id: "sub-a", product: "limited")])
    }

    /// The minute limits are shared per fixed UTC minute: a test whose figures assume one minute starts well inside one.
    static func awayFromAMinuteBoundary() async throws {
        let second = Date().timeIntervalSince1970.truncatingRemainder(dividingBy: 60)
        if second > 50 { try await Task.sleep(for: .milliseconds(Int((60.2 - second) * 1000))) }
    }

    @Test func tokensPerMinuteOverTheLimitGet429WithRetryAfter() async throws {
        let keys = try await GatewayHarness.prepare(Self.document(limits: ProductLimits(tokensPerMinute: 40)))
        try await Self.awayFromAMinuteBoundary()
        try await GatewayHarness.withLiveGateway(configuration: try await GatewayHarness.configuration()) { client, _ in
            // Each request reserves its prompt, 11 tokens by the tokenizer (no max_tokens, no product default), and
            // uses 18. The first is admitted on 0 + 11, the second on 18 + 11 = 29; the third would make 36 + 11 = 47 > 40
            // of the minute's allowance, shared by every instance (PostgreSQL's admission_allowances).
            for remaining in ["29", "11"] {
                try await client.execute(uri: "/v1/chat/completions", method: .post, headers: .bearer(keys["sub-a"]!), body: Self.body) {
                    #expect($0.status == .ok)
                    #expect($0.headers[HTTPField.Name("x-ratelimit-limit-tokens")!] == "40")
                    #expect($0.headers[HTTPField.Name("x-ratelimit-remaining-tokens")!] == remaining)
                }
            }
            try await client.execute(uri: "/v1/chat/completions", method: .post, headers: .bearer(keys["sub-a"]!), body: Self.body) { response in
                #expect(response.status == .tooManyRequests)
                let retryAfter = Int(response.headers[HTTPField.Name("Retry-After")!] ?? "") ?? 0
                #expect((1...60).contains(retryAfter))
                #expect(response.headers[HTTPField.Name("retry-after-ms")!] == "\(retryAfter * 1000)")
                // The refusal says where the caller stands, as OpenAI's own 429s do: 36 of 40 used, 4 left.
                #expect(response.headers[HTTPField.Name("x-ratelimit-limit-tokens")!] == "40")
                #expect(response.headers[HTTPField.Name("x-ratelimit-remaining-tokens")!] == "4")
                #expect(response.headers[HTTPField.Name("x-ratelimit-reset-tokens")!] == "\(retryAfter)s")
                let error = try JSONDecoder().decode(OpenAIErrorEnvelope.self, from: Data(response.body.readableBytesView)).error
                #expect(error.code == "tokens_per_minute_exceeded" && error.type == "rate_limit_error")
            }
        }
    }

    @Test func aPeriodQuotaUsedUpGets403UntilTheNextPeriod() async throws {
        let keys = try await GatewayHarness.prepare(Self.document(limits: ProductLimits(tokenQuota: 30, quotaPeriod: .monthly)))
        try await GatewayHarness.withLiveGateway(configuration: try await GatewayHarness.configuration()) { client, _ in
            for _ in 0..<2 {
                try await client.execute(uri: "/v1/chat/completions", method: .post, headers: .bearer(keys["sub-a"]!), body: Self.body) {
                    #expect($0.status == .ok)
                }
            }
            try await client.execute(uri: "/v1/chat/completions", method: .post, headers: .bearer(keys["sub-a"]!), body: Self.body) { response in
                #expect(response.status == .forbidden)
                let error = try JSONDecoder().decode(OpenAIErrorEnvelope.self, from: Data(response.body.readableBytesView)).error
                #expect(error.code == "token_quota_exceeded")
                #expect(error.message.contains(BillingPeriod.containing(Date(), kind: .monthly).end.iso8601))
            }
        }
    }

    @Test func theQuotaCountsUsageServedByOtherInstances() async throws {
        // 40 tokens already in PostgreSQL for this month (served elsewhere): the quota of 30 is used up at start.
        let keys = try await GatewayHarness.prepare(Self.document(limits: ProductLimits(tokenQuota: 30, quotaPeriod: .monthly)))
        try await TestDatabase.withClient { client in
            let now = Date()
            let event = UsageEvent(
                requestID: UUIDv7.make(at: now), startedAt: now, endedAt: now, subscription: "sub-a", backend: "mock", model: "mock-model",
                route: "chat.completions", httpStatus: 200, streamed: false, usage: TokenUsage(promptTokens: 30, completionTokens: 10), usageSource: .reported)
            try await UsageStore(client: client).insert([event], logger: TestDatabase.logger)
        }
        try await GatewayHarness.withLiveGateway(configuration: try await GatewayHarness.configuration()) { client, _ in
            // No wait: the server loads period usage before it answers its first request.
            try await client.execute(uri: "/v1/chat/completions", method: .post, headers: .bearer(keys["sub-a"]!), body: Self.body) {
                #expect($0.status == .forbidden)
            }
        }
    }

    @Test func aReservationThatCannotFitIsRefusedBeforeAnythingIsForwarded() async throws {
        let upstream = FakeOpenAIUpstream()
        try await upstream.run { port in
            var document = GatewayHarness.document(upstreamPort: port)
            document.products[0].limits = ProductLimits(
                tokensPerMinute: 1_000, tokenQuota: 100_000, defaultMaxTokens: 500, remainingTokensHeaderName: "remaining-tokens",
                tokensConsumedHeaderName: "tokens-consumed")
            let keys = try await GatewayHarness.prepare(document)
            try await Self.awayFromAMinuteBoundary()
            try await GatewayHarness.withLiveGateway(configuration: try await GatewayHarness.configuration()) { client, runtime in
                // 11 prompt tokens + max_tokens 2000: larger than the whole minute's 1000, so never forwarded.
                let tooLarge = #"{"model":"gpt-4o-mini","max_tokens":2000,"messages":[{"role":"user","content":"Say hello there!"}]}"#
                try await client.execute(uri: "/v1/chat/completions", method: .post, headers: .bearer(keys["sub-a"]!), body: .json(tooLarge)) { response in
                    #expect(response.status == .tooManyRequests)
                    let error = try JSONDecoder().decode(OpenAIErrorEnvelope.self, from: Data(response.body.readableBytesView)).error
                    #expect(error.code == "tokens_per_minute_exceeded" && error.message.contains("Request too large"))
                }
                #expect(upstream.requests.count == 0)
                // Without a cap of its own it reserves the product's 500: 11 + 500 fits, and the headers say so.
                let plain = #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello there!"}]}"#
                try await client.execute(uri: "/v1/chat/completions", method: .post, headers: .bearer(keys["sub-a"]!), body: .json(plain)) { response in
                    #expect(response.status == .ok)
                    #expect(response.headers[HTTPField.Name("x-ratelimit-remaining-tokens")!] == "489")
                    #expect(response.headers[HTTPField.Name("remaining-tokens")!] == "489")
                    #expect(response.headers[HTTPField.Name("tokens-consumed")!] == "11")
                }
                #expect(upstream.requests.count == 1)
                // The minute limits leased from PostgreSQL: readiness says they are shared, not degraded.
                try await client.execute(uri: "/readyz", method: .get) { response in
                    #expect(String(buffer: response.body).contains(#""shared_limits":"ok""#))
                }
                await runtime.writer.flush()
            }
        }
    }
}
