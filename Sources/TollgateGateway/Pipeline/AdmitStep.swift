import TollgateCore
import TollgateStore

/// Admits the caller against every token limit of its product (`TokenLimiter`'s limits, in order).
///
/// Reads `request.subscription` and `request.limits`; changes nothing. Refuses with the first limit's error (429
/// `tokens_per_minute_exceeded` with `Retry-After`, 403 `token_quota_exceeded`). What the request used is counted
/// against the limits by `SettleStep` once the reply is metered.
struct AdmitStep: GatewayStep {
    let limiter: TokenLimiter

    func run(_ request: inout ProxyRequest) throws(GatewayError) -> StepOutcome {
        guard let limits = request.limits else { return .next }
        let subscription = try request.required(request.subscription)
        try limiter.admit(subscription.id, limits: limits)
        return .next
    }
}
