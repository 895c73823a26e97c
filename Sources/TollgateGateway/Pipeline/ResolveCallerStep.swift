import TollgateCore
import TollgateStore

/// Turns the authenticated key into its caller: the subscription it belongs to, and its product's limits.
///
/// Reads `request.key` and `request.catalog`; writes `request.subscription` and `request.limits`. Refuses with
/// `invalid_api_key` when the key's subscription is not in the catalog.
struct ResolveCallerStep: GatewayStep {
    func run(_ request: inout ProxyRequest) throws(GatewayError) -> StepOutcome {
        let key = try request.required(request.key)
        let catalog = try request.required(request.catalog)
        guard let subscription = catalog.subscriptions[key.subscription] else { throw GatewayError.invalidKey }
        request.subscription = subscription
        request.limits = subscription.product.flatMap { catalog.products[$0]?.limits }
        return .next
    }
}
