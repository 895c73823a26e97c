import Foundation
import HTTPTypes
import NIOCore
import NIOEmbedded
import NIOHTTPTypes
import Testing
import TollgateCore
import TollgateStore
import TollgateStoreMemory

@testable import TollgateGateway

/// The connection handler on an `EmbeddedChannel`: the proxy routes answered on the event loop through the whole
/// pipeline (mock backend), other requests passed on, pipelined requests answered in order. No socket, no PostgreSQL.
@Suite struct GatewayChannelHandlerEmbeddedTests {
    struct Reply {
        var head: HTTPResponse
        var body: String
    }

    static func channel(_ fixture: PipelineFixture, recorded: RecordedUsage) throws -> EmbeddedChannel {
        let routes = GatewayRoutes(
            catalog: fixture.catalog, recorder: recorded, upstream: UpstreamClients(), limiter: TokenLimiter(),
            configuration: GatewayConfiguration(credentials: PipelineFixture.credentials), logger: PipelineFixture.logger)
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(GatewayChannelHandler(gateway: routes))
        return channel
    }

    static func post(_ channel: EmbeddedChannel, key: String?, body: String) throws {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let key { headers[.authorization] = "Bearer \(key)" }
        try channel.writeInbound(HTTPRequestPart.head(HTTPRequest(method: .post, scheme: nil, authority: "gw", path: "/v1/chat/completions", headerFields: headers)))
        try channel.writeInbound(HTTPRequestPart.body(ByteBuffer(string: body)))
        try channel.writeInbound(HTTPRequestPart.end(nil))
    }

    /// The next whole reply written to the client, or nil when none has been written (yet).
    static func reply(_ channel: EmbeddedChannel) throws -> Reply? {
        guard case .head(let head) = try channel.readOutbound(as: HTTPResponsePart.self) else { return nil }
        var reply = Reply(head: head, body: "")
        while let part = try channel.readOutbound(as: HTTPResponsePart.self) {
            switch part {
            case .head: Issue.record("a second head before the end")
            case .body(let buffer): reply.body += String(buffer: buffer)
            case .end: return reply
            }
        }
        Issue.record("no end")
        return reply
    }

    @Test func aProxiedRequestIsAnsweredOnTheEventLoopAndMetered() async throws {
        let fixture = await PipelineFixture()
        let recorded = RecordedUsage()
        let channel = try Self.channel(fixture, recorded: recorded)
        try Self.post(channel, key: fixture.keys["sub-a"], body: #"{"model":"mock-model","messages":[{"role":"user","content":"Say hello there!"}]}"#)
        let reply = try #require(try Self.reply(channel))
        #expect(reply.head.status == .ok)
        #expect(reply.body.contains(#""prompt_tokens":4"#))
        #expect(try channel.readInbound(as: HTTPRequestPart.self) == nil)  // not passed to the router
        let event = try #require(recorded.events.first)
        #expect(reply.head.headerFields[.xRequestID] == event.requestID.lowercasedString)
        #expect(event.usage == TokenUsage(promptTokens: 4, completionTokens: 14) && event.usageSource == .reported)
        _ = try channel.finish()
    }

    @Test func aRefusedRequestGetsTheOpenAIErrorAndNothingIsMetered() async throws {
        let fixture = await PipelineFixture()
        let recorded = RecordedUsage()
        let channel = try Self.channel(fixture, recorded: recorded)
        try Self.post(channel, key: nil, body: #"{"model":"mock-model"}"#)
        let reply = try #require(try Self.reply(channel))
        #expect(reply.head.status == .unauthorized)
        #expect(try JSONDecoder().decode(OpenAIErrorEnvelope.self, from: Data(reply.body.utf8)).error.code == "missing_api_key")
        #expect(recorded.events.isEmpty)
        _ = try channel.finish()
    }

    @Test func aProxiedRequestPipelinedBehindARouterRequestWaitsForItsReply() async throws {
        let fixture = await PipelineFixture()
        let channel = try Self.channel(fixture, recorded: RecordedUsage())
        let health = HTTPRequest(method: .get, scheme: nil, authority: "gw", path: "/healthz", headerFields: [:])
        try channel.writeInbound(HTTPRequestPart.head(health))
        try channel.writeInbound(HTTPRequestPart.end(nil))
        #expect(try channel.readInbound(as: HTTPRequestPart.self) == .head(health))
        #expect(try channel.readInbound(as: HTTPRequestPart.self) == .end(nil))
        try Self.post(channel, key: fixture.keys["sub-a"], body: #"{"model":"mock-model"}"#)
        #expect(try Self.reply(channel) == nil)  // the router has not answered /healthz yet

        // The router answers: then, and only then, the proxied request is answered, after it.
        try channel.writeOutbound(HTTPResponsePart.head(HTTPResponse(status: .noContent)))
        try channel.writeOutbound(HTTPResponsePart.end(nil))
        #expect(try Self.reply(channel)?.head.status == .noContent)
        #expect(try Self.reply(channel)?.head.status == .ok)
        _ = try channel.finish()
    }
}
