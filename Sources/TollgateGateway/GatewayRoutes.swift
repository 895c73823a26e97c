import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import TollgateCore
import TollgateStore

/// The OpenAI- and Azure-OpenAI-compatible routes: authenticate the subscription key, forward to the backend that
/// serves the model, and record exactly what the reply says was used.
///
/// The proxy routes are answered on the connection's event loop by `GatewayChannelHandler`, ahead of Hummingbird's
/// router (install it with `httpServer(idleTimeout:)`), each request by a `ProxyExchange` that runs `pipeline`; only
/// `GET /v1/models` is a router route. This type holds what every proxied request shares.
public struct GatewayRoutes: Sendable {
    let catalog: GatewayCatalog
    let upstream: UpstreamClients
    let configuration: GatewayConfiguration
    let logger: Logger
    /// The request path's steps, in order.
    let pipeline: GatewayPipeline
    /// Who the caller is, for routes that only need that (`GET /v1/models`).
    let identification: GatewayPipeline
    /// The backends' breakers and cool-downs, as this instance sees them (the pools' choice, and failover).
    public let health: BackendHealth

    /// - Parameter metrics: the request and token counters this gateway updates.
    public init(
        catalog: GatewayCatalog, writer: UsageWriter, upstream: UpstreamClients, limiter: TokenLimiter, metrics: GatewayMetrics,
        configuration: GatewayConfiguration, health: BackendHealth? = nil, logger: Logger
    ) {
        self.init(
            catalog: catalog, recorder: writer, upstream: upstream, limiter: limiter, metrics: metrics, configuration: configuration,
            health: health, logger: logger)
    }

    /// With usage handed to `recorder` (tests record it in memory).
    init(
        catalog: GatewayCatalog, recorder writer: any UsageRecorder, upstream: UpstreamClients, limiter: TokenLimiter,
        metrics: GatewayMetrics = GatewayMetrics(), configuration: GatewayConfiguration, health: BackendHealth? = nil, logger: Logger
    ) {
        self.catalog = catalog
        self.upstream = upstream
        self.configuration = configuration
        self.logger = logger
        let health = health ?? BackendHealth(logger: logger)
        self.health = health
        self.pipeline = .standard(
            catalog: catalog, limiter: limiter, writer: writer, metrics: metrics, configuration: configuration, health: health,
            targets: UpstreamTargetCache(), logger: logger)
        self.identification = GatewayPipeline(steps: GatewayPipeline.identification(catalog: catalog))
    }

    /// `GET /v1/models`. The proxy routes are served by `httpServer(idleTimeout:)`'s channel handler.
    public func register<Context: RequestContext>(on router: Router<Context>) {
        let group = router.group().add(middleware: OpenAIErrorMiddleware<Context>())
        group.get("v1/models") { request, context in try await models(request: request, context: context) }
    }

    /// Hummingbird's HTTP/1.1 server with the proxy routes answered on the event loop (`GatewayChannelHandler`).
    public func httpServer(idleTimeout: Duration? = nil) -> HTTPServerBuilder {
        HTTPServerBuilder { responder in
            GatewayHTTP1Channel(responder: responder, gateway: self, idleTimeout: idleTimeout)
        }
    }

    func models(request: Request, context: some RequestContext) async throws -> Response {
        var identified = ProxyRequest(headers: request.headers, call: nil, body: ByteBuffer())
        try await identification.runToEnd(&identified)
        let catalog = try identified.required(identified.catalog)
        // Only what the caller may use (`ModelAccessStep` refuses the rest).
        let access = catalog.modelAccess(of: try identified.required(identified.subscription))
        let usable = catalog.routes.values.compactMap(\.first).filter { access.allows($0.deployment) }
        let data: [[String: Any]] = usable.sorted { $0.deployment < $1.deployment }.map {
            ["id": $0.deployment, "object": "model", "created": 0, "owned_by": $0.backend]
        }
        let body = (try? JSONSerialization.data(withJSONObject: ["object": "list", "data": data])) ?? Data("{}".utf8)
        let (head, bytes) = Self.jsonReply(status: .ok, body: ByteBuffer(data: body), requestID: UUIDv7.make())
        return Response(status: head.status, headers: head.headerFields, body: .init(byteBuffer: bytes))
    }

    /// The head the client gets for an upstream reply: its status and headers, less hop-by-hop ones, with the
    /// gateway's request id.
    static func clientHead(for reply: UpstreamResponse, requestID: UUID) -> HTTPResponse {
        var headers = HTTPFields()
        for header in reply.headers where !UpstreamHeaders.droppedResponseHeaders.contains(header.name.lowercased()) {
            if let name = HTTPField.Name(header.name) { headers.append(HTTPField(name: name, value: header.value)) }
        }
        headers[.xRequestID] = requestID.lowercasedString
        return HTTPResponse(status: .init(code: Int(reply.status.code), reasonPhrase: reply.status.reasonPhrase), headerFields: headers)
    }

    static func jsonReply(status: HTTPResponse.Status, body: ByteBuffer, requestID: UUID) -> (HTTPResponse, ByteBuffer) {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        headers[.xRequestID] = requestID.lowercasedString
        return (HTTPResponse(status: status, headerFields: headers), body)
    }
}

extension String {
    func trimmingSuffix(_ suffix: Character) -> String {
        var text = self
        while text.last == suffix { text.removeLast() }
        return text
    }
}

/// `0`–`9`, `a`–`f` as UTF-8, for writing bytes in hex.
let lowercaseHexDigits = Array("0123456789abcdef".utf8)

extension UUID {
    /// `uuidString.lowercased()`, written directly (it is on every reply, as `x-request-id`).
    var lowercasedString: String {
        withUnsafeBytes(of: uuid) { bytes in
            String(unsafeUninitializedCapacity: 36) { out in
                var at = 0
                for (index, byte) in bytes.enumerated() {
                    if index == 4 || index == 6 || index == 8 || index == 10 {
                        out[at] = UInt8(ascii: "-")
                        at += 1
                    }
                    out[at] = lowercaseHexDigits[Int(byte >> 4)]
                    out[at + 1] = lowercaseHexDigits[Int(byte & 0x0F)]
                    at += 2
                }
                return at
            }
        }
    }
}

extension ByteBuffer {
    init(data: Data) { self.init(bytes: data) }
}
