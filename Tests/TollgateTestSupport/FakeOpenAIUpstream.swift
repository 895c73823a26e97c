import Foundation
import Logging
import HTTPTypes
import Hummingbird
import HummingbirdTLS
import NIOSSL
import NIOCore
import ServiceLifecycle
import Synchronization

/// A local stand-in for OpenAI / Azure OpenAI, for gateway tests. What it answers depends on the requested model:
/// - `gpt-4o-mini` (or any other name): a normal reply with usage 11 prompt (3 cached), 7 completion (2 reasoning), 18 total;
///   streamed with 4 content chunks, and a usage chunk only when `stream_options.include_usage` is true.
/// - `no-usage`: the same replies without any usage.
/// - `rate-limited`: 429 with `Retry-After: 7` and an OpenAI error body.
/// - `rate-limited-ms`: 429 with `retry-after-ms: 1500` only; `rate-limited-reset`: 429 with
///   `x-ratelimit-reset-requests: 1s` and `x-ratelimit-reset-tokens: 2s` only.
/// - `server-error`: 500 with an OpenAI error body.
/// - `flaky`: 503 while `flakyFails` is true, else a normal reply.
/// - `broken-stream`: two content chunks, then the connection is cut.
/// - `slow`: waits 3 seconds before answering.
/// - `slow-stream`: streams like the default, a second between content chunks (a client can hang up mid-stream
///   even on a loaded machine).
/// Every request it receives is kept, so tests can check what the gateway sent.
public final class FakeOpenAIUpstream: Sendable {
    public struct Received: Sendable {
        public var path: String
        public var query: String?
        public var headers: HTTPFields
        public var body: [String: any Sendable]
        public var rawBody: String
    }

    private let received = Mutex<[Received]>([])
    public var requests: [Received] { received.withLock { $0 } }
    /// Whether model `flaky` answers 503.
    public let flakyFails = Mutex(true)

    /// How many requests asked for `model` (the upstream model, as the gateway sent it).
    public func requests(for model: String) -> Int { requests.filter { $0.body["model"] as? String == model }.count }

    public init() {}

    public static var usageJSON: [String: Any] {
        [
        "prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18,
        "prompt_tokens_details": ["cached_tokens": 3], "completion_tokens_details": ["reasoning_tokens": 2],
        ]
    }
    public static let contentPieces = ["Hello", " from", " the", " fake"]

    /// Runs the fake on 127.0.0.1 (a free port) for the duration of `body`.
    /// With `tls`, it serves HTTPS instead.
    public func run<T: Sendable>(tls: TLSConfiguration? = nil, _ body: @Sendable (_ port: Int) async throws -> T) async throws -> T {
        let router = Router()
        router.post("v1/chat/completions") { request, context in try await self.chat(request: request, context: context) }
        router.post("openai/deployments/:deployment/chat/completions") { request, context in try await self.chat(request: request, context: context) }
        router.post("v1/embeddings") { request, context in try await self.embeddings(request: request, context: context) }
        let (portStream, portContinuation) = AsyncStream.makeStream(of: Int.self)
        var logger = Logger(label: "fake-upstream")
        logger.logLevel = .critical
        let app = Application(
            router: router, server: try tls.map { try .tls(.http1(), tlsConfiguration: $0) } ?? .http1(),
            configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in portContinuation.yield(channel.localAddress?.port ?? 0) }, logger: logger)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            let serviceGroup = ServiceGroup(configuration: .init(services: [app], logger: app.logger))
            group.addTask { try await serviceGroup.run() }
            var iterator = portStream.makeAsyncIterator()
            guard let port = await iterator.next() else { throw CancellationError() }
            do {
                let result = try await body(port)
                await serviceGroup.triggerGracefulShutdown()
                try await group.waitForAll()
                return result
            } catch {
                await serviceGroup.triggerGracefulShutdown()
                throw error
            }
        }
    }

    private func remember(_ request: Request) async throws -> [String: Any] {
        let buffer = try await request.body.collect(upTo: 1 << 20)
        let text = String(buffer: buffer)
        let json = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
        received.withLock {
            $0.append(Received(path: request.uri.path, query: request.uri.query, headers: request.headers, body: json.mapValues { "\($0)" }, rawBody: text))
        }
        return json
    }

    private func json(_ object: [String: Any], status: HTTPResponse.Status = .ok, extra: HTTPFields = [:]) -> Response {
        var headers = extra
        headers[.contentType] = "application/json"
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    private func chat(request: Request, context: some RequestContext) async throws -> Response {
        let body = try await remember(request)
        let model = (body["model"] as? String) ?? context.parameters.get("deployment") ?? "unknown"
        let stream = (body["stream"] as? Bool) ?? false
        let includeUsage = ((body["stream_options"] as? [String: Any])?["include_usage"] as? Bool) ?? false
        let reportUsage = model != "no-usage"
        switch model {
        case "rate-limited":
            return json(["error": ["message": "Rate limit reached", "type": "rate_limit_error", "code": "rate_limit_exceeded"]],
                        status: .tooManyRequests, extra: [.retryAfterField: "7"])
        case "rate-limited-ms":
            return json(["error": ["message": "Rate limit reached", "type": "rate_limit_error", "code": "rate_limit_exceeded"]],
                        status: .tooManyRequests, extra: [HTTPField.Name("retry-after-ms")!: "1500"])
        case "rate-limited-reset":
            return json(["error": ["message": "Rate limit reached", "type": "rate_limit_error", "code": "rate_limit_exceeded"]],
                        status: .tooManyRequests, extra: [HTTPField.Name("x-ratelimit-reset-requests")!: "1s", HTTPField.Name("x-ratelimit-reset-tokens")!: "2s"])
        case "server-error":
            return json(["error": ["message": "The server had an error", "type": "server_error"]], status: .internalServerError)
        case "flaky" where flakyFails.withLock({ $0 }):
            return json(["error": ["message": "The engine is currently overloaded", "type": "server_error"]], status: .serviceUnavailable)
        case "slow":
            try await Task.sleep(for: .seconds(3))
        default: break
        }
        let id = "chatcmpl-fake-\(requests.count - 1)"
        if !stream {
            var reply: [String: Any] = [
                "id": id, "object": "chat.completion", "created": 1_790_000_000, "model": "\(model)-2024-07-18",
                "choices": [["index": 0, "message": ["role": "assistant", "content": Self.contentPieces.joined()], "finish_reason": "stop"]],
            ]
            if reportUsage { reply["usage"] = Self.usageJSON }
            return json(reply)
        }
        func event(_ object: [String: Any]) -> ByteBuffer {
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
            return ByteBuffer(string: "data: \(String(decoding: data, as: UTF8.self))\n\n")
        }
        func chunk(_ delta: [String: Any], finish: String?) -> [String: Any] {
            var chunk: [String: Any] = [
                "id": id, "object": "chat.completion.chunk", "created": 1_790_000_000, "model": "\(model)-2024-07-18",
                "choices": [["index": 0, "delta": delta, "finish_reason": finish.map { $0 as Any } ?? NSNull()]],
            ]
            if includeUsage { chunk["usage"] = NSNull() }
            return chunk
        }
        let broken = model == "broken-stream"
        let pause: Duration = model == "slow-stream" ? .seconds(1) : .milliseconds(5)
        let first = event(chunk(["role": "assistant", "content": ""], finish: nil))
        let pieces = Self.contentPieces.map { event(chunk(["content": $0], finish: nil)) }
        var tail = [event(chunk([:], finish: "stop"))]
        if includeUsage && reportUsage {
            tail.append(event([
                "id": id, "object": "chat.completion.chunk", "created": 1_790_000_000, "model": "\(model)-2024-07-18",
                "choices": [Any](), "usage": Self.usageJSON,
            ]))
        }
        tail.append(ByteBuffer(string: "data: [DONE]\n\n"))
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream"
        return Response(status: .ok, headers: headers, body: ResponseBody { [tail] writer in
            try await writer.write(first)
            for (i, piece) in pieces.enumerated() {
                if broken && i == 2 {
                    // Let the two pieces already written reach the gateway, then cut the connection mid-stream.
                    try await Task.sleep(for: .milliseconds(150))
                    throw CancellationError()
                }
                try await writer.write(piece)
                try await Task.sleep(for: pause)
            }
            for buffer in tail { try await writer.write(buffer) }
            try await writer.finish(nil)
        })
    }

    private func embeddings(request: Request, context: some RequestContext) async throws -> Response {
        _ = try await remember(request)
        return json([
            "object": "list", "model": "text-embedding-3-small",
            "data": [["object": "embedding", "index": 0, "embedding": [0.5, -0.25]]],
            "usage": ["prompt_tokens": 5, "total_tokens": 5],
        ])
    }
}

extension HTTPField.Name {
    static let retryAfterField = Self("Retry-After")!
}
