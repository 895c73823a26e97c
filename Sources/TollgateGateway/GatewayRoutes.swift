import Foundation
import HTTPTypes
import Logging
import Hummingbird
import HummingbirdCore
import Logging
import Metrics
import NIOCore
import NIOHTTP1
import Synchronization
import TollgateCore
import TollgateStore

/// Settings of the metering proxy.
public struct GatewayConfiguration: Sendable {
    /// Largest request body accepted, in bytes.
    public var maximumRequestBytes: Int = 32 << 20
    /// Largest non-streamed upstream reply read, in bytes.
    public var maximumResponseBytes: Int = 64 << 20
    /// Environment that backend `credential_env` names are looked up in.
    public var credentials: [String: String] = [:]

    public init(maximumRequestBytes: Int = 32 << 20, maximumResponseBytes: Int = 64 << 20, credentials: [String: String] = [:]) {
        self.maximumRequestBytes = maximumRequestBytes
        self.maximumResponseBytes = maximumResponseBytes
        self.credentials = credentials
    }
}

/// The OpenAI- and Azure-OpenAI-compatible routes: authenticate the subscription key, forward to the backend that
/// serves the model, and record exactly what the reply says was used.
///
/// The proxy routes are answered on the connection's event loop by `GatewayChannelHandler`, ahead of Hummingbird's
/// router (install it with `httpServer(idleTimeout:)`); only `GET /v1/models` is a router route. This type holds what
/// every proxied request shares, and the steps that need no I/O: authentication, planning the upstream request, and
/// metering the reply.
public struct GatewayRoutes: Sendable {
    let catalog: GatewayCatalog
    let writer: UsageWriter
    let upstream: UpstreamClients
    let limiter: TokenLimiter
    let configuration: GatewayConfiguration
    let upstreamTargets = UpstreamTargetCache()
    let logger: Logger

    public init(
        catalog: GatewayCatalog, writer: UsageWriter, upstream: UpstreamClients, limiter: TokenLimiter, configuration: GatewayConfiguration,
        logger: Logger
    ) {
        self.catalog = catalog
        self.writer = writer
        self.upstream = upstream
        self.limiter = limiter
        self.configuration = configuration
        self.logger = logger
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

    // MARK: - Authentication

    struct Caller {
        var key: CatalogSnapshot.Key
        var subscription: CatalogSnapshot.Subscription
        var snapshot: CatalogSnapshot
    }

    /// The key may come as `api-key`, `Ocp-Apim-Subscription-Key` or `Authorization: Bearer`. Checked against the loaded
    /// catalog without waiting: nil when the key is unknown but a reload might know it (see `GatewayCatalog.lookUp`).
    func authenticateNow(_ headers: HTTPFields, reloaded: Bool = false) throws(GatewayError) -> Caller? {
        var presented = headers[.apiKey] ?? headers[.apimSubscriptionKey]
        if presented == nil, let authorization = headers[.authorization] {
            presented = Self.bearerToken(authorization)
        }
        guard let presented, !presented.isEmpty else { throw GatewayError.missingKey }
        let key: CatalogSnapshot.Key
        let snapshot: CatalogSnapshot
        switch catalog.lookUp(keyHash: KeyStore.hash(presented)) {
        case .found(let found, let current):
            (key, snapshot) = (found, current)
        case .reloadFirst where !reloaded:
            return nil
        case .unknown, .reloadFirst:
            throw GatewayError.invalidKey
        }
        guard let subscription = snapshot.subscriptions[key.subscription] else { throw GatewayError.invalidKey }
        guard subscription.state == .active else {
            throw GatewayError.subscriptionInactive(subscription.id, state: subscription.state, reason: subscription.stateReason)
        }
        return Caller(key: key, subscription: subscription, snapshot: snapshot)
    }

    /// `authenticateNow`, reloading the catalog first when it might know an unknown key.
    func authenticate(_ headers: HTTPFields) async throws(GatewayError) -> Caller {
        if let caller = try authenticateNow(headers) { return caller }
        await catalog.refresh()
        guard let caller = try authenticateNow(headers, reloaded: true) else { throw GatewayError.invalidKey }
        return caller
    }

    /// The token of an `Authorization: Bearer <token>` value (scheme case-insensitive, blanks around the token ignored).
    static func bearerToken(_ authorization: String) -> String? {
        let bytes = authorization.utf8
        guard bytes.count > 7, bytes.prefix(6).elementsEqual("bearer".utf8, by: { $0 | 0x20 == $1 }), bytes.dropFirst(6).first == UInt8(ascii: " ") else {
            return nil
        }
        let isBlank = { (byte: UInt8) in byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }
        var token = bytes.dropFirst(7)
        while let first = token.first, isBlank(first) { token = token.dropFirst() }
        while let last = token.last, isBlank(last) { token = token.dropLast() }
        return token.isEmpty ? nil : String(Substring(token))
    }

    func models(request: Request, context: some RequestContext) async throws -> Response {
        let caller = try await authenticate(request.headers)
        let data: [[String: Any]] = caller.snapshot.routes.values.sorted { $0.deployment < $1.deployment }.map {
            ["id": $0.deployment, "object": "model", "created": 0, "owned_by": $0.backend]
        }
        let body = (try? JSONSerialization.data(withJSONObject: ["object": "list", "data": data])) ?? Data("{}".utf8)
        let (head, bytes) = Self.jsonReply(status: .ok, body: ByteBuffer(data: body), requestID: UUIDv7.make())
        return Response(status: head.status, headers: head.headerFields, body: .init(byteBuffer: bytes))
    }

    // MARK: - Planning the upstream request

    /// What a usage row needs to know about the request, gathered before the reply arrives.
    struct Metering: Sendable {
        var requestID: UUID
        var startedAt: Date
        var subscription: CatalogSnapshot.Subscription
        var backend: String
        var deployment: String
        var requestedModel: String
        var operation: OpenAIOperation
        var streamed: Bool
        /// The request as forwarded.
        var requestBody: [UInt8]
        var limits: ProductLimits?

        /// What identifies the request in a log line.
        func logMetadata(_ extra: Logger.Metadata) -> Logger.Metadata {
            extra.merging(["tollgate.request_id": .stringConvertible(requestID), "subscription.id": .stringConvertible(subscription.id)]) { $1 }
        }

        /// About four characters a token of the request's text; used only when the upstream reports no usage.
        var estimatedPromptTokens: Int { UsageExtraction.estimatedPromptTokens(requestBody: requestBody) }

        func event(status: Int, responseID: String?, model: String?, usage: TokenUsage, source: UsageSource) -> UsageEvent {
            UsageEvent(
                requestID: requestID, responseID: responseID, startedAt: startedAt, endedAt: Date(), subscription: subscription.id,
                product: subscription.product, team: subscription.team, costCenter: subscription.costCenter, backend: backend,
                deployment: deployment, model: model ?? requestedModel, route: operation.rawValue, httpStatus: status, streamed: streamed,
                usage: usage, usageSource: source)
        }
    }

    /// A proxied request, decided: where it goes and exactly what is sent.
    struct Plan: Sendable {
        var metering: Metering
        var backend: BackendSpec
        var route: CatalogSnapshot.Route
        /// The body to forward: the client's own bytes unless something had to change.
        var body: ByteBuffer
        /// The gateway set `stream_options.include_usage` on the client's behalf: hide the usage chunk again.
        var injectedUsage: Bool
    }

    /// Admits the caller against its token limits and decides what to forward. Only what must change is changed;
    /// every other byte of the request is forwarded as the client sent it.
    func plan(_ call: ProxyCall, caller: Caller, body: ByteBuffer, requestID: UUID, startedAt: Date) throws(GatewayError) -> Plan {
        let limits = caller.subscription.product.flatMap { caller.snapshot.products[$0]?.limits }
        if let limits { try limiter.admit(caller.subscription, limits: limits) }

        var requestBytes = Array(body.readableBytesView)
        var rewritten = false  // requestBytes no longer what the client sent
        guard var json = JSONObjectReader(document: requestBytes) else {
            throw GatewayError.invalidRequest("The request body must be a JSON object.")
        }
        if json.hasEscapedKeys, let normalized = Self.normalizedJSON(requestBytes), let reader = JSONObjectReader(document: normalized) {
            // A key spelled with escapes (`"mod\u0065l"`) would hide it from a byte-level reader: forward the body
            // re-serialized, with plain keys, so the upstream reads exactly what the gateway read.
            requestBytes = normalized
            json = reader
            rewritten = true
        }
        let requestedModel = json.string("model")
        guard let routeName = call.deployment ?? requestedModel, !routeName.isEmpty else {
            throw GatewayError.invalidRequest("The request must name a model (`model`).", param: "model")
        }
        guard let route = caller.snapshot.routes[routeName], let backend = caller.snapshot.backends[route.backend] else {
            throw GatewayError.unknownDeployment(routeName)
        }
        let streamed = json.bool("stream") ?? false
        var splices: [JSONObjectReader.Splice] = []
        if backend.kind != .azure, requestedModel != route.model {
            let model = JSONObjectReader.encodeString(route.model)
            splices.append(json.member("model").map { json.replacing($0, with: model) } ?? json.inserting(key: "model", value: model))
        }
        // Streamed replies report usage only in a last chunk, and only if the request set stream_options.include_usage;
        // the gateway sets it and hides that chunk again if the client had not asked for it.
        var injectedUsage = false
        if streamed && call.operation.needsIncludeUsage {
            if let options = json.object("stream_options") {
                if options.bool("include_usage") != true {
                    injectedUsage = true
                    splices.append(
                        options.member("include_usage").map { options.replacing($0, with: Array("true".utf8)) }
                            ?? options.inserting(key: "include_usage", value: Array("true".utf8)))
                }
            } else {
                injectedUsage = true
                let value = Array(#"{"include_usage":true}"#.utf8)
                splices.append(json.member("stream_options").map { json.replacing($0, with: value) } ?? json.inserting(key: "stream_options", value: value))
            }
        }
        if !splices.isEmpty {
            requestBytes = json.applying(splices)
            rewritten = true
        }
        let metering = Metering(
            requestID: requestID, startedAt: startedAt, subscription: caller.subscription, backend: backend.name, deployment: route.deployment,
            requestedModel: route.model, operation: call.operation, streamed: streamed, requestBody: requestBytes, limits: limits)
        return Plan(
            metering: metering, backend: backend, route: route, body: rewritten ? ByteBuffer(bytes: requestBytes) : body, injectedUsage: injectedUsage)
    }

    /// The document re-serialized by Foundation (keys without escapes), or nil if it is not a JSON object.
    static func normalizedJSON(_ bytes: [UInt8]) -> [UInt8]? {
        guard let object = (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any],
            let data = try? JSONSerialization.data(withJSONObject: object)
        else { return nil }
        return Array(data)
    }

    /// Where the planned request goes, and its headers: the client's, less its credentials and hop-by-hop headers,
    /// plus the backend's credential.
    func upstreamRequest(_ plan: Plan, call: ProxyCall) throws(GatewayError) -> (UpstreamTarget, HTTPHeaders) {
        let backend = plan.backend
        guard let base = backend.baseURL?.trimmingSuffix("/") else { throw GatewayError.backendMisconfigured }
        var credential: String?
        if let env = backend.credentialEnv {
            guard let value = configuration.credentials[env], !value.isEmpty else {
                logger.error("Backend credential missing", metadata: plan.metering.logMetadata(["backend": "\(backend.name)", "backend.credential_env": "\(env)"]))
                throw GatewayError.backendMisconfigured
            }
            credential = value
        }
        let url: String
        switch backend.kind {
        case .azure:
            let apiVersion = call.queryParameter("api-version") ?? backend.apiVersion ?? "2024-10-21"
            let encodedVersion = apiVersion.addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed) ?? apiVersion
            let deployment = plan.route.deployment.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? plan.route.deployment
            url = call.operation == .responses
                ? "\(base)/openai/responses?api-version=\(encodedVersion)"
                : "\(base)/openai/deployments/\(deployment)/\(call.operation.pathSuffix)?api-version=\(encodedVersion)"
        case .openai, .mock:
            url = "\(base)/\(call.operation.pathSuffix)"
        }
        guard let target = upstreamTargets.target(for: url) else { throw GatewayError.backendMisconfigured }
        var headers = HTTPHeaders()
        for field in call.head.headerFields where !UpstreamHeaders.droppedRequestHeaders.contains(field.name.canonicalName) {
            headers.add(name: field.name.rawName, value: field.value)
        }
        headers.replaceOrAdd(name: "content-type", value: "application/json")
        // Identity encoding, so the gateway can read usage out of the reply.
        headers.replaceOrAdd(name: "accept-encoding", value: "identity")
        if let credential {
            if backend.kind == .azure {
                headers.replaceOrAdd(name: "api-key", value: credential)
            } else {
                headers.replaceOrAdd(name: "authorization", value: "Bearer \(credential)")
            }
        }
        return (target, headers)
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

    // MARK: - Metering

    /// Records the usage of a complete (non-streamed) reply.
    func record(status: Int, body: ByteBuffer, metering: Metering) {
        let object = JSONObjectReader(document: Array(body.readableBytesView))
        let usage = object.flatMap(UsageExtraction.usage(from:))
        let event: UsageEvent
        if let usage {
            event = metering.event(status: status, responseID: object?.string("id"), model: object?.string("model"), usage: usage, source: .reported)
        } else if (200..<300).contains(status) {
            // A success without usage (a backend that never reports it): bill the estimate, marked as such.
            event = metering.event(
                status: status, responseID: object?.string("id"), model: object?.string("model"),
                usage: TokenUsage(promptTokens: metering.estimatedPromptTokens, completionTokens: 0), source: .estimated)
        } else {
            event = metering.event(status: status, responseID: nil, model: nil, usage: .zero, source: .missing)
        }
        land(event, metering: metering)
    }

    /// Records the usage of a streamed reply, complete or cut short, from what its meter saw pass.
    func record(status: Int, stream meter: SSEStreamMeter, metering: Metering) {
        let event: UsageEvent
        if let usage = meter.usage {
            event = metering.event(status: status, responseID: meter.responseID, model: meter.model, usage: usage, source: .reported)
        } else if meter.contentEvents == 0 && !(200..<300).contains(status) {
            // An error reply that generated nothing: nothing to count.
            event = metering.event(status: status, responseID: meter.responseID, model: meter.model, usage: .zero, source: .missing)
        } else {
            // No usage came: the prompt estimate and one token per content chunk that passed.
            let usage = TokenUsage(promptTokens: metering.estimatedPromptTokens, completionTokens: meter.contentEvents)
            event = metering.event(status: status, responseID: meter.responseID, model: meter.model, usage: usage, source: .estimated)
        }
        land(event, metering: metering)
    }

    /// Spools the usage row, counts it against the subscription's limits, and updates the metrics.
    func land(_ event: UsageEvent, metering: Metering) {
        writer.record(event)
        if let limits = metering.limits { limiter.consumed(event.usage.totalTokens, by: event.subscription, limits: limits) }
        count(metering, status: event.httpStatus, usage: event.usage)
    }

    /// Bounded labels only: route, backend, model (from configuration) and status.
    func count(_ metering: Metering, status: Int, usage: TokenUsage? = nil) {
        let metrics = GatewayMetrics.shared.series(route: metering.operation.rawValue, backend: metering.backend, model: metering.requestedModel, status: status)
        metrics.requests.increment()
        metrics.duration.recordNanoseconds(Int64(Date().timeIntervalSince(metering.startedAt) * 1_000_000_000))
        if let usage {
            metrics.promptTokens.increment(by: usage.promptTokens)
            metrics.completionTokens.increment(by: usage.completionTokens)
        }
    }

    // MARK: - The mock backend

    /// What the `mock` backend answers: a whole reply, or the events of a stream (metered like an upstream's).
    enum MockReply {
        case whole(HTTPResponse, ByteBuffer)
        case stream(HTTPResponse, [ByteBuffer])
    }

    func mockReply(_ plan: Plan) -> MockReply {
        let metering = plan.metering
        let json = (try? JSONSerialization.jsonObject(with: Data(metering.requestBody))) as? [String: Any] ?? [:]
        let id = "mock-\(metering.requestID.lowercasedString)"
        let created = Int(metering.startedAt.timeIntervalSince1970)
        let model = plan.route.model
        if !metering.streamed || metering.operation == .embeddings {
            let object = MockOpenAI.response(for: metering.operation, model: model, request: json, id: id, created: created)
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
            let (head, body) = Self.jsonReply(status: .ok, body: ByteBuffer(data: data), requestID: metering.requestID)
            return .whole(head, body)
        }
        // The mock is asked exactly as an upstream would be (include_usage already set by the gateway).
        let events = MockOpenAI.streamEvents(for: metering.operation, model: model, request: json, id: id, created: created)
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream"
        headers[.xRequestID] = metering.requestID.lowercasedString
        return .stream(HTTPResponse(status: .ok, headerFields: headers), events.map { ByteBuffer(string: $0) })
    }
}

/// Upstream URLs split once: a gateway calls the same few URLs over and over.
final class UpstreamTargetCache: Sendable {
    private let targets = Mutex<[String: UpstreamTarget]>([:])

    func target(for url: String) -> UpstreamTarget? {
        if let known = targets.withLock({ $0[url] }) { return known }
        guard let parsed = UpstreamTarget(url: url) else { return nil }
        targets.withLock { targets in
            if targets.count >= 1_024 { targets.removeAll() }  // Azure api-versions come from clients: keep it bounded
            targets[url] = parsed
        }
        return parsed
    }
}

/// Metric handles, made once per label set: asking the metrics factory for them on every request costs a lock and
/// a lookup in the factory each time.
final class GatewayMetrics: Sendable {
    static let shared = GatewayMetrics()

    struct Series {
        let requests: Counter
        let duration: Timer
        let promptTokens: Counter
        let completionTokens: Counter
    }
    struct Key: Hashable {
        let route: String
        let backend: String
        let model: String
        let status: Int
    }
    private let series = Mutex<[Key: Series]>([:])

    func series(route: String, backend: String, model: String, status: Int) -> Series {
        let key = Key(route: route, backend: backend, model: model, status: status)
        if let existing = series.withLock({ $0[key] }) { return existing }
        let dimensions = [("route", route), ("backend", backend), ("model", model)]
        let made = Series(
            requests: Counter(label: "tollgate_requests_total", dimensions: dimensions + [("status", "\(status)")]),
            duration: Timer(label: "tollgate_request_duration_seconds", dimensions: dimensions, preferredDisplayUnit: .seconds),
            promptTokens: Counter(label: "tollgate_tokens_total", dimensions: dimensions + [("kind", "prompt")]),
            completionTokens: Counter(label: "tollgate_tokens_total", dimensions: dimensions + [("kind", "completion")]))
        series.withLock { $0[key] = made }
        return made
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
