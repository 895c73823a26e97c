import Foundation
import HummingbirdTesting
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import Testing
import TollgateCore
import TollgateGateway
import TollgateServer
import TollgateTestSupport

/// The connection handler that answers the proxy routes on the event loop, ahead of Hummingbird's router: requests
/// a client pipelines on one connection are answered in order whichever side answers them, and the HTTP/1.1 rules
/// (methods, body limit, `Connection: close`) hold on the proxy routes.
@Suite(.freshDatabasePerTest) struct GatewayChannelTests {
    /// One HTTP/1.1 connection: writes the requests it is given back to back, flushed once (pipelined), and collects
    /// whole replies as they come.
    final class RawConnection: Sendable {
        struct Reply: Sendable {
            var status: Int
            var headers: HTTPHeaders
            var body: String
        }
        private let channel: any Channel
        private let collector: Collector

        final class Collector: ChannelInboundHandler, Sendable {
            typealias InboundIn = HTTPClientResponsePart
            let state = NIOLockedValueBox<(replies: [Reply], current: Reply?, closed: Bool)>(([], nil, false))

            func channelRead(context: ChannelHandlerContext, data: NIOAny) {
                state.withLockedValue { state in
                    switch unwrapInboundIn(data) {
                    case .head(let head): state.current = Reply(status: Int(head.status.code), headers: head.headers, body: "")
                    case .body(let buffer): state.current?.body += String(buffer: buffer)
                    case .end:
                        if let reply = state.current { state.replies.append(reply) }
                        state.current = nil
                    }
                }
            }
            func channelInactive(context: ChannelHandlerContext) { state.withLockedValue { $0.closed = true } }
        }

        init(port: Int) async throws {
            let collector = Collector()
            self.collector = collector
            channel = try await ClientBootstrap(group: NIOSingletons.posixEventLoopGroup)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                        try channel.pipeline.syncOperations.addHandler(collector)
                    }
                }
                .connect(host: "127.0.0.1", port: port).get()
        }

        struct Request {
            var method: HTTPMethod = .POST
            var path: String
            var headers: HTTPHeaders = [:]
            var body: String?
        }

        func send(_ requests: [Request]) async throws {
            for request in requests {
                var head = HTTPRequestHead(version: .http1_1, method: request.method, uri: request.path, headers: request.headers)
                head.headers.replaceOrAdd(name: "host", value: "tollgate")
                if let body = request.body {
                    head.headers.replaceOrAdd(name: "content-type", value: "application/json")
                    head.headers.replaceOrAdd(name: "content-length", value: String(body.utf8.count))
                }
                channel.write(HTTPClientRequestPart.head(head), promise: nil)
                if let body = request.body { channel.write(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(string: body))), promise: nil) }
                channel.write(HTTPClientRequestPart.end(nil), promise: nil)
            }
            channel.flush()
        }

        /// Waits (up to 10 s) until `count` replies have come, or the connection closed.
        func replies(_ count: Int) async throws -> (replies: [Reply], closed: Bool) {
            for _ in 0..<1000 {
                let (replies, _, closed) = collector.state.withLockedValue { $0 }
                if replies.count >= count || closed { return (replies, closed) }
                try await Task.sleep(for: .milliseconds(10))
            }
            let (replies, _, closed) = collector.state.withLockedValue { $0 }
            return (replies, closed)
        }

        func close() async { try? await channel.close() }
    }

    static func post(_ path: String, key: String, body: String, close: Bool = false) -> RawConnection.Request {
        var headers: HTTPHeaders = ["authorization": "Bearer \(key)"]
        if close { headers.add(name: "connection", value: "close") }
        return .init(path: path, headers: headers, body: body)
    }
    static let chat = #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello"}]}"#

    @Test func pipelinedRequestsAreAnsweredInOrderWhicheverSideAnswersThem() async throws {
        let upstream = FakeOpenAIUpstream()
        try await upstream.run { port in
            let keys = try await GatewayHarness.prepare(GatewayHarness.document(upstreamPort: port))
            let configuration = try await GatewayHarness.configuration()
            try await GatewayHarness.withLiveGateway(configuration: configuration) { client, runtime in
                let connection = try await RawConnection(port: try #require(client.port))
                // One write: a proxied request that takes an upstream round trip, then a router request that would be
                // answered at once, then proxied and router requests again. Replies must come back in this order.
                try await connection.send([
                    Self.post("/v1/chat/completions", key: keys["sub-a"]!, body: Self.chat),
                    .init(method: .GET, path: "/healthz"),
                    Self.post("/v1/chat/completions", key: keys["sub-b"]!, body: Self.chat),
                    .init(method: .GET, path: "/nowhere"),
                    Self.post("/v1/chat/completions", key: "tg_wrong", body: Self.chat),
                ])
                let (replies, closed) = try await connection.replies(5)
                await connection.close()
                #expect(!closed)
                #expect(replies.map(\.status) == [200, 200, 200, 404, 401])
                #expect(replies.count == 5)
                guard replies.count == 5 else { return }
                #expect(replies[0].body.contains("chatcmpl-fake-0") && replies[2].body.contains("chatcmpl-fake-1"))
                #expect(replies[1].body.contains(#""status":"ok""#))
                #expect(replies[4].body.contains("invalid_api_key"))
                await runtime.writer.flush()
            }
            let rows = try await GatewayHarness.usageRows()
            #expect(rows.map(\.subscription).sorted() == ["sub-a", "sub-b"])
        }
    }

    @Test func proxyRoutesKeepHTTPRules() async throws {
        let upstream = FakeOpenAIUpstream()
        try await upstream.run { port in
            let keys = try await GatewayHarness.prepare(GatewayHarness.document(upstreamPort: port))
            var configuration = try await GatewayHarness.configuration()
            configuration.maximumRequestBytes = 1_024
            try await GatewayHarness.withLiveGateway(configuration: configuration) { client, runtime in
                let port = try #require(client.port)

                // A method the route does not serve: 405 in the OpenAI shape; the connection stays usable.
                let methods = try await RawConnection(port: port)
                try await methods.send([
                    .init(method: .GET, path: "/v1/chat/completions"),
                    Self.post("/v1/embeddings", key: keys["sub-a"]!, body: #"{"model":"gpt-4o-mini","input":"hi"}"#),
                ])
                let (afterMethod, _) = try await methods.replies(2)
                await methods.close()
                #expect(afterMethod.map(\.status) == [405, 200])
                #expect(afterMethod.first?.body.contains("method_not_allowed") == true)

                // A body over the limit: 413 in the OpenAI shape, and the connection is closed (the rest is not read).
                let large = try await RawConnection(port: port)
                try await large.send([Self.post("/v1/chat/completions", key: keys["sub-a"]!, body: String(repeating: "x", count: 4_000))])
                let (tooLarge, closedAfterLarge) = try await large.replies(2)
                #expect(tooLarge.map(\.status) == [413])
                #expect(tooLarge.first?.body.contains("request_too_large") == true)
                #expect(closedAfterLarge)

                // `Connection: close`: answered, then closed.
                let closing = try await RawConnection(port: port)
                try await closing.send([Self.post("/v1/chat/completions", key: keys["sub-a"]!, body: Self.chat, close: true)])
                let (closeReplies, closed) = try await closing.replies(2)
                #expect(closeReplies.map(\.status) == [200])
                #expect(closed)
                await runtime.writer.flush()
            }
            // Only the two answered model requests were metered: nothing for the refused ones.
            let rows = try await GatewayHarness.usageRows()
            #expect(rows.map(\.route).sorted() == ["chat.completions", "embeddings"])
        }
    }
}
