import TollgateCore
import TollgateStore

/// Settles the request with its limits: registers the after-reply work that replaces the request's reservation by
/// the metered tokens in every limit of the caller's product (the minute windows, the period quota). A reply with
/// nothing metered (an upstream error, no reply) releases the reservation.
///
/// Reads `request.reservation`; adds itself to `request.afterReply` when the admit step reserved; never refuses. Runs
/// after `MeterStep`, whose `reply.event` it reads.
struct SettleStep: GatewayStep, ReplyObserver {
    let limiter: TokenLimiter

    func run(_ request: inout ProxyRequest) throws(GatewayError) -> StepOutcome {
        if request.reservation != nil { request.afterReply.append(self) }
        return .next
    }

    func replied(_ reply: inout ProxyReply, to request: ProxyRequest) {
        guard let reservation = request.reservation else { return }
        limiter.settle(reservation, used: reply.event?.usage.totalTokens ?? 0)
    }
}
