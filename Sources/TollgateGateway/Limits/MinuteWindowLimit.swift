import Foundation
import HTTPTypes
import Logging
import Synchronization
import TollgateCore
import TollgateStore

/// `tokens_per_minute` and `requests_per_minute`: a sliding one-minute window of what was reserved and used, kept in
/// memory by each instance (each instance enforces the full limit on the traffic it sees). A request is refused with
/// 429 (`tokens_per_minute_exceeded`, `requests_per_minute_exceeded`) and `Retry-After` / `retry-after-ms` when the
/// window is full or its reservation does not fit in what is left; a request larger than the whole limit is refused
/// without a retry time (it never fits).
///
/// A token reservation counts in the second it was admitted; settling replaces it there by the tokens used, so the
/// window holds the real usage once requests complete, and a reservation that never settles leaves the window with
/// its second.
final class MinuteWindowLimit: Limit {
    typealias Measure = MinuteMeasure

    struct Window {
        /// What was used per second, for the last 60 seconds.
        var buckets: [Int64: Int] = [:]
        mutating func drop(before second: Int64) { buckets = buckets.filter { $0.key > second - 60 } }
        var used: Int { buckets.values.reduce(0, +) }
    }

    let measure: Measure
    private let windows = Mutex<[SubscriptionID: Window]>([:])

    init(_ measure: Measure) {
        self.measure = measure
    }

    func reserve(_ reservation: Reservation) throws(GatewayError) -> LimitStanding? {
        guard let limit = measure.limit(of: reservation.limits) else { return nil }
        let second = Self.second(of: reservation.at)
        let amount = measure.amount(of: reservation)
        let outcome = windows.withLock { windows -> Result<LimitStanding, GatewayError> in
            var window = windows[reservation.subscription] ?? Window()
            window.drop(before: second)
            let used = window.used
            if used >= limit || used + amount > limit {
                windows[reservation.subscription] = window
                return .failure(refusal(reservation, limit: limit, used: used, amount: amount, window: window, second: second))
            }
            window.buckets[second, default: 0] += amount
            windows[reservation.subscription] = window
            let newest = window.buckets.keys.max() ?? second
            return .success(LimitStanding(
                kind: measure.standingKind, limit: limit, remaining: max(0, limit - used - amount),
                resetsIn: .seconds(newest + 60 - second)))
        }
        return try outcome.get()
    }

    func settle(_ reservation: Reservation, used tokens: Int, at instant: Date) {
        guard measure == .tokens, measure.limit(of: reservation.limits) != nil else { return }
        let second = Self.second(of: reservation.at)
        let change = tokens - reservation.tokens
        guard change != 0 else { return }
        windows.withLock { windows in
            // A second that has left the window (a request longer than a minute) is not brought back.
            guard let held = windows[reservation.subscription]?.buckets[second] else { return }
            windows[reservation.subscription]?.buckets[second] = max(0, held + change)
        }
    }

    /// The window is this instance's own traffic: nothing to fetch.
    func refresh(catalog: CatalogSnapshot, from sources: LimitSources, at instant: Date, logger: Logger) async throws {}

    private func refusal(_ reservation: Reservation, limit: Int, used: Int, amount: Int, window: Window, second: Int64) -> GatewayError {
        guard amount <= limit else { return measure.tooLarge(reservation, amount: amount, limit: limit) }
        // Until enough of the oldest seconds leave the window for the reservation to fit.
        let needed = max(1, used + amount - limit)
        var freed = 0
        var retryAfter: Int64 = 60
        for (bucket, value) in window.buckets.sorted(by: { $0.key < $1.key }) {
            freed += value
            if freed >= needed {
                retryAfter = max(1, bucket + 60 - second)
                break
            }
        }
        return GatewayError(
            status: .tooManyRequests, type: "rate_limit_error", code: measure.code,
            message: "Subscription \(reservation.subscription) used \(used) of its \(limit) \(measure.unit) per minute"
                + (measure == .tokens ? " and this request may use \(amount)" : "") + ". Retry after \(retryAfter) seconds.",
            headers: measure.refusalHeaders(limit: limit, remaining: limit - used, retryAfter: retryAfter))
    }

    private static func second(of instant: Date) -> Int64 { Int64(instant.timeIntervalSince1970.rounded(.down)) }
}

/// What a minute limit counts, and what its settings, standings and refusals are called.
enum MinuteMeasure: Sendable {
    case tokens, requests

    func limit(of limits: ProductLimits) -> Int? {
        switch self {
        case .tokens: limits.tokensPerMinute
        case .requests: limits.requestsPerMinute
        }
    }

    /// What a reservation takes from the limit: its tokens, or one request.
    func amount(of reservation: Reservation) -> Int {
        switch self {
        case .tokens: reservation.tokens
        case .requests: 1
        }
    }

    var unit: String { self == .tokens ? "tokens" : "requests" }
    var code: String { self == .tokens ? "tokens_per_minute_exceeded" : "requests_per_minute_exceeded" }
    var standingKind: LimitStanding.Kind { self == .tokens ? .tokensPerMinute : .requestsPerMinute }

    /// The refusal of a reservation larger than the whole limit: it never fits, so no retry time.
    func tooLarge(_ reservation: Reservation, amount: Int, limit: Int) -> GatewayError {
        var headers = HTTPFields()
        headers[HTTPField.Name("x-ratelimit-limit-\(unit)")!] = "\(limit)"
        return GatewayError(
            status: .tooManyRequests, type: "rate_limit_error", code: code,
            message: "Request too large for subscription \(reservation.subscription): it may use \(amount) \(unit) (prompt "
                + "\(reservation.promptTokens), completion cap \(reservation.completionCap)) and the limit is \(limit) \(unit) per "
                + "minute. Lower max_tokens (or max_completion_tokens, max_output_tokens) or the prompt.",
            headers: headers)
    }

    /// A refusal's headers: when to retry (`Retry-After`, `retry-after-ms`) and where the caller stands, as OpenAI
    /// sends them on its own 429s (`x-ratelimit-limit-*`, `-remaining-*`, `-reset-*`).
    func refusalHeaders(limit: Int, remaining: Int, retryAfter seconds: Int64) -> HTTPFields {
        var headers: HTTPFields = [.retryAfter: "\(seconds)", .retryAfterMilliseconds: "\(seconds * 1000)"]
        headers[HTTPField.Name("x-ratelimit-limit-\(unit)")!] = "\(limit)"
        headers[HTTPField.Name("x-ratelimit-remaining-\(unit)")!] = "\(max(0, remaining))"
        headers[HTTPField.Name("x-ratelimit-reset-\(unit)")!] = RateLimitHeaders.goDuration(.seconds(seconds))
        return headers
    }
}

extension HTTPField.Name {
    static let retryAfterMilliseconds = HTTPField.Name("retry-after-ms")!
}
