import Foundation
import NIOHTTP1
import TollgateCore
import TollgateStore

/// Azure OpenAI: `{base_url}/openai/deployments/{deployment}/{operation}?api-version=` (the Responses API at
/// `{base_url}/openai/responses`), the credential as `api-key`. The deployment in the URL names the model, so the
/// body's `model` is left as the client sent it.
struct AzureDialect: UpstreamDialect {
    /// When neither the client (`?api-version=`) nor the backend configures one.
    static let defaultAPIVersion = "2024-10-21"

    func rewrite(_ json: JSONObjectReader, route: CatalogSnapshot.Route, operation: OpenAIOperation, streamed: Bool) -> RequestRewrite {
        includeUsage(json, operation: operation, streamed: streamed)
    }

    func url(base: String, call: ProxyCall, route: CatalogSnapshot.Route, backend: BackendSpec) -> String {
        let apiVersion = call.queryParameter("api-version") ?? backend.apiVersion ?? Self.defaultAPIVersion
        let encodedVersion = apiVersion.addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed) ?? apiVersion
        if call.operation == .responses { return "\(base)/openai/responses?api-version=\(encodedVersion)" }
        let deployment = route.deployment.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? route.deployment
        return "\(base)/openai/deployments/\(deployment)/\(call.operation.pathSuffix)?api-version=\(encodedVersion)"
    }

    func authorize(_ headers: inout HTTPHeaders, credential: String) {
        headers.replaceOrAdd(name: "api-key", value: credential)
    }
}
