import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import Testing

@testable import TollgateGateway

/// The gateway's upstream client against a scripted HTTP/1.1 server: keep-alive reuse, upstreams that close
/// connections, chunked and oversized replies, and a reply that stalls.
@Suite struct UpstreamClientTests {
    /// Answers each request with the reply `script` gives for its index (counted over all connections).
    final class ScriptedServer: Sendable {
        enum Reply: Sendable {
            /// Writes these bytes; closes the connection afterwards when `close`.
            case raw(String, close: Bool)
        }
        let script: @Sendable (Int) -> Reply
        let connections = NIOLockedValueBox(0)
        let requests = NIOLockedValueBox(0)

        init(_ script: @escaping @Sendable (Int) -> Reply) { self.script = script }

        final class Handler: ChannelInboundHandler {
            typealias InboundIn = HTTPServerRequestPart
            let server: ScriptedServer
            init(server: ScriptedServer) { self.server = server }
            func channelRead(context: ChannelHandlerContext, data: NIOAny) {
                guard case .end = unwrapInboundIn(data) else { return }
                let index = server.requests.withLockedValue { value in
                    defer { value += 1 }
                    return value
                }
                switch server.script(index) {
                case .raw(let text, let close):
                    let written = context.writeAndFlush(NIOAny(ByteBuffer(string: text)))
                    if close { written.whenComplete { _ in context.close(promise: nil) } }
                }
            }
        }

        func run<T: Sendable>(_ body: @Sendable (Int) async throws -> T) async throws -> T {
            try await withLocalServer(setUp: { channel in
                self.connections.withLockedValue { $0 += 1 }
                // Decoder only: replies are written as raw bytes.
                try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(HTTPRequestDecoder()))
                try channel.pipeline.syncOperations.addHandler(Handler(server: self))
            }, body)
        }
    }

    static func ok(_ body: String, contentType: String = "application/json", extraHeaders: String = "") -> String {
        "HTTP/1.1 200 OK\r\ncontent-type: \(contentType)\r\ncontent-length: \(body.utf8.count)\r\n\(extraHeaders)\r\n\(body)"
    }

    /// Gathers a streamed body, on the connection's event loop, and hands it over at its end.
    final class Collector: UpstreamBodyConsumer, @unchecked Sendable {
        let done: EventLoopPromise<ByteBuffer>
        private var collected = ByteBuffer()
        init(done: EventLoopPromise<ByteBuffer>) { self.done = done }
        func upstreamBody(_ buffer: ByteBuffer) {
            var buffer = buffer
            collected.writeBuffer(&buffer)
        }
        func upstreamEnded(_ error: UpstreamClientError?) {
            if let error { done.fail(error) } else { done.succeed(collected) }
        }
    }

    /// One request. With `stream`, an event stream comes through a `Collector` (`streamed` true) and any other reply
    /// is collected up to `collect` bytes.
    func send(
        _ client: UpstreamClients, port: Int, collect: Int = 1 << 20, stream: Bool = false, readTimeout: Int = 5
    ) async throws -> (status: Int, body: String, streamed: Bool) {
        let target = try #require(UpstreamTarget(url: "http://127.0.0.1:\(port)/v1/chat/completions"))
        let loop = NIOSingletons.posixEventLoopGroup.next()
        let collector = stream ? Collector(done: loop.makePromise()) : nil
        let response: UpstreamResponse
        do {
            response = try await client.execute(
                target, headers: ["content-type": "application/json"], body: ByteBuffer(string: "{}"), connectTimeoutSeconds: 2,
                readTimeoutSeconds: readTimeout, reply: collector.map { .stream($0, otherwiseCollectUpTo: collect) } ?? .collect(limit: collect),
                on: loop
            ).get()
        } catch {
            collector?.done.fail(error)  // it heard nothing; its promise must not be left pending
            throw error
        }
        guard let collected = response.body else {
            let body = try await #require(collector).done.futureResult.get()
            return (Int(response.status.code), String(buffer: body), true)
        }
        collector?.done.succeed(ByteBuffer())
        return (Int(response.status.code), String(buffer: collected), false)
    }

    @Test func keepAliveConnectionsAreReusedAndStreamedBodiesArriveWhole() async throws {
        let server = ScriptedServer { index in
            .raw(Self.ok(#"{"n":\#(index)}"#, contentType: index == 1 ? "text/event-stream" : "application/json"), close: false)
        }
        let client = UpstreamClients()
        try await server.run { port in
            for index in 0..<3 {
                let reply = try await send(client, port: port, stream: index == 1)
                #expect(reply.status == 200 && reply.body == #"{"n":\#(index)}"# && reply.streamed == (index == 1))
            }
        }
        #expect(server.connections.withLockedValue { $0 } == 1)
    }

    @Test func connectionsTheUpstreamClosesAreReplacedWithoutFailingARequest() async throws {
        // Even replies say `connection: close`; odd ones close the connection right after replying, as an upstream's
        // idle timeout would, without saying so.
        let server = ScriptedServer { index in
            index % 2 == 0 ? .raw(Self.ok("a", extraHeaders: "connection: close\r\n"), close: true) : .raw(Self.ok("b"), close: true)
        }
        let client = UpstreamClients()
        try await server.run { port in
            for index in 0..<6 {
                if index % 2 == 1 { try await Task.sleep(for: .milliseconds(50)) }  // let the close land sometimes, not always
                let reply = try await send(client, port: port)
                #expect(reply.status == 200 && reply.body == (index % 2 == 0 ? "a" : "b"))
            }
        }
        #expect(server.requests.withLockedValue { $0 } == 6)  // nothing sent twice
        #expect(server.connections.withLockedValue { $0 } == 6)
    }

    @Test func chunkedRepliesAreDecodedAndOversizedOnesRefused() async throws {
        // The second reply is an event stream; the others are not.
        let server = ScriptedServer { index in
            let type = index == 1 ? "content-type: text/event-stream\r\n" : ""
            return .raw("HTTP/1.1 200 OK\r\n\(type)transfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", close: false)
        }
        let client = UpstreamClients()
        try await server.run { port in
            let first = try await send(client, port: port)
            #expect(first.status == 200 && first.body == "hello world")
            let streamed = try await send(client, port: port, stream: true)
            #expect(streamed.status == 200 && streamed.body == "hello world" && streamed.streamed)
            await #expect(throws: UpstreamClientError.replyTooLarge(8)) { try await send(client, port: port, collect: 8) }
            // The oversized reply's connection was closed, not reused mid-reply: the next request works.
            let after = try await send(client, port: port)
            #expect(after.status == 200 && after.body == "hello world")
            // Asked for a stream, a reply that is not an event stream is collected whole, within the same limit.
            let notAStream = try await send(client, port: port, stream: true)
            #expect(notAStream.status == 200 && notAStream.body == "hello world" && !notAStream.streamed)
            await #expect(throws: UpstreamClientError.replyTooLarge(8)) { try await send(client, port: port, collect: 8, stream: true) }
        }
    }

    @Test func aReplyThatStallsTimesOutAndUnreachableUpstreamsFailToConnect() async throws {
        let server = ScriptedServer { _ in .raw("HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{\"partial\":", close: false) }
        let client = UpstreamClients()
        try await server.run { port in
            await #expect(throws: UpstreamClientError.readTimeout) { try await send(client, port: port, readTimeout: 1) }
        }
        await #expect {
            try await send(client, port: 1)
        } throws: { error in
            if case .connectFailed = error as? UpstreamClientError { return true }
            return false
        }
    }

    @Test func upstreamURLsAreSplitIntoAddressRequestLineAndHost() {
        let plain = UpstreamTarget(url: "http://10.0.0.1:8000/v1/chat/completions")
        #expect(plain?.endpoint == UpstreamEndpoint(tls: false, host: "10.0.0.1", port: 8000))
        #expect(plain?.pathAndQuery == "/v1/chat/completions" && plain?.hostHeader == "10.0.0.1:8000")
        let azure = UpstreamTarget(url: "https://res.openai.azure.com/openai/deployments/gpt/chat/completions?api-version=2024-10-21")
        #expect(azure?.endpoint == UpstreamEndpoint(tls: true, host: "res.openai.azure.com", port: 443))
        #expect(azure?.pathAndQuery == "/openai/deployments/gpt/chat/completions?api-version=2024-10-21")
        #expect(UpstreamTarget(url: "http://[::1]:9000")?.endpoint == UpstreamEndpoint(tls: false, host: "::1", port: 9000))
        #expect(UpstreamTarget(url: "http://[::1]:9000")?.pathAndQuery == "/")
        #expect(UpstreamTarget(url: "http://host?x=1")?.pathAndQuery == "/?x=1")
        for bad in ["ftp://host/", "http://", "http://user@host/", "http://host:0/", "http://host:99999/", "http://host/#frag", "host/path"] {
            #expect(UpstreamTarget(url: bad) == nil, "\(bad)")
        }
    }
}
