import Foundation
import HTTPTypes
import Logging
import PostgresNIO
import ServiceLifecycle
import Synchronization
import TollgateCore
import TollgateStore

/// Token limits per subscription, like APIM's `llm-token-limit`, from the subscription's product:
/// - `tokens_per_minute`: a sliding one-minute window of tokens used, kept in memory by each instance
///   (each instance enforces the full limit on the traffic it sees). Over it: 429 with `Retry-After`.
/// - `token_quota` per `quota_period`: tokens used in the current UTC period, from PostgreSQL's hourly rollup
///   (shared by every instance, refreshed every few seconds) plus what this instance served since. Over it: 403
///   until the period rolls over.
/// A request is admitted while the subscription is under its limits; its actual tokens count once it completes.
public final class TokenLimiter: Sendable {
    struct Window {
        /// Tokens per second-of-use, for the last 60 seconds.
        var buckets: [Int64: Int] = [:]
        func used(now: Int64) -> Int { buckets.reduce(0) { $1.key > now - 60 ? $0 + $1.value : $0 } }
    }
    struct Quota {
        var period: BillingPeriod
        /// Tokens in PostgreSQL's rollup for the period at the last refresh.
        var stored: Int
        /// Tokens this instance served recently, by when: what may not be in `stored` yet.
        var recent: [(at: Date, tokens: Int)]
        var local: Int { recent.reduce(0) { $0 + $1.tokens } }
    }
    /// How long a served request counts locally after a refresh: comfortably longer than the writer takes to land it,
    /// so nothing is missed (a request landed and still counted locally errs on the side of refusing early).
    let localHorizon: Duration = .seconds(5)
    private let windows = Mutex<[SubscriptionID: Window]>([:])
    private let quotas = Mutex<[SubscriptionID: Quota]>([:])
    let now: @Sendable () -> Date

    public init(now: @escaping @Sendable () -> Date = { Date() }) {
        self.now = now
    }

    /// Throws the 429 or 403 the caller gets when the subscription is over a limit.
    func admit(_ subscription: CatalogSnapshot.Subscription, limits: ProductLimits) throws(GatewayError) {
        let instant = now()
        let second = Int64(instant.timeIntervalSince1970.rounded(.down))
        if let tpm = limits.tokensPerMinute {
            let (used, oldest) = windows.withLock { windows -> (Int, Int64?) in
                guard var window = windows[subscription.id] else { return (0, nil) }
                window.buckets = window.buckets.filter { $0.key > second - 60 }
                windows[subscription.id] = window
                return (window.used(now: second), window.buckets.keys.min())
            }
            if used >= tpm {
                // Until the oldest second in the window leaves it.
                let retryAfter = max(1, (oldest ?? second) + 60 - second)
                throw GatewayError(
                    status: .tooManyRequests, type: "rate_limit_error", code: "tokens_per_minute_exceeded",
                    message: "Subscription \(subscription.id) used \(used) of its \(tpm) tokens per minute. Retry after \(retryAfter) seconds.",
                    headers: [.retryAfter: "\(retryAfter)"])
            }
        }
        if let quota = limits.tokenQuota {
            let period = BillingPeriod.containing(instant, kind: limits.quotaPeriod)
            let used = quotas.withLock { quotas -> Int in
                guard let state = quotas[subscription.id], state.period == period else { return 0 }
                return state.stored + state.local
            }
            if used >= quota {
                throw GatewayError(
                    status: .forbidden, type: "insufficient_quota", code: "token_quota_exceeded",
                    message: "Subscription \(subscription.id) used its quota of \(quota) tokens for this \(limits.quotaPeriod.rawValue) period; it resets at \(period.end.iso8601).")
            }
        }
    }

    /// Counts a completed request's tokens.
    func consumed(_ tokens: Int, by subscription: SubscriptionID, limits: ProductLimits) {
        guard tokens > 0 else { return }
        let instant = now()
        if limits.tokensPerMinute != nil {
            let second = Int64(instant.timeIntervalSince1970.rounded(.down))
            windows.withLock { $0[subscription, default: Window()].buckets[second, default: 0] += tokens }
        }
        if limits.tokenQuota != nil {
            let period = BillingPeriod.containing(instant, kind: limits.quotaPeriod)
            quotas.withLock { quotas in
                if quotas[subscription]?.period != period { quotas[subscription] = Quota(period: period, stored: 0, recent: []) }
                quotas[subscription]?.recent.append((instant, tokens))
            }
        }
    }

    /// Reloads period usage from PostgreSQL for every subscription whose product has a quota.
    /// Requests served in the last `localHorizon` keep counting locally, since they may not have landed yet.
    public func refreshQuotas(catalog: CatalogSnapshot, client: PostgresClient, logger: Logger) async throws {
        let instant = now()
        var periods: [PeriodKind: [String]] = [:]
        for subscription in catalog.subscriptions.values {
            guard let product = subscription.product.flatMap({ catalog.products[$0] }), product.limits.tokenQuota != nil else { continue }
            periods[product.limits.quotaPeriod, default: []].append(subscription.id.rawValue)
        }
        for (kind, ids) in periods {
            let period = BillingPeriod.containing(instant, kind: kind)
            let rows = try await client.query("""
                SELECT subscription_id, sum(total_tokens)::bigint FROM usage_hourly
                WHERE subscription_id = ANY(\(ids)) AND hour_start >= \(period.start) AND hour_start < \(period.end)
                GROUP BY subscription_id
                """, logger: logger)
            var stored: [String: Int] = [:]
            for try await (id, total) in rows.decode((String, Int).self) { stored[id] = total }
            let horizon = instant.addingTimeInterval(-Double(localHorizon.components.seconds))
            quotas.withLock { quotas in
                for id in ids {
                    let subscription = SubscriptionID(id)
                    let recent = quotas[subscription].map { $0.period == period ? $0.recent.filter { $0.at >= horizon } : [] } ?? []
                    quotas[subscription] = Quota(period: period, stored: stored[id] ?? 0, recent: recent)
                }
            }
        }
    }
}

/// Refreshes quota usage from PostgreSQL every few seconds.
public struct QuotaRefresher: Service {
    let limiter: TokenLimiter
    let catalog: GatewayCatalog
    let client: PostgresClient
    let interval: Duration
    let logger: Logger

    public init(limiter: TokenLimiter, catalog: GatewayCatalog, client: PostgresClient, interval: Duration = .seconds(2), logger: Logger) {
        self.limiter = limiter
        self.catalog = catalog
        self.client = client
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                try await limiter.refreshQuotas(catalog: catalog.snapshot, client: client, logger: logger)
            } catch {
                logger.debug("Quota refresh failed; using the last figures", metadata: ["error": "\(error)"])
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
    }
}
