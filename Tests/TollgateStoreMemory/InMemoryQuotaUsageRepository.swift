import Foundation
import Logging
import Synchronization
import TollgateCore
import TollgateStore

/// `QuotaUsageRepository` over tokens recorded in memory, summed per UTC hour as the ledger's hourly rollup sums them.
public final class InMemoryQuotaUsageRepository: QuotaUsageRepository {
    private let hours = Mutex<[SubscriptionID: [Date: Int]]>([:])

    public init() {}

    /// Records `tokens` used by `subscription` at `instant`, as landing a usage row with that `started_at` would.
    public func record(_ tokens: Int, by subscription: SubscriptionID, at instant: Date) {
        // UTC hours are whole multiples of 3600 s since the Unix epoch.
        let hour = Date(timeIntervalSince1970: (instant.timeIntervalSince1970 / 3_600).rounded(.down) * 3_600)
        hours.withLock { $0[subscription, default: [:]][hour, default: 0] += tokens }
    }

    public func tokensUsed(by subscriptions: [SubscriptionID], in period: BillingPeriod, logger: Logger) async throws -> [SubscriptionID: Int] {
        hours.withLock { hours in
            var used: [SubscriptionID: Int] = [:]
            for subscription in Set(subscriptions) {
                let inPeriod = (hours[subscription] ?? [:]).filter { period.start <= $0.key && $0.key < period.end }
                if !inPeriod.isEmpty { used[subscription] = inPeriod.values.reduce(0, +) }
            }
            return used
        }
    }
}
