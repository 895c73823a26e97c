import Foundation
import Logging
import ServiceLifecycle
import TollgateCore
import TollgateStore

/// Every limit the gateway enforces, like APIM's `llm-token-limit`, in the order they are asked: reserve, then
/// settle. The admit step reserves a request's estimated tokens against them all before it is forwarded; the settle
/// step replaces the reservation by the metered usage.
///
/// A new kind of limit is a `Limit` in its own file in this folder, one entry in `standardLimits`, and its setting in
/// `ProductLimits` (with its `products` column and its read in `CatalogStore`).
public final class TokenLimiter: Sendable {
    /// Rates first: their 429 says when to retry, which a quota's 403 cannot. With `leases` the minute limits are
    /// shared by every instance (`SharedMinuteLimit`); without, each instance enforces them on its own traffic over a
    /// sliding minute (`MinuteWindowLimit`: one instance, and the DB-free tests).
    static func standardLimits(leases: AllowanceLeases?) -> [any Limit] {
        if let leases { return [SharedMinuteLimit(.requests, leases: leases), SharedMinuteLimit(.tokens, leases: leases), PeriodQuotaLimit()] }
        return [MinuteWindowLimit(.requests), MinuteWindowLimit(.tokens), PeriodQuotaLimit()]
    }

    let limits: [any Limit]
    let now: @Sendable () -> Date
    /// The shared allowances, when the minute limits are shared.
    public let leases: AllowanceLeases?

    public convenience init(leases: AllowanceLeases? = nil, now: @escaping @Sendable () -> Date = { Date() }) {
        self.init(limits: Self.standardLimits(leases: leases), leases: leases, now: now)
    }

    init(limits: [any Limit], leases: AllowanceLeases? = nil, now: @escaping @Sendable () -> Date) {
        self.limits = limits
        self.leases = leases
        self.now = now
    }

    /// The I/O some limit needs before the reservation can be decided (see `Limit.workBeforeReserving`), all of it
    /// in one piece of work; nil when every limit can decide now.
    func workBeforeReserving(_ subscription: SubscriptionID, limits product: ProductLimits, requestID: UUID, promptTokens: Int, completionCap: Int)
        -> (@Sendable () async -> Void)?
    {
        let reservation = Reservation(
            requestID: requestID, subscription: subscription, limits: product, promptTokens: promptTokens, completionCap: completionCap, at: now())
        let work = limits.compactMap { $0.workBeforeReserving(reservation) }
        guard !work.isEmpty else { return nil }
        return { for piece in work { await piece() } }
    }

    /// Reserves `promptTokens + completionCap` against every limit and returns the reservation with where the
    /// subscription stands; throws the refusal of the first limit it does not fit, having released what the limits
    /// before it took.
    func reserve(
        _ subscription: SubscriptionID, limits product: ProductLimits, requestID: UUID = UUID(), promptTokens: Int = 0, completionCap: Int = 0
    ) throws(GatewayError) -> (reservation: Reservation, standings: [LimitStanding]) {
        let reservation = Reservation(
            requestID: requestID, subscription: subscription, limits: product, promptTokens: promptTokens, completionCap: completionCap, at: now())
        var standings: [LimitStanding] = []
        for (index, limit) in limits.enumerated() {
            do {
                if let standing = try limit.reserve(reservation) { standings.append(standing) }
            } catch {
                for taken in limits[..<index] { taken.settle(reservation, used: 0, at: reservation.at) }
                throw error
            }
        }
        return (reservation, standings)
    }

    /// Replaces a reservation by the tokens its request used, in every limit.
    func settle(_ reservation: Reservation, used tokens: Int) {
        let instant = now()
        for limit in limits { limit.settle(reservation, used: tokens, at: instant) }
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
