import Foundation
import HTTPTypes
import Logging
import Synchronization
import TollgateCore
import TollgateStore

/// `tokens_per_minute`: a sliding one-minute window of tokens used, kept in memory by each instance (each instance
/// enforces the full limit on the traffic it sees). Over it: 429 `tokens_per_minute_exceeded` with `Retry-After`.
final class TokensPerMinuteLimit: Limit {
    struct Window {
        /// Tokens per second-of-use, for the last 60 seconds.
        var buckets: [Int64: Int] = [:]
        func used(now: Int64) -> Int { buckets.reduce(0) { $1.key > now - 60 ? $0 + $1.value : $0 } }
    }
    private let windows = Mutex<[SubscriptionID: Window]>([:])

    func admit(_ subscription: SubscriptionID, product limits: ProductLimits, at instant: Date) throws(GatewayError) {
        guard let tpm = limits.tokensPerMinute else { return }
        let second = Self.second(of: instant)
        let (used, oldest) = windows.withLock { windows -> (Int, Int64?) in
            guard var window = windows[subscription] else { return (0, nil) }
            window.buckets = window.buckets.filter { $0.key > second - 60 }
            windows[subscription] = window
            return (window.used(now: second), window.buckets.keys.min())
        }
        guard used >= tpm else { return }
        // Until the oldest second in the window leaves it.
        let retryAfter = max(1, (oldest ?? second) + 60 - second)
        throw GatewayError(
            status: .tooManyRequests, type: "rate_limit_error", code: "tokens_per_minute_exceeded",
            message: "Subscription \(subscription) used \(used) of its \(tpm) tokens per minute. Retry after \(retryAfter) seconds.",
            headers: [.retryAfter: "\(retryAfter)"])
    }

    func consume(_ tokens: Int, by subscription: SubscriptionID, product limits: ProductLimits, at instant: Date) {
        guard tokens > 0, limits.tokensPerMinute != nil else { return }
        let second = Self.second(of: instant)
        windows.withLock { $0[subscription, default: Window()].buckets[second, default: 0] += tokens }
    }

    /// The window is this instance's own traffic: nothing to fetch.
    func refresh(catalog: CatalogSnapshot, from sources: LimitSources, at instant: Date, logger: Logger) async throws {}

    private static func second(of instant: Date) -> Int64 { Int64(instant.timeIntervalSince1970.rounded(.down)) }
}
