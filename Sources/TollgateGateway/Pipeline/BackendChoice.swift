import TollgateCore
import TollgateStore

/// Where a request goes, decided by the choose-backend step from the body's `model` (or an Azure path's deployment).
struct BackendChoice {
    var route: CatalogSnapshot.Route
    var backend: BackendSpec
    var dialect: any UpstreamDialect
    /// The request as parsed (keys unescaped if they had to be), before the dialect's rewrite.
    var json: JSONObjectReader
    /// The client asked for a stream (`"stream": true`).
    var streamed: Bool
    /// The gateway set `stream_options.include_usage` on the client's behalf: the usage chunk is hidden again.
    var injectedUsage = false
    /// The request body as forwarded (after the dialect's rewrite), for the mock and for usage estimates.
    var forwardedBytes: [UInt8]
}
