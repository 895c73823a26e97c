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

    @Test func tokensPerMinuteOverTheLimitGet429WithRetryAfter() async throws {
        let keys = try await GatewayHarness.prepare(Self.document(limits: ProductLimits(tokensPerMinute: 40)))
        try await GatewayHarness.withLiveGateway(configuration: try await GatewayHarness.configuration()) { client, _ in
            // 18 + 18 = 36 < 40: both admitted; the third sees 54 ≥ 40.
            for _ in 0..<3 {
                try await client.execute(uri: "/v1/chat/completions", method: .post, headers: .bearer(keys["sub-a"]!), body: Self.body) {
                    #expect($0.status == .ok)
                }
            }
            try await client.execute(uri: "/v1/chat/completions", method: .post, headers: .bearer(keys["sub-a"]!), body: Self.body) { response in
                #expect(response.status == .tooManyRequests)
                let retryAfter = Int(response.headers[HTTPField.Name("Retry-After")!] ?? "") ?? 0
                #expect((1...60).contains(retryAfter))
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
}
