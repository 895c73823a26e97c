import Foundation
import HTTPTypes
import Logging
import Synchronization
import TollgateCore
import TollgateStore

/// `token_quota` per `quota_period`: tokens used in the current UTC period, from the ledger's hourly rollup (shared by
/// every instance, refreshed every few seconds), plus what this instance served since, plus what the requests it has
/// in flight hold. A request is refused with 403 `token_quota_exceeded` (until the period rolls over) when the quota
/// is used up or its reservation does not fit in what is left.
final class PeriodQuotaLimit: Limit {
    struct Quota {
        var period: BillingPeriod
        /// Tokens in the rollup for the period at the last refresh.
        var stored: Int
        /// Tokens this instance served recently, by when: what may not be in `stored` yet.
        var recent: [(at: Date, tokens: Int)]
        /// What the requests in flight hold, until they settle or their hold expires.
        var held: [UUID: (tokens: Int, until: Date)] = [:]

        func used(at instant: Date) -> Int {
            stored + recent.reduce(0) { $0 + $1.tokens } + held.values.reduce(0) { $1.until > instant ? $0 + $1.tokens : $0 }
        }
    }
    /// How long a served request counts locally after a refresh: comfortably longer than the writer takes to land it,
    /// so nothing is missed (a request landed and still counted locally errs on the side of refusing early).
    let localHorizon: Duration
    /// How long a reservation holds if its request never settles: longer than any request runs.
    let holdLifetime: Duration
    private let quotas = Mutex<[SubscriptionID: Quota]>([:])

    init(localHorizon: Duration = .seconds(5), holdLifetime: Duration = .seconds(15 * 60)) {
        self.localHorizon = localHorizon
        self.holdLifetime = holdLifetime
    }

    func reserve(_ reservation: Reservation) throws(GatewayError) -> LimitStanding? {
        guard let quota = reservation.limits.tokenQuota else { return nil }
        let instant = reservation.at
        let period = BillingPeriod.containing(instant, kind: reservation.limits.quotaPeriod)
        let until = instant.addingTimeInterval(Double(holdLifetime.components.seconds))
        let (used, fits) = quotas.withLock { quotas -> (Int, Bool) in
            if quotas[reservation.subscription]?.period != period {
                quotas[reservation.subscription] = Quota(period: period, stored: 0, recent: [])
            }
            let used = quotas[reservation.subscription]!.used(at: instant)
            guard used < quota, used + reservation.tokens <= quota else { return (used, false) }
            quotas[reservation.subscription]!.held[reservation.requestID] = (reservation.tokens, until)
            return (used, true)
        }
        guard fits else {
            throw GatewayError(
                status: .forbidden, type: "insufficient_quota", code: "token_quota_exceeded",
                message: "Subscription \(reservation.subscription) used \(used) of its quota of \(quota) tokens for this "
                    + "\(reservation.limits.quotaPeriod.rawValue) period and this request may use \(reservation.tokens); "
                    + "the quota resets at \(period.end.iso8601).")
        }
        return LimitStanding(
            kind: .tokenQuota, limit: quota, remaining: max(0, quota - used - reservation.tokens),
            resetsIn: .seconds(max(0, period.end.timeIntervalSince(instant).rounded(.up))))
    }

    func settle(_ reservation: Reservation, used tokens: Int, at instant: Date) {
        guard reservation.limits.tokenQuota != nil else { return }
        let period = BillingPeriod.containing(reservation.at, kind: reservation.limits.quotaPeriod)
        quotas.withLock { quotas in
            // A request that started in a period that has since rolled over counts in that period, not this one.
            guard quotas[reservation.subscription]?.period == period else { return }
            quotas[reservation.subscription]!.held[reservation.requestID] = nil
            if tokens > 0 { quotas[reservation.subscription]!.recent.append((instant, tokens)) }
        }
    }

    /// Reloads period usage for every subscription whose product has a quota. Requests served in the last
    /// `localHorizon` keep counting locally, since they may not have landed yet; holds of requests in flight stay.
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
                    let current = quotas[subscription].flatMap { $0.period == period ? $0 : nil }
                    quotas[subscription] = Quota(
                        period: period, stored: stored[subscription] ?? 0, recent: current?.recent.filter { $0.at >= horizon } ?? [],
                        held: current?.held.filter { $0.value.until > instant } ?? [:])
                }
            }
        }
    }
}
