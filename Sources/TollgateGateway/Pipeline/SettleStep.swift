import TollgateCore
import TollgateStore

/// Settles the request with its limits: registers the after-reply work that counts the metered tokens against every
/// limit of the caller's product (the tokens-per-minute window, the period quota).
///
/// Reads `request.limits` and `request.subscription`; adds itself to `request.afterReply` when the product has limits;
/// never refuses. Runs after `MeterStep`, whose `reply.event` it reads.
struct SettleStep: GatewayStep, ReplyObserver {
    let limiter: TokenLimiter

    func run(_ request: inout ProxyRequest) throws(GatewayError) -> StepOutcome {
        if request.limits != nil { request.afterReply.append(self) }
        return .next
    }

    func replied(_ reply: inout ProxyReply, to request: ProxyRequest) {
        guard let limits = request.limits, let event = reply.event else { return }
        limiter.consumed(event.usage.totalTokens, by: event.subscription, limits: limits)
    }
}
