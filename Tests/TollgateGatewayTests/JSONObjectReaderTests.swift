import Foundation
import Testing
import TollgateCore

@testable import TollgateGateway

/// The byte-level reader the proxy uses for requests and replies: it must accept exactly JSON objects, read the
/// fields the gateway needs as a full parser would, and edit a request without touching anything else.
@Suite struct JSONObjectReaderTests {
    private func read(_ text: String) -> JSONObjectReader? { JSONObjectReader(document: Array(text.utf8)) }

    @Test func readsTheFieldsTheGatewayNeeds() throws {
        let reply = try #require(read(#"""
             {"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"Hi \"there\" \\ \u00e9\ud83d\ude00"}}],
              "usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18,"prompt_tokens_details":{"cached_tokens":3},"completion_tokens_details":{"reasoning_tokens":2}}}
            """#))
        #expect(reply.string("id") == "chatcmpl-1")
        #expect(reply.string("model") == "gpt-4o-mini-2024-07-18")
        #expect(reply.isEmptyArray("choices") == false)
        #expect(reply.member("missing") == nil)
        let usage = try #require(UsageExtraction.usage(from: reply))
        #expect([usage.promptTokens, usage.completionTokens, usage.totalTokens, usage.cachedPromptTokens, usage.reasoningTokens] as [Int] == [11, 7, 18, 3, 2])

        let message = try #require(reply.member("choices"))
        #expect(message.kind == .array)
        let responses = try #require(read(#"{"usage":{"input_tokens":5,"output_tokens":9,"output_tokens_details":{"reasoning_tokens":4}},"choices":[ ]}"#))
        let usage2 = try #require(UsageExtraction.usage(from: responses))
        #expect([usage2.promptTokens, usage2.completionTokens, usage2.totalTokens, usage2.reasoningTokens] as [Int] == [5, 9, 14, 4])
        #expect(responses.isEmptyArray("choices") == true)
    }

    @Test func stringsDecodeLikeFoundation() throws {
        for literal in [#""plain""#, #""quote \" backslash \\ slash \/ tab \t nl \n""#, #""\u00e9\u4e2d\ud83d\ude00""#, #""\u0000x""#] {
            let document = "{\"k\":\(literal)}"
            let expected = try #require((try JSONSerialization.jsonObject(with: Data(document.utf8))) as? [String: Any])["k"] as? String
            #expect(read(document)?.string("k") == expected, "\(literal)")
        }
    }

    @Test func theLastOfDuplicateKeysCountsAndEscapedKeysAreFlagged() throws {
        let reader = try #require(read(#"{"model":"a","stream":false,"model":"b","stream":true}"#))
        #expect(reader.string("model") == "b" && reader.bool("stream") == true && !reader.hasEscapedKeys)
        let escaped = try #require(read(#"{"mod\u0065l":"x"}"#))
        #expect(escaped.hasEscapedKeys && escaped.string("model") == nil)
    }

    @Test func integersAreReadExactlyAndOnlyWhenIntegral() throws {
        let reader = try #require(read(#"{"a":0,"b":-12,"c":9223372036854775807,"d":9223372036854775808,"e":1.5,"f":"3","g":1e3}"#))
        #expect(reader.int("a") == 0 && reader.int("b") == -12 && reader.int("c") == Int.max)
        #expect(reader.int("d") == nil && reader.int("e") == nil && reader.int("f") == nil && reader.int("g") == nil)
    }

    @Test func acceptsObjectsOnlyAndRejectsMalformedDocuments() {
        let good = [#"{}"#, #"  { "a" : [ 1 , { "b" : null } , true , false , "x" ] }  "#, "{\"a\":\n{\"b\":{}}}", #"{"a":[]}"#]
        for text in good { #expect(read(text) != nil, "\(text)") }
        let bad = [
            "", "[]", #""s""#, "1", "null", "{", "}", #"{"a"}"#, #"{"a":}"#, #"{"a":1,}"#, #"{"a":1 "b":2}"#, #"{"a":tru}"#, #"{"a":nul}"#,
            #"{"a":"unterminated}"#, "{\"a\":\"raw\ncontrol\"}", #"{"a":"\x"}"#, #"{"a":"\u12"}"#, #"{"a":[1,2}"#, #"{"a":{"b":1]}"#,
            #"{"a":1} trailing"#, #"{"a":1}{"b":2}"#, #"{a:1}"#, #"{'a':1}"#,
        ]
        for text in bad {
            #expect(read(text) == nil, "\(text)")
            // Foundation agrees that none of these is a JSON object, but for a trailing comma, which it tolerates (the
            // JSON grammar and OpenAI's API do not).
            if text != #"{"a":1,}"# {
                #expect(((try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any]) == nil, "\(text)")
            }
        }
        // A hostile nesting depth is refused instead of exhausting the stack.
        #expect(read("{\"a\":" + String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000) + "}") == nil)
        #expect(read("{\"a\":" + String(repeating: "[", count: 100) + String(repeating: "]", count: 100) + "}") != nil)
    }

    @Test func splicesChangeOnlyWhatTheyName() throws {
        let text = #"{"model": "alias" ,"stream":true,"stream_options":{"include_usage":false,"x":1},"messages":[{"content":"model"}]}"#
        let reader = try #require(read(text))
        let options = try #require(reader.object("stream_options"))
        let edited = String(decoding: reader.applying([
            reader.replacing(try #require(reader.member("model")), with: JSONObjectReader.encodeString("gpt-\"4o\"")),
            options.replacing(try #require(options.member("include_usage")), with: Array("true".utf8)),
        ]), as: UTF8.self)
        #expect(edited == #"{"model": "gpt-\"4o\"" ,"stream":true,"stream_options":{"include_usage":true,"x":1},"messages":[{"content":"model"}]}"#)

        let empty = try #require(read(" {  } "))
        #expect(String(decoding: empty.applying([empty.inserting(key: "model", value: JSONObjectReader.encodeString("m"))]), as: UTF8.self) == #" {"model":"m"  } "#)
        let one = try #require(read(#"{"stream_options":{}, "a":1}"#))
        let inner = try #require(one.object("stream_options"))
        let both = String(decoding: one.applying([
            one.inserting(key: "model", value: JSONObjectReader.encodeString("m")),
            inner.inserting(key: "include_usage", value: Array("true".utf8)),
        ]), as: UTF8.self)
        #expect(both == #"{"model":"m","stream_options":{"include_usage":true}, "a":1}"#)
        #expect(read(both) != nil)
        #expect(JSONObjectReader.encodeString("a\u{1}\n\\") == Array(#""a\u0001\n\\""#.utf8))
    }
}
