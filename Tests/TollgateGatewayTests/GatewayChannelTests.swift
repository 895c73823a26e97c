import Foundation
import HTTPTypes
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
            /// Informational (1xx) statuses received.
            let informational = NIOLockedValueBox<[Int]>([])

            func channelRead(context: ChannelHandlerContext, data: NIOAny) {
                state.withLockedValue { state in
                    switch unwrapInboundIn(data) {
                    case .head(let head) where head.status.code < 200: informational.withLockedValue { $0.append(Int(head.status.code)) }
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

        /// With `reading: false` nothing is read until `startReading()`: a client that has stopped reading.
        init(port: Int, reading: Bool = true) async throws {
            let collector = Collector()
            self.collector = collector
            channel = try await ClientBootstrap(group: NIOSingletons.posixEventLoopGroup)
                .channelOption(.autoRead, value: reading)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(HTTPRequestEncoder())
                        try channel.pipeline.syncOperations.addHandler(
                            ByteToMessageHandler(HTTPResponseDecoder(leftOverBytesStrategy: .dropBytes, informationalResponseStrategy: .forward)))
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
            /// Sent with `Transfer-Encoding: chunked` instead of a `Content-Length`.
            var chunked = false
        }

        func send(_ requests: [Request]) async throws {
            for request in requests {
                writeHead(request)
                if let body = request.body { channel.write(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(string: body))), promise: nil) }
                channel.write(HTTPClientRequestPart.end(nil), promise: nil)
            }
            channel.flush()
        }

        /// Only the head, as a client that waits for `100 Continue` sends it first.
        func sendHead(_ request: Request) async throws {
            writeHead(request)
            channel.flush()
        }

        func sendBody(_ body: String) async throws {
            channel.write(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(string: body))), promise: nil)
            try await channel.writeAndFlush(HTTPClientRequestPart.end(nil))
        }

        private func writeHead(_ request: Request) {
            var head = HTTPRequestHead(version: .http1_1, method: request.method, uri: request.path, headers: request.headers)
            head.headers.replaceOrAdd(name: "host", value: "tollgate")
            if let body = request.body {
                head.headers.replaceOrAdd(name: "content-type", value: "application/json")
                if !request.chunked { head.headers.replaceOrAdd(name: "content-length", value: String(body.utf8.count)) }
            }
            channel.write(HTTPClientRequestPart.head(head), promise: nil)
        }

        var informational: [Int] { collector.informational.withLockedValue { $0 } }

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

        func startReading() async throws { try await channel.setOption(.autoRead, value: true) }

        /// Bytes of the current, unfinished reply's body received so far.
        var partialBodyBytes: Int { collector.state.withLockedValue { $0.current?.body.utf8.count ?? 0 } }

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

                // A body (chunked, so its size is not announced) that grows over the limit: 413 in the OpenAI shape,
                // and the connection is closed (the rest is not read).
                let large = try await RawConnection(port: port)
                var chunkedLarge = Self.post("/v1/chat/completions", key: keys["sub-a"]!, body: String(repeating: "x", count: 4_000))
                chunkedLarge.chunked = true
                try await large.send([chunkedLarge])
                let (tooLarge, closedAfterLarge) = try await large.replies(2)
                #expect(tooLarge.map(\.status) == [413])
                #expect(tooLarge.first?.body.contains("request_too_large") == true)
                #expect(closedAfterLarge)

                // `Expect: 100-continue`: the client is told to go on before it sends the body, then answered.
                let expecting = try await RawConnection(port: port)
                var request = Self.post("/v1/chat/completions", key: keys["sub-a"]!, body: Self.chat)
                request.headers.add(name: "expect", value: "100-continue")
                try await expecting.sendHead(request)
                var told = false
                for _ in 0..<500 where !told {
                    try await Task.sleep(for: .milliseconds(20))
                    told = expecting.informational == [100]
                }
                #expect(told)
                try await expecting.sendBody(Self.chat)
                let (afterContinue, _) = try await expecting.replies(1)
                await expecting.close()
                #expect(afterContinue.map(\.status) == [200])
                // The gateway answered the expectation and holds the whole body: `Expect` does not go upstream.
                #expect(upstream.requests.last.map { $0.headers[.expect] == nil } == true)

                // A body announced over the limit is refused from its head: 413 before a byte of it is sent, then closed.
                let announced = try await RawConnection(port: port)
                var oversized = Self.post("/v1/chat/completions", key: keys["sub-a"]!, body: String(repeating: "x", count: 4_000))
                oversized.headers.add(name: "expect", value: "100-continue")
                try await announced.sendHead(oversized)
                let (refusedEarly, closedEarly) = try await announced.replies(2)  // returns at the close: only one reply comes
                #expect(refusedEarly.map(\.status) == [413] && announced.informational.isEmpty && closedEarly)

                // `Connection: close`: answered, then closed.
                let closing = try await RawConnection(port: port)
                try await closing.send([Self.post("/v1/chat/completions", key: keys["sub-a"]!, body: Self.chat, close: true)])
                let (closeReplies, closed) = try await closing.replies(2)
                #expect(closeReplies.map(\.status) == [200])
                #expect(closed)
                await runtime.writer.flush()
            }
            // Only the answered model requests were metered: nothing for the refused ones.
            let rows = try await GatewayHarness.usageRows()
            #expect(rows.map(\.route).sorted() == ["chat.completions", "chat.completions", "embeddings"])
        }
    }

    /// An upstream that answers any request with an endless event stream, written as fast as its socket takes it,
    /// and counts what it managed to write.
    final class FloodingUpstream: Sendable {
        let written = NIOLockedValueBox(0)

        final class Handler: ChannelInboundHandler, Sendable {
            typealias InboundIn = HTTPServerRequestPart
            let upstream: FloodingUpstream
            init(upstream: FloodingUpstream) { self.upstream = upstream }
            static let event: ByteBuffer = {
                let payload = #"data: {"id":"flood","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"\#(String(repeating: "x", count: 900))"}}]}"# + "\n\n"
                return ByteBuffer(string: String(payload.utf8.count, radix: 16) + "\r\n" + payload + "\r\n")
            }()

            func channelRead(context: ChannelHandlerContext, data: NIOAny) {
                guard case .end = unwrapInboundIn(data) else { return }
                context.writeAndFlush(NIOAny(ByteBuffer(string: "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")), promise: nil)
                pump(context: context)
            }
            func channelWritabilityChanged(context: ChannelHandlerContext) { pump(context: context) }
            private func pump(context: ChannelHandlerContext) {
                // Up to 256 MB; no more than the socket takes.
                while context.channel.isWritable && upstream.written.withLockedValue({ $0 }) < 256 << 20 {
                    context.writeAndFlush(NIOAny(Self.event), promise: nil)
                    upstream.written.withLockedValue { $0 += Self.event.readableBytes }
                }
            }
        }

        func run<T: Sendable>(_ body: @Sendable (Int) async throws -> T) async throws -> T {
            try await withLocalServer(setUp: { channel in
                try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(HTTPRequestDecoder()))
                try channel.pipeline.syncOperations.addHandler(Handler(upstream: self))
            }, body)
        }
    }

    @Test func aStreamToAClientThatStopsReadingIsNotBufferedByTheGateway() async throws {
        let upstream = FloodingUpstream()
        try await upstream.run { port in
            let keys = try await GatewayHarness.prepare(GatewayHarness.document(upstreamPort: port))
            let configuration = try await GatewayHarness.configuration()
            try await GatewayHarness.withLiveGateway(configuration: configuration) { client, runtime in
                let connection = try await RawConnection(port: try #require(client.port), reading: false)
                try await connection.send([Self.post("/v1/chat/completions", key: keys["sub-a"]!, body: #"{"model":"gpt-4o-mini","stream":true,"messages":[]}"#)])
                // The client reads nothing: once the sockets' buffers are full the gateway stops reading the upstream,
                // so the upstream can write only that much. Without back-pressure the gateway would read on (into
                // memory) until the upstream's 256 MB are all written.
                // Settled: the same figure three times, 300 ms apart (a gateway that reads on, into memory, adds
                // megabytes a second here until all 256 MB are written).
                var stalled = -1
                var unchanged = 0
                for _ in 0..<100 where unchanged < 2 {
                    try await Task.sleep(for: .milliseconds(300))
                    let now = upstream.written.withLockedValue { $0 }
                    // Settled only once the upstream has written something (on a loaded machine the request can take
                    // longer than a few polls to reach it).
                    unchanged = now == stalled && now > 0 ? unchanged + 1 : 0
                    stalled = now
                }
                // What the sockets hold between them (a few MB each); the kernel may still grow a buffer now and then,
                // so the figure is bounded, not frozen.
                #expect(stalled > 0 && stalled < 32 << 20, "the upstream wrote \(stalled >> 20) MB to a client that reads nothing")
                try await Task.sleep(for: .milliseconds(500))
                let later = upstream.written.withLockedValue { $0 }
                #expect(later < 32 << 20, "the upstream wrote \(later >> 20) MB to a client that reads nothing")
                // Reading again resumes the stream.
                try await connection.startReading()
                var resumed = false
                for _ in 0..<300 where !resumed {
                    try await Task.sleep(for: .milliseconds(100))
                    resumed = upstream.written.withLockedValue { $0 } > later && connection.partialBodyBytes > 0
                }
                #expect(resumed)
                #expect(connection.partialBodyBytes > 0)
                await connection.close()
                try await Task.sleep(for: .milliseconds(200))
                await runtime.writer.flush()
            }
            // The cut-off stream is metered with what passed.
            let rows = try await GatewayHarness.usageRows()
            #expect(rows.count == 1)
            #expect(rows.first?.usageSource == "estimated" && (rows.first?.completionTokens ?? 0) > 0)
        }
    }
}
