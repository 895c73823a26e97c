import Foundation
import HTTPTypes
import Logging
import Synchronization
import TollgateCore
import TollgateStore

/// `token_quota` per `quota_period`: tokens used in the current UTC period, from the ledger's hourly rollup (shared by
/// every instance, refreshed every few seconds) plus what this instance served since. Over it: 403
/// `token_quota_exceeded` until the period rolls over.
final class PeriodQuotaLimit: Limit {
    struct Quota {
        var period: BillingPeriod
        /// Tokens in the rollup for the period at the last refresh.
        var stored: Int
        /// Tokens this instance served recently, by when: what may not be in `stored` yet.
        var recent: [(at: Date, tokens: Int)]
        var local: Int { recent.reduce(0) { $0 + $1.tokens } }
    }
    /// How long a served request counts locally after a refresh: comfortably longer than the writer takes to land it,
    /// so nothing is missed (a request landed and still counted locally errs on the side of refusing early).
    let localHorizon: Duration
    private let quotas = Mutex<[SubscriptionID: Quota]>([:])

    init(localHorizon: Duration = .seconds(5)) {
        self.localHorizon = localHorizon
    }

    func admit(_ subscription: SubscriptionID, product limits: ProductLimits, at instant: Date) throws(GatewayError) {
        guard let quota = limits.tokenQuota else { return }
        let period = BillingPeriod.containing(instant, kind: limits.quotaPeriod)
        let used = quotas.withLock { quotas -> Int in
            guard let state = quotas[subscription], state.period == period else { return 0 }
            return state.stored + state.local
        }
        guard used >= quota else { return }
        throw GatewayError(
            status: .forbidden, type: "insufficient_quota", code: "token_quota_exceeded",
            message: "Subscription \(subscription) used its quota of \(quota) tokens for this \(limits.quotaPeriod.rawValue) period; it resets at \(period.end.iso8601).")
    }

    func consume(_ tokens: Int, by subscription: SubscriptionID, product limits: ProductLimits, at instant: Date) {
        guard tokens > 0, limits.tokenQuota != nil else { return }
        let period = BillingPeriod.containing(instant, kind: limits.quotaPeriod)
        quotas.withLock { quotas in
            if quotas[subscription]?.period != period { quotas[subscription] = Quota(period: period, stored: 0, recent: []) }
            quotas[subscription]?.recent.append((instant, tokens))
        }
    }

    /// Reloads period usage for every subscription whose product has a quota. Requests served in the last
    /// `localHorizon` keep counting locally, since they may not have landed yet.
    func refresh(catalog: CatalogSnapshot, from sources: LimitSources, at instant: Date, logger: Logger) async throws {
        var byKind: [PeriodKind: [SubscriptionID]] = [:]
        for subscription in catalog.subscriptions.values {
            guard let product = subscription.product.flatMap({ catalog.products[$0] }), product.limits.tokenQuota != nil else { continue }
            byKind[product.limits.quotaPeriod, default: []].append(subscription.id)
        }
        for (kind, subscriptions) in byKind {
            let period = BillingPeriod.containing(instant, kind: kind)
            let stored = try await sources.quotaUsage.tokensUsed(by: subscriptions, in: period, logger: logger)
            let horizon = instant.addingTimeInterval(-Double(localHorizon.components.seconds))
            quotas.withLock { quotas in
                for subscription in subscriptions {
                    let recent = quotas[subscription].map { $0.period == period ? $0.recent.filter { $0.at >= horizon } : [] } ?? []
                    quotas[subscription] = Quota(period: period, stored: stored[subscription] ?? 0, recent: recent)
                }
            }
        }
    }
}
