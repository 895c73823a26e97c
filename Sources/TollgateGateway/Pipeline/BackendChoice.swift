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
    /// The body as parsed, before any backend's rewrite: what a failover starts again from.
    var parsedBytes: [UInt8]
    /// The members of the deployment's pool (one for a name on one backend).
    var pool: [CatalogSnapshot.Route]
    /// The members still to try if this attempt fails, in order.
    var remaining: [CatalogSnapshot.Route]
    /// This attempt's number, from 1.
    var attempt = 1

    /// A pool of several members fails over and keeps health; a name on one backend is forwarded as it always was.
    var failsOver: Bool { pool.count > 1 }
}
