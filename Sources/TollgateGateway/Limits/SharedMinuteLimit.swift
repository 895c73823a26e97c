import Foundation
import HTTPTypes
import Logging
import TollgateCore
import TollgateStore

/// `tokens_per_minute` and `requests_per_minute` shared by every instance: per fixed UTC minute, each instance admits
/// against the slices of the allowance it leased (`AllowanceLeases`), so the sum admitted by all instances in a minute
/// never passes the limit. The request path does no I/O while its instance's slice lasts; a request that finds it too
/// small waits for one lease (`workBeforeReserving`).
///
/// Refusals: 429 `tokens_per_minute_exceeded` / `requests_per_minute_exceeded` with `Retry-After` and
/// `retry-after-ms` until the next minute, when the minute's allowance is used up (by any instance); "Request too
/// large", without a retry time, for a reservation larger than the whole limit. With PostgreSQL unreachable and the
/// slice used up, the product's `failure_mode` decides: `open` admits (counted in `tollgate_admission_unleased_total`),
/// `closed` refuses with 503 `limits_unavailable`.
final class SharedMinuteLimit: Limit {
    let measure: MinuteMeasure
    let leases: AllowanceLeases

    init(_ measure: MinuteMeasure, leases: AllowanceLeases) {
        self.measure = measure
        self.leases = leases
    }

    private func key(_ reservation: Reservation) -> AllowanceLeases.Key {
        AllowanceLeases.Key(
            kind: measure == .tokens ? .tokensPerMinute : .requestsPerMinute, scope: "subscription:\(reservation.subscription.rawValue)",
            window: AllowanceLeases.window(of: reservation.at))
    }

    func workBeforeReserving(_ reservation: Reservation) -> (@Sendable () async -> Void)? {
        guard let limit = measure.limit(of: reservation.limits) else { return nil }
        let amount = measure.amount(of: reservation)
        guard amount <= limit else { return nil }
        let key = key(reservation)
        guard case .needLease = leases.peek(amount, key: key), leases.mayLease(at: reservation.at) else { return nil }
        let leases = self.leases
        let strict = reservation.limits.strict
        let instant = reservation.at
        return { await leases.acquire(amount, key: key, allowance: limit, strict: strict, at: instant) }
    }

    func reserve(_ reservation: Reservation) throws(GatewayError) -> LimitStanding? {
        guard let limit = measure.limit(of: reservation.limits) else { return nil }
        let amount = measure.amount(of: reservation)
        let (unit, code) = (measure.unit, measure.code)
        let key = key(reservation)
        let resetsIn = max(1, Int64(key.window.addingTimeInterval(60).timeIntervalSince(reservation.at).rounded(.up)))
        guard amount <= limit else { throw measure.tooLarge(reservation, amount: amount, limit: limit) }
        switch leases.draw(amount, key: key, allowance: limit, strict: reservation.limits.strict, at: reservation.at) {
        case .taken(let remaining):
            return LimitStanding(kind: measure.standingKind, limit: limit, remaining: max(0, remaining), resetsIn: .seconds(resetsIn))
        case .needLease where leases.degraded:
            guard reservation.limits.failureMode == .open else {
                throw GatewayError(
                    status: .serviceUnavailable, type: "api_error", code: "limits_unavailable",
                    message: "The gateway cannot check subscription \(reservation.subscription)'s \(unit) per minute right now and its "
                        + "product refuses requests it cannot check. Retry shortly.",
                    headers: [.retryAfter: "1", .retryAfterMilliseconds: "1000"])
            }
            leases.admitUnleased(amount)
            return nil
        case .needLease, .exhausted:
            throw GatewayError(
                status: .tooManyRequests, type: "rate_limit_error", code: code,
                message: "Subscription \(reservation.subscription) has used its \(limit) \(unit) for this minute"
                    + (measure == .tokens ? " (this request may use \(amount))" : "") + ". Retry after \(resetsIn) seconds.",
                headers: measure.refusalHeaders(limit: limit, remaining: leases.remaining(key: key) ?? 0, retryAfter: resetsIn))
        }
    }

    func settle(_ reservation: Reservation, used tokens: Int, at instant: Date) {
        guard measure == .tokens, measure.limit(of: reservation.limits) != nil else { return }
        let change = reservation.tokens - tokens
        guard change != 0 else { return }
        leases.adjust(change, key: key(reservation))
    }

    /// The keeper refreshes the slices; nothing to fetch here.
    func refresh(catalog: CatalogSnapshot, from sources: LimitSources, at instant: Date, logger: Logger) async throws {}
}
