import Foundation
import Logging
import PostgresNIO
import TollgateCore

/// Token totals per subscription, model and usage source over a span of time (`GET /admin/v1/usage/summary`).
public struct UsageSummary: Hashable, Sendable, Codable {
    public var subscriptionID: String
    public var model: String
    public var usageSource: String
    public var requests: Int
    public var promptTokens: Int
    public var completionTokens: Int
    public var totalTokens: Int
    public var cachedTokens: Int
    public var reasoningTokens: Int

    public init(
        subscriptionID: String, model: String, usageSource: String, requests: Int, promptTokens: Int, completionTokens: Int, totalTokens: Int,
        cachedTokens: Int, reasoningTokens: Int
    ) {
        self.subscriptionID = subscriptionID
        self.model = model
        self.usageSource = usageSource
        self.requests = requests
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.totalTokens = totalTokens
        self.cachedTokens = cachedTokens
        self.reasoningTokens = reasoningTokens
    }

    enum CodingKeys: String, CodingKey {
        case model, requests
        case subscriptionID = "subscription_id"
        case usageSource = "usage_source"
        case promptTokens = "prompt_tokens"
        case completionTokens = "completion_tokens"
        case totalTokens = "total_tokens"
        case cachedTokens = "cached_tokens"
        case reasoningTokens = "reasoning_tokens"
    }
}

/// Reads usage totals from the rollups. `PostgresUsageSummaries` is the PostgreSQL implementation.
public protocol UsageSummaryRepository: Sendable {
    /// Totals of the hours from `from` (rounded down to its hour) up to `to`, optionally of one subscription, ordered by
    /// subscription, model and usage source.
    func summary(from: Date, to: Date, subscription: SubscriptionID?, logger: Logger) async throws -> [UsageSummary]
}

/// `UsageSummaryRepository` over the hourly rollup.
public struct PostgresUsageSummaries: UsageSummaryRepository {
    let client: PostgresClient

    public func summary(from: Date, to: Date, subscription: SubscriptionID?, logger: Logger) async throws -> [UsageSummary] {
        let subscription = subscription?.rawValue
        let rows = try await client.query(
            """
            SELECT subscription_id, model, usage_source, sum(requests)::bigint, sum(prompt_tokens)::bigint, sum(completion_tokens)::bigint,
                   sum(total_tokens)::bigint, sum(cached_tokens)::bigint, sum(reasoning_tokens)::bigint
            FROM usage_hourly
            WHERE hour_start >= date_trunc('hour', \(from)) AND hour_start < \(to) AND (\(subscription)::text IS NULL OR subscription_id = \(subscription))
            GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
            """, logger: logger)
        var result: [UsageSummary] = []
        for try await (sub, model, source, requests, prompt, completion, total, cached, reasoning) in rows.decode(
            (String, String, String, Int, Int, Int, Int, Int, Int).self)
        {
            result.append(
                .init(
                    subscriptionID: sub, model: model, usageSource: source, requests: requests, promptTokens: prompt,
                    completionTokens: completion, totalTokens: total, cachedTokens: cached, reasoningTokens: reasoning))
        }
        return result
    }
}
