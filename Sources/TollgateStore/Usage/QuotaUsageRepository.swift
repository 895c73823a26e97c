import Foundation
import Logging
import PostgresNIO
import TollgateCore

/// What the period quotas need from the ledger: the tokens each subscription used in a period, across every instance.
public protocol QuotaUsageRepository: Sendable {
    /// Tokens each of `subscriptions` used with `period.start <= hour < period.end`, from the hourly rollup (what every
    /// instance has landed so far). A subscription with no usage in the period is absent from the result.
    func tokensUsed(by subscriptions: [SubscriptionID], in period: BillingPeriod, logger: Logger) async throws -> [SubscriptionID: Int]
}

/// `QuotaUsageRepository` over `usage_hourly`.
public struct PostgresQuotaUsageRepository: QuotaUsageRepository {
    let client: PostgresClient

    package init(client: PostgresClient) { self.client = client }

    public func tokensUsed(by subscriptions: [SubscriptionID], in period: BillingPeriod, logger: Logger) async throws -> [SubscriptionID: Int] {
        guard !subscriptions.isEmpty else { return [:] }
        let ids = subscriptions.map(\.rawValue)
        let rows = try await client.query("""
            SELECT subscription_id, sum(total_tokens)::bigint FROM usage_hourly
            WHERE subscription_id = ANY(\(ids)) AND hour_start >= \(period.start) AND hour_start < \(period.end)
            GROUP BY subscription_id
            """, logger: logger)
        var used: [SubscriptionID: Int] = [:]
        for try await (id, total) in rows.decode((String, Int).self) { used[SubscriptionID(id)] = total }
        return used
    }
}

extension PostgresDatabase {
    /// Period usage for the gateway's quotas.
    public var quotaUsage: PostgresQuotaUsageRepository { PostgresQuotaUsageRepository(client: client) }
}
