import Foundation
import Logging
import TollgateCore
import TollgateStore

/// One kind of limit on a subscription, read from its product (`ProductLimits`). Before a request is forwarded the
/// admit step reserves what it may use against every limit (`reserve`); once its reply is metered the settle step
/// replaces the reservation by what it used (`settle`).
///
/// `reserve` and `settle` run on the event loop, on every request: they must not wait for I/O. Whatever a limit needs
/// from elsewhere (other instances' usage) it fetches in `refresh`, which runs off the request path every few seconds.
/// A limit whose setting is absent from the product lets the request through, holds nothing and returns no standing.
public protocol Limit: Sendable {
    /// Holds the reservation against this limit and returns where the subscription stands after it; throws the
    /// refusal (`GatewayError`, OpenAI-shaped: 429 with `Retry-After` for a rate, 403 for a quota) when the
    /// subscription is already at the limit or the reservation does not fit in what is left.
    func reserve(_ reservation: Reservation) throws(GatewayError) -> LimitStanding?

    /// Replaces what the reservation holds by the tokens the request used (0 releases it: nothing was generated).
    func settle(_ reservation: Reservation, used tokens: Int, at instant: Date)

    /// Brings what the limit knows up to date for every subscription in `catalog`.
    func refresh(catalog: CatalogSnapshot, from sources: LimitSources, at instant: Date, logger: Logger) async throws

    /// I/O the limit needs before it can decide on the reservation (a lease of the shared allowance), or nil. The
    /// admit step runs it off the event loop, then reserves again.
    func workBeforeReserving(_ reservation: Reservation) -> (@Sendable () async -> Void)?
}

extension Limit {
    public func workBeforeReserving(_ reservation: Reservation) -> (@Sendable () async -> Void)? { nil }
}

/// What one request holds against its product's limits from admission until it settles.
public struct Reservation: Sendable {
    public let requestID: UUID
    public let subscription: SubscriptionID
    public let limits: ProductLimits
    /// The prompt tokens counted from the request.
    public let promptTokens: Int
    /// The completion tokens it may generate: its own cap, else the product's `default_max_tokens`, else 0.
    public let completionCap: Int
    /// When it was admitted.
    public let at: Date

    public var tokens: Int { promptTokens + completionCap }

    public init(requestID: UUID, subscription: SubscriptionID, limits: ProductLimits, promptTokens: Int, completionCap: Int, at: Date) {
        self.requestID = requestID
        self.subscription = subscription
        self.limits = limits
        self.promptTokens = promptTokens
        self.completionCap = completionCap
        self.at = at
    }
}

/// Where a subscription stands against one limit once a request is admitted: what the `x-ratelimit-*` headers say.
public struct LimitStanding: Sendable, Equatable {
    public enum Kind: Sendable, Equatable { case tokensPerMinute, requestsPerMinute, tokenQuota }
    public let kind: Kind
    public let limit: Int
    public let remaining: Int
    /// Until the limit is back to its full allowance.
    public let resetsIn: Duration
}

/// What the limits may read when they refresh, off the request path.
public struct LimitSources: Sendable {
    /// Period usage landed by every instance (the period quota).
    public var quotaUsage: any QuotaUsageRepository

    public init(quotaUsage: any QuotaUsageRepository) {
        self.quotaUsage = quotaUsage
    }
}
