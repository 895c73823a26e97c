import Testing

@testable import TollgateGateway

/// The generated text a stream meter keeps for the estimate when a stream ends without usage: the deltas of each
/// operation's stream, decoded from their JSON strings, and nothing the stream repeats.
@Suite struct SSEStreamMeterTests {
    static func metered(_ operation: OpenAIOperation, _ events: [String]) -> SSEStreamMeter {
        var meter = SSEStreamMeter(operation: operation, hideInjectedUsage: false)
        for event in events { _ = meter.consume(Array("data: \(event)\n\n".utf8)) }
        return meter
    }

    @Test func chatDeltasAndToolCallArgumentsAreKeptInOrderAndDecoded() {
        let meter = Self.metered(.chatCompletions, [
            #"{"id":"c","choices":[{"delta":{"role":"assistant","content":""}}]}"#,
            #"{"id":"c","choices":[{"delta":{"content":"Hello"}}]}"#,
            #"{"id":"c","choices":[{"delta":{"content":" \"there\"\n\u00e9\ud83c\udf89"}}]}"#,
            #"{"id":"c","choices":[{"delta":{"tool_calls":[{"index":0,"function":{"name":"f","arguments":"{\"a\":1}"}}]}}]}"#,
            #"{"id":"c","choices":[{"delta":{},"finish_reason":"stop"}]}"#,
        ])
        #expect(meter.generated == "Hello \"there\"\né🎉{\"a\":1}")
        #expect(meter.contentEvents == 3)  // the empty first content and the final chunk carry none
    }

    @Test func aSurrogatePairSplitAcrossChunksIsDecodedWhole() {
        let meter = Self.metered(.chatCompletions, [
            #"{"choices":[{"delta":{"content":"\ud83c"}}]}"#, #"{"choices":[{"delta":{"content":"\udf89!"}}]}"#,
        ])
        #expect(meter.generated == "🎉!")
    }

    @Test func completionsText() {
        let meter = Self.metered(.completions, [#"{"choices":[{"text":"Say"}]}"#, #"{"choices":[{"text":" hi"}]}"#])
        #expect(meter.generated == "Say hi" && meter.contentEvents == 2)
    }

    @Test func responsesDeltasOnlyNotTheRepeatedWholeText() {
        let meter = Self.metered(.responses, [
            #"{"type":"response.created","response":{"id":"r","model":"gpt-4o","output":[]}}"#,
            #"{"type":"response.output_text.delta","delta":"Hel"}"#,
            #"{"type":"response.output_text.delta","delta":"lo"}"#,
            #"{"type":"response.output_text.done","text":"Hello"}"#,
            #"{"type":"response.content_part.done","part":{"type":"output_text","text":"Hello"}}"#,
        ])
        #expect(meter.generated == "Hello" && meter.contentEvents == 2)
    }
}
