import Foundation
import NIOCore
import TollgateCore
import TollgateStore

/// Reads the request body and chooses where it goes: the route named by an Azure path's deployment or the body's
/// `model`, its backend, and that backend kind's dialect.
///
/// Reads `request.call`, `request.body` and `request.catalog`; writes `request.choice`. Refuses with 400
/// `invalid_request` (not a JSON object, no model) or 404 `model_not_found`.
struct ChooseBackendStep: GatewayStep {
    func run(_ request: inout ProxyRequest) throws(GatewayError) -> StepOutcome {
        let call = try request.required(request.call)
        let catalog = try request.required(request.catalog)
        var bytes = Array(request.body.readableBytesView)
        guard var json = JSONObjectReader(document: bytes) else {
            throw GatewayError.invalidRequest("The request body must be a JSON object.")
        }
        var rewritten = false
        if json.hasEscapedKeys, let normalized = Self.normalizedJSON(bytes), let reader = JSONObjectReader(document: normalized) {
            // A key spelled with escapes (`"mod\u0065l"`) would hide it from a byte-level reader: forward the body
            // re-serialized, with plain keys, so the upstream reads exactly what the gateway read.
            bytes = normalized
            json = reader
            rewritten = true
        }
        let requestedModel = json.string("model")
        guard let routeName = call.deployment ?? requestedModel, !routeName.isEmpty else {
            throw GatewayError.invalidRequest("The request must name a model (`model`).", param: "model")
        }
        guard let route = catalog.routes[routeName], let backend = catalog.backends[route.backend] else {
            throw GatewayError.unknownDeployment(routeName)
        }
        if rewritten { request.body = ByteBuffer(bytes: bytes) }
        request.choice = BackendChoice(
            route: route, backend: backend, dialect: backend.kind.dialect, json: json, streamed: json.bool("stream") ?? false, forwardedBytes: bytes)
        return .next
    }

    /// The document re-serialized by Foundation (keys without escapes), or nil if it is not a JSON object.
    static func normalizedJSON(_ bytes: [UInt8]) -> [UInt8]? {
        guard let object = (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any],
            let data = try? JSONSerialization.data(withJSONObject: object)
        else { return nil }
        return Array(data)
    }
}
