import Foundation
import Logging
import TollgateCore
import TollgateStore

/// One kind of limit on a subscription's tokens, read from its product (`ProductLimits`). The admit step asks every
/// limit before a request is forwarded; the settle step tells every limit what the request used once its reply is metered.
///
/// `admit` and `consume` run on the event loop, on every request: they must not wait for I/O. Whatever a limit needs
/// from elsewhere (other instances' usage) it fetches in `refresh`, which runs off the request path every few seconds.
/// A limit whose setting is absent from the product lets the request through and counts nothing.
public protocol Limit: Sendable {
    /// Throws the refusal (`GatewayError`, OpenAI-shaped: 429 with `Retry-After` for a rate, 403 for a quota) when the
    /// subscription is over this limit at `instant`.
    func admit(_ subscription: SubscriptionID, product limits: ProductLimits, at instant: Date) throws(GatewayError)

    /// Counts the tokens of a request that was admitted and has completed.
    func consume(_ tokens: Int, by subscription: SubscriptionID, product limits: ProductLimits, at instant: Date)

    /// Brings what the limit knows up to date for every subscription in `catalog`.
    func refresh(catalog: CatalogSnapshot, from sources: LimitSources, at instant: Date, logger: Logger) async throws
}

/// What the limits may read when they refresh, off the request path.
public struct LimitSources: Sendable {
    /// Period usage landed by every instance (the period quota).
    public var quotaUsage: any QuotaUsageRepository

    public init(quotaUsage: any QuotaUsageRepository) {
        self.quotaUsage = quotaUsage
    }
}
