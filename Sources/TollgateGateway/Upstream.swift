import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import Synchronization
import TollgateCore

/// HTTP clients for upstream calls, one per (connect, read) timeout pair, since async-http-client sets timeouts per
/// client. Redirects are never followed: a redirect must not carry a backend credential elsewhere.
public final class UpstreamClients: Service, Sendable {
    private let clients = Mutex<[String: HTTPClient]>([:])

    public init() {}

    func client(connectTimeoutSeconds: Int, readTimeoutSeconds: Int) -> HTTPClient {
        let key = "\(connectTimeoutSeconds)/\(readTimeoutSeconds)"
        return clients.withLock { clients in
            if let client = clients[key] { return client }
            var configuration = HTTPClient.Configuration(
                redirectConfiguration: .disallow,
                timeout: .init(connect: .seconds(Int64(connectTimeoutSeconds)), read: .seconds(Int64(readTimeoutSeconds))))
            configuration.decompression = .disabled
            // A streamed reply holds its upstream connection for its whole length (HTTP/1.1), so the pool must open as many
            // as there are concurrent streams; a lower limit queues requests until they time out as 502s.
            configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 16_384
            let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
            clients[key] = client
            return client
        }
    }

    public func run() async throws {
        try? await gracefulShutdown()
        let all = clients.withLock { clients in
            defer { clients.removeAll() }
            return Array(clients.values)
        }
        for client in all { try? await client.shutdown() }
    }
}

/// Which upstream failure this is, in the caller's terms.
enum UpstreamFailure {
    case timeout
    case unreachable

    init(_ error: any Error) {
        if let error = error as? HTTPClientError, [.readTimeout, .deadlineExceeded, .writeTimeout].contains(error) {
            self = .timeout
        } else {
            self = .unreachable
        }
    }

    var gatewayError: GatewayError { self == .timeout ? .upstreamTimeout : .upstreamUnavailable }
}

enum UpstreamHeaders {
    /// Client headers that never go upstream: the client's own credentials, hop-by-hop headers, and what the
    /// gateway sets itself.
    static let droppedRequestHeaders: Set<String> = [
        "host", "authorization", "api-key", "ocp-apim-subscription-key", "content-length", "transfer-encoding", "connection",
        "keep-alive", "proxy-authorization", "proxy-connection", "te", "trailer", "upgrade", "accept-encoding", "cookie",
        "x-forwarded-for", "x-request-id",
    ]
    /// Upstream headers that are not passed back: hop-by-hop, and lengths the gateway recomputes.
    static let droppedResponseHeaders: Set<String> = [
        "content-length", "transfer-encoding", "connection", "keep-alive", "proxy-authenticate", "te", "trailer", "upgrade",
        "set-cookie", "x-request-id",
    ]
}
