import TollgateCore
import TollgateStore

/// OpenAI's API, or anything that speaks it: `{base_url}/{operation}`, `Authorization: Bearer`, the upstream model in
/// the body. Everything is the protocol's default.
struct OpenAIDialect: UpstreamDialect {
    func url(base: String, call: ProxyCall, route: CatalogSnapshot.Route, backend: BackendSpec) -> String {
        "\(base)/\(call.operation.pathSuffix)"
    }
}
