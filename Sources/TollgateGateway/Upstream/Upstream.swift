import Foundation
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import Synchronization
import TollgateCore

/// Which upstream failure this is, in the caller's terms.
enum UpstreamFailure {
    case timeout
    case unreachable

    init(_ error: any Error) {
        if let error = error as? UpstreamClientError, error == .readTimeout {
            self = .timeout
        } else {
            self = .unreachable
        }
    }

    var gatewayError: GatewayError { self == .timeout ? .upstreamTimeout : .upstreamUnavailable }
}

enum UpstreamHeaders {
    /// Client headers that never go upstream: the client's own credentials, hop-by-hop headers, what the gateway
    /// sets itself, and `Expect` (the gateway has answered it and holds the whole body).
    static let droppedRequestHeaders: Set<String> = [
        "host", "authorization", "api-key", "ocp-apim-subscription-key", "content-length", "transfer-encoding", "connection", "expect",
        "keep-alive", "proxy-authorization", "proxy-connection", "te", "trailer", "upgrade", "accept-encoding", "cookie",
        "x-forwarded-for", "x-request-id",
    ]
    /// Upstream headers that are not passed back: hop-by-hop, and lengths the gateway recomputes.
    static let droppedResponseHeaders: Set<String> = [
        "content-length", "transfer-encoding", "connection", "keep-alive", "proxy-authenticate", "te", "trailer", "upgrade",
        "set-cookie", "x-request-id",
    ]
}
