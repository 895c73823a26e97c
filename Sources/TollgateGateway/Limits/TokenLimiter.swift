import Foundation
import Logging
import ServiceLifecycle
import TollgateCore
import TollgateStore

/// Every token limit the gateway enforces, like APIM's `llm-token-limit`, in the order they are asked. The admit step
/// asks them all before a request is forwarded; the settle step counts a completed request's tokens against them all.
///
/// A new kind of limit is a `Limit` in its own file in this folder, one entry in `standardLimits`, and its setting in
/// `ProductLimits` (with its `products` column and its read in `CatalogStore`).
public final class TokenLimiter: Sendable {
    /// Tokens per minute first: its 429 says when to retry, which a quota's 403 cannot.
    static func standardLimits() -> [any Limit] { [TokensPerMinuteLimit(), PeriodQuotaLimit()] }

    let limits: [any Limit]
    let now: @Sendable () -> Date

    public convenience init(now: @escaping @Sendable () -> Date = { Date() }) {
        self.init(limits: Self.standardLimits(), now: now)
    }

    init(limits: [any Limit], now: @escaping @Sendable () -> Date) {
        self.limits = limits
        self.now = now
    }

    /// Throws the refusal of the first limit the subscription is over.
    func admit(_ subscription: SubscriptionID, limits product: ProductLimits) throws(GatewayError) {
        let instant = now()
        for limit in limits { try limit.admit(subscription, product: product, at: instant) }
    }

    /// Counts a completed request's tokens against every limit.
    func consumed(_ tokens: Int, by subscription: SubscriptionID, limits product: ProductLimits) {
        let instant = now()
        for limit in limits { limit.consume(tokens, by: subscription, product: product, at: instant) }
    }

    /// Refreshes every limit from `sources` (other instances' usage), for the subscriptions in `catalog`.
    public func refresh(catalog: CatalogSnapshot, from sources: LimitSources, logger: Logger) async throws {
        let instant = now()
        for limit in limits { try await limit.refresh(catalog: catalog, from: sources, at: instant, logger: logger) }
    }
}

/// Refreshes the limits every few seconds (period usage landed by every instance).
public struct LimitRefresher: Service {
    let limiter: TokenLimiter
    let catalog: GatewayCatalog
    let sources: LimitSources
    let interval: Duration
    let logger: Logger

    public init(limiter: TokenLimiter, catalog: GatewayCatalog, sources: LimitSources, interval: Duration = .seconds(2), logger: Logger) {
        self.limiter = limiter
        self.catalog = catalog
        self.sources = sources
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                try await limiter.refresh(catalog: catalog.snapshot, from: sources, logger: logger)
            } catch {
                logger.debug("Limit refresh failed; using the last figures", metadata: ["error": "\(error)"])
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
    }
}
