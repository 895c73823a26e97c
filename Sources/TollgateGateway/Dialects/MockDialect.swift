import Foundation
import HTTPTypes
import NIOCore
import TollgateCore
import TollgateStore

/// The built-in fake backend: answered by the gateway itself, deterministically and with realistic usage, after the
/// backend's `mock_latency_ms`. It is asked exactly as an upstream would be (the request already rewritten, with
/// `include_usage` set), and its reply is metered like an upstream's.
struct MockDialect: UpstreamDialect {
    /// Never used: a mock request is not sent anywhere.
    func url(base: String, call: ProxyCall, route: CatalogSnapshot.Route, backend: BackendSpec) -> String {
        "\(base)/\(call.operation.pathSuffix)"
    }

    func forwarding(_ request: ProxyRequest, choice: BackendChoice, call: ProxyCall, context: DialectContext) throws(GatewayError) -> Forwarding {
        .local(reply(request, choice: choice, operation: call.operation), delayMilliseconds: choice.backend.mockLatencyMilliseconds)
    }

    private func reply(_ request: ProxyRequest, choice: BackendChoice, operation: OpenAIOperation) -> LocalReply {
        let json = (try? JSONSerialization.jsonObject(with: Data(choice.forwardedBytes))) as? [String: Any] ?? [:]
        let id = "mock-\(request.requestID.lowercasedString)"
        let created = Int(request.startedAt.timeIntervalSince1970)
        let model = choice.route.model
        if !choice.streamed || operation == .embeddings {
            let object = MockOpenAI.response(for: operation, model: model, request: json, id: id, created: created)
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
            let (head, body) = GatewayRoutes.jsonReply(status: .ok, body: ByteBuffer(data: data), requestID: request.requestID)
            return .whole(head, body)
        }
        let events = MockOpenAI.streamEvents(for: operation, model: model, request: json, id: id, created: created)
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream"
        headers[.xRequestID] = request.requestID.lowercasedString
        return .stream(HTTPResponse(status: .ok, headerFields: headers), events.map { ByteBuffer(string: $0) })
    }
}
