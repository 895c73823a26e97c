import TollgateCore
import TollgateStore

/// Lets only an active subscription call.
///
/// Reads `request.subscription`; changes nothing. Refuses a suspended or cancelled subscription with 403
/// `subscription_suspended` / `subscription_cancelled`, giving the recorded reason.
struct CheckAccessStep: GatewayStep {
    func run(_ request: inout ProxyRequest) throws(GatewayError) -> StepOutcome {
        let subscription = try request.required(request.subscription)
        guard subscription.state == .active else {
            throw GatewayError.subscriptionInactive(subscription.id, state: subscription.state, reason: subscription.stateReason)
        }
        return .next
    }
}
