import NIOCore
import TollgateCore
import TollgateStore

/// Lets a caller use only the deployments its product's and subscription's `allowed_models` allow (`ModelAccess`).
///
/// Reads `request.subscription`, `request.catalog`, `request.call` and `request.body`; changes nothing. Refuses with
/// 403 `model_not_allowed`, naming the deployment. It runs before the limits are consulted and the backend chosen, so a
/// refused request is never forwarded nor counted.
///
/// A caller without lists (the common case) costs one dictionary lookup: the body is read only for a restricted caller.
/// A body this step cannot read a model from is let through: `ChooseBackendStep` refuses it with 400, reading the
/// same name the same way (`requestedDeployment`), so no spelling of `model` gets past one step and not the other.
struct ModelAccessStep: GatewayStep {
    func run(_ request: inout ProxyRequest) throws(GatewayError) -> StepOutcome {
        let subscription = try request.required(request.subscription)
        let catalog = try request.required(request.catalog)
        let access = catalog.modelAccess(of: subscription)
        guard !access.isUnrestricted else { return .next }
        let call = try request.required(request.call)
        guard let name = Self.requestedDeployment(call: call, body: request.body), !name.isEmpty else { return .next }
        guard access.allows(name) else { throw GatewayError.modelNotAllowed(name, subscription: subscription.id) }
        return .next
    }

    /// The deployment the request names, as `ChooseBackendStep` reads it: the Azure path's, else the body's `model`
    /// (read through escaped keys too); nil when there is none.
    static func requestedDeployment(call: ProxyCall, body: ByteBuffer) -> String? {
        if let deployment = call.deployment { return deployment }
        let bytes = Array(body.readableBytesView)
        guard var json = JSONObjectReader(document: bytes) else { return nil }
        if json.hasEscapedKeys, let normalized = ChooseBackendStep.normalizedJSON(bytes), let reader = JSONObjectReader(document: normalized) {
            json = reader
        }
        return json.string("model")
    }
}
