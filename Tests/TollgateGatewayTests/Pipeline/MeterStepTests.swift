import Foundation
import HTTPTypes
import NIOCore
import NIOHTTP1
import Testing
import TollgateCore
import TollgateStore
import TollgateStoreMemory

@testable import TollgateGateway

/// The usage row the meter step makes from each kind of reply.
@Suite struct MeterStepTests {
    /// A request for `gpt-4o-mini` by sub-a, backend chosen, with a meter registered.
    static func metered(_ recorded: RecordedUsage, body: String = #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"12345678"}]}"#) async throws -> ProxyRequest {
        var request = try await PipelineFixture().identified(body: body)
        _ = try ChooseBackendStep().run(&request)
        _ = try MeterStep(writer: recorded, metrics: GatewayMetrics()).run(&request)
        return request
    }

    @Test func aReplyThatReportsUsageIsRecordedAsReported() async throws {
        let recorded = RecordedUsage()
        let request = try await Self.metered(recorded)
        var reply = ProxyReply(
            status: 200, content: .whole(ByteBuffer(string: #"{"id":"chatcmpl-1","model":"gpt-4o-mini-2024-07-18","usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18}}"#)))
        request.replied(&reply)
        let event = try #require(recorded.events.first)
        #expect(recorded.events.count == 1 && reply.event?.requestID == request.requestID)
        #expect(event.usage.promptTokens == 11 && event.usage.completionTokens == 7 && event.usageSource == .reported)
        #expect(event.responseID == "chatcmpl-1" && event.model == "gpt-4o-mini-2024-07-18" && event.backend == "openai")
        #expect(event.subscription == "sub-a" && event.team == "team-a" && event.product == "limited")
        #expect(event.deployment == "gpt-4o-mini" && event.route == "chat.completions" && event.httpStatus == 200 && !event.streamed)
    }

    @Test func aSuccessWithoutUsageIsEstimatedAndAnErrorCountsNothing() async throws {
        let recorded = RecordedUsage()
        let request = try await Self.metered(recorded)
        var success = ProxyReply(status: 200, content: .whole(ByteBuffer(string: #"{"id":"x"}"#)))
        request.replied(&success)
        var error = ProxyReply(status: 500, content: .whole(ByteBuffer(string: #"{"error":{}}"#)))
        request.replied(&error)
        var failed = ProxyReply(status: 504, content: .failed)
        request.replied(&failed)
        let events = recorded.events
        try #require(events.count == 3)
        // Counted with the route's model's tokenizer (o200k_base): reply priming 3, the message 3, "user" 1,
        // "12345678" 3 (digits go in threes).
        #expect(events[0].usage == TokenUsage(promptTokens: 10, completionTokens: 0) && events[0].usageSource == .estimated)
        #expect(events[0].model == "gpt-4o-mini-2024-07-18")  // the route's model when the reply names none
        #expect(events[1].usage == .zero && events[1].usageSource == .missing && events[1].httpStatus == 500)
        #expect(events[2].usage == .zero && events[2].usageSource == .missing && events[2].httpStatus == 504)
    }

    @Test func aStreamIsMeteredFromWhatPassed() async throws {
        let recorded = RecordedUsage()
        let request = try await Self.metered(recorded, body: #"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"12345678"}]}"#)
        var reported = SSEStreamMeter(operation: .chatCompletions, hideInjectedUsage: true)
        _ = reported.consume(Array(#"data: {"id":"c1","model":"m","choices":[{"delta":{"content":"Hi"}}]}"#.utf8) + [10, 10])
        _ = reported.consume(Array(#"data: {"id":"c1","model":"m","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}"#.utf8) + [10, 10])
        var cutShort = SSEStreamMeter(operation: .chatCompletions, hideInjectedUsage: true)
        _ = cutShort.consume(Array(#"data: {"id":"c2","choices":[{"delta":{"content":"a"}}]}"#.utf8) + [10, 10])
        _ = cutShort.consume(Array(#"data: {"id":"c2","choices":[{"delta":{"content":"b"}}]}"#.utf8) + [10, 10])
        var first = ProxyReply(status: 200, content: .stream(reported))
        request.replied(&first)
        var second = ProxyReply(status: 200, content: .stream(cutShort))
        request.replied(&second)
        let events = recorded.events
        try #require(events.count == 2)
        #expect(events[0].usage == TokenUsage(promptTokens: 3, completionTokens: 1) && events[0].usageSource == .reported && events[0].streamed)
        // The prompt as above; the completion is the text that passed, "ab": one token.
        #expect(events[1].usage == TokenUsage(promptTokens: 10, completionTokens: 1) && events[1].usageSource == .estimated)
    }
}
