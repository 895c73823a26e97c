import Foundation
import HTTPTypes
import Logging
import NIOHTTP1
import TollgateCore
import TollgateStore

/// How the gateway talks to one kind of backend (`BackendKind`): where a request goes, how it authenticates, what in
/// the request must change, and how usage is read from its replies and streams. The forward step and the meter step
/// ask the chosen backend's dialect; nothing else in the request path depends on the kind.
///
/// A new backend kind is a `BackendKind` case (with the `backends.kind` CHECK in a new migration) and a dialect file in
/// this folder, named in `BackendKind.dialect`. The defaults below are OpenAI's wire format, which every kind so far speaks.
protocol UpstreamDialect: Sendable {
    /// The changes the backend needs in the request body (the upstream model, `stream_options.include_usage`).
    func rewrite(_ json: JSONObjectReader, route: CatalogSnapshot.Route, operation: OpenAIOperation, streamed: Bool) -> RequestRewrite

    /// The upstream URL for `call` on `backend`, whose `base_url` (without trailing `/`) is `base`.
    func url(base: String, call: ProxyCall, route: CatalogSnapshot.Route, backend: BackendSpec) -> String

    /// Adds the backend's credential to the upstream request's headers.
    func authorize(_ headers: inout HTTPHeaders, credential: String)

    /// How the request is answered: sent upstream (the default: `url`, the client's headers less its credentials,
    /// `authorize`) or answered by the gateway itself.
    func forwarding(_ request: ProxyRequest, choice: BackendChoice, call: ProxyCall, context: DialectContext) throws(GatewayError) -> Forwarding

    /// The usage a whole reply reports; nil when it reports none.
    func usage(ofReply object: JSONObjectReader) -> TokenUsage?

    /// A meter for a streamed reply: it finds the usage event and hides the one the gateway asked for on the client's behalf.
    func streamMeter(operation: OpenAIOperation, hideInjectedUsage: Bool) -> SSEStreamMeter
}

/// What the forward step changes in a request body.
struct RequestRewrite {
    var splices: [JSONObjectReader.Splice] = []
    /// `stream_options.include_usage` was set for the client: the stream's usage chunk must be hidden again.
    var injectedUsage = false
}

/// What every dialect may use to build a forwarding, shared by all requests.
struct DialectContext {
    /// The environment backend `credential_env` names are looked up in.
    let credentials: [String: String]
    let targets: UpstreamTargetCache
    let logger: Logger
}

extension UpstreamDialect {
    /// OpenAI's wire format: the upstream model goes in the body's `model`, and a stream is asked to report usage.
    func rewrite(_ json: JSONObjectReader, route: CatalogSnapshot.Route, operation: OpenAIOperation, streamed: Bool) -> RequestRewrite {
        var rewrite = includeUsage(json, operation: operation, streamed: streamed)
        if json.string("model") != route.model {
            let model = JSONObjectReader.encodeString(route.model)
            rewrite.splices.append(json.member("model").map { json.replacing($0, with: model) } ?? json.inserting(key: "model", value: model))
        }
        return rewrite
    }

    /// Streamed replies report usage only in a last chunk, and only if the request set `stream_options.include_usage`;
    /// the gateway sets it and hides that chunk again if the client had not asked for it.
    func includeUsage(_ json: JSONObjectReader, operation: OpenAIOperation, streamed: Bool) -> RequestRewrite {
        var rewrite = RequestRewrite()
        guard streamed && operation.needsIncludeUsage else { return rewrite }
        if let options = json.object("stream_options") {
            guard options.bool("include_usage") != true else { return rewrite }
            rewrite.injectedUsage = true
            rewrite.splices.append(
                options.member("include_usage").map { options.replacing($0, with: Array("true".utf8)) }
                    ?? options.inserting(key: "include_usage", value: Array("true".utf8)))
        } else {
            rewrite.injectedUsage = true
            let value = Array(#"{"include_usage":true}"#.utf8)
            rewrite.splices.append(json.member("stream_options").map { json.replacing($0, with: value) } ?? json.inserting(key: "stream_options", value: value))
        }
        return rewrite
    }

    /// `Authorization: Bearer <credential>`.
    func authorize(_ headers: inout HTTPHeaders, credential: String) {
        headers.replaceOrAdd(name: "authorization", value: "Bearer \(credential)")
    }

    /// Over HTTP to `url`, with the client's headers less its credentials and hop-by-hop headers, plus the backend's credential.
    func forwarding(_ request: ProxyRequest, choice: BackendChoice, call: ProxyCall, context: DialectContext) throws(GatewayError) -> Forwarding {
        let backend = choice.backend
        guard let base = backend.baseURL?.trimmingSuffix("/") else { throw GatewayError.backendMisconfigured }
        var credential: String?
        if let env = backend.credentialEnv {
            guard let value = context.credentials[env], !value.isEmpty else {
                context.logger.error("Backend credential missing", metadata: request.logMetadata(["backend": "\(backend.name)", "backend.credential_env": "\(env)"]))
                throw GatewayError.backendMisconfigured
            }
            credential = value
        }
        guard let target = context.targets.target(for: url(base: base, call: call, route: choice.route, backend: backend)) else {
            throw GatewayError.backendMisconfigured
        }
        var headers = HTTPHeaders()
        for field in call.head.headerFields where !UpstreamHeaders.droppedRequestHeaders.contains(field.name.canonicalName) {
            headers.add(name: field.name.rawName, value: field.value)
        }
        headers.replaceOrAdd(name: "content-type", value: "application/json")
        // Identity encoding, so the gateway can read usage out of the reply.
        headers.replaceOrAdd(name: "accept-encoding", value: "identity")
        if let credential { authorize(&headers, credential: credential) }
        return .upstream(target, headers: headers, body: request.body)
    }

    func usage(ofReply object: JSONObjectReader) -> TokenUsage? { UsageExtraction.usage(from: object) }

    func streamMeter(operation: OpenAIOperation, hideInjectedUsage: Bool) -> SSEStreamMeter {
        SSEStreamMeter(operation: operation, hideInjectedUsage: hideInjectedUsage)
    }
}

extension BackendKind {
    /// The dialect that speaks to this kind of backend.
    var dialect: any UpstreamDialect {
        switch self {
        case .openai: OpenAIDialect()
        case .azure: AzureDialect()
        case .mock: MockDialect()
        }
    }
}
