import Foundation
import Testing
import TollgateTokenizer

/// The counts OpenAI publishes in its cookbook ("How to count tokens with tiktoken"), which it checked against the
/// API's `usage.prompt_tokens`, and the image examples of its vision guide.
struct ChatTokenCounterTests {
    static let jargonMessages = #"""
        [
          {"role": "system", "content": "You are a helpful, pattern-following assistant that translates corporate jargon into plain English."},
          {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
          {"role": "system", "name": "example_assistant", "content": "Things working well together will increase revenue."},
          {"role": "system", "name": "example_user", "content": "Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage."},
          {"role": "system", "name": "example_assistant", "content": "Let's talk later when we're less busy about how to do better."},
          {"role": "user", "content": "This late pivot means we don't have time to boil the ocean for the client deliverable."}
        ]
        """#

    static let weatherTools = #"""
        [{"type": "function", "function": {"name": "get_current_weather", "description": "Get the current weather in a given location",
          "parameters": {"type": "object", "properties": {
            "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
            "unit": {"type": "string", "description": "The unit of temperature to return", "enum": ["celsius", "fahrenheit"]}},
          "required": ["location"]}}}]
        """#

    static let weatherMessages = #"""
        [{"role": "system", "content": "You are a helpful assistant that can answer to questions about the weather."},
         {"role": "user", "content": "What's the weather like in San Francisco?"}]
        """#

    static func body(model: String, messages: String, tools: String? = nil) -> Data {
        Data(#"{"model": "\#(model)", "messages": \#(messages)\#(tools.map { #", "tools": \#($0)"# } ?? "")}"#.utf8)
    }

    @Test(arguments: [("gpt-3.5-turbo", 129), ("gpt-4-0613", 129), ("gpt-4", 129), ("gpt-4o", 124), ("gpt-4o-mini", 124)])
    func theCookbookMessagesCountAsPublished(_ model: String, expected: Int) throws {
        #expect(try ChatTokenCounter.promptTokens(body: Self.body(model: model, messages: Self.jargonMessages)) == expected)
    }

    @Test(arguments: [("gpt-3.5-turbo", 105), ("gpt-4", 105), ("gpt-4o", 101), ("gpt-4o-mini", 101)])
    func theCookbookToolsCountAsPublished(_ model: String, expected: Int) throws {
        let body = Self.body(model: model, messages: Self.weatherMessages, tools: Self.weatherTools)
        #expect(try ChatTokenCounter.promptTokens(body: body) == expected)
    }

    @Test func theModelArgumentOverridesTheBodys() throws {
        let body = Self.body(model: "gpt-4o", messages: Self.jargonMessages)
        #expect(try ChatTokenCounter.promptTokens(body: body, model: "gpt-4") == 129)
    }

    @Test func legacyFunctionsCountLikeTools() throws {
        // The same function as the cookbook's tool, unwrapped: `functions` lists function objects directly.
        let functions = #"""
            [{"name": "get_current_weather", "description": "Get the current weather in a given location",
              "parameters": {"type": "object", "properties": {
                "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
                "unit": {"type": "string", "description": "The unit of temperature to return", "enum": ["celsius", "fahrenheit"]}}}}]
            """#
        let body = Data(#"{"model": "gpt-4o", "messages": \#(Self.weatherMessages), "functions": \#(functions)}"#.utf8)
        #expect(try ChatTokenCounter.promptTokens(body: body) == 101)
    }

    @Test func textPartsCountLikeAStringContent() throws {
        let parts = #"""
            [{"role": "user", "content": [{"type": "text", "text": "What's the weather like in "}, {"type": "text", "text": "San Francisco?"}]}]
            """#
        let plain = #"[{"role": "user", "content": "What's the weather like in San Francisco?"}]"#
        // Each part is encoded on its own: the first one's trailing space is a token of its own, " San" is not one.
        let split = try ChatTokenCounter.promptTokens(body: Self.body(model: "gpt-4o", messages: parts))
        let joined = try ChatTokenCounter.promptTokens(body: Self.body(model: "gpt-4o", messages: plain))
        #expect(joined == 3 + 1 + 8 + 3)  // message, role "user", 8 content tokens, reply priming
        #expect(split == joined + 1)
    }

    @Test func imagePartsCountByTiles() throws {
        let messages = #"""
            [{"role": "user", "content": [
              {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "low"}},
              {"type": "image_url", "image_url": {"url": "https://example.com/b.png", "detail": "high", "width": 2048, "height": 4096}},
              {"type": "image_url", "image_url": {"url": "https://example.com/c.png"}}]}]
            """#
        // 3 + "user" 1 + 85 (low) + 1105 (6 tiles) + 765 (unknown size: 4 tiles) + 3
        #expect(try ChatTokenCounter.promptTokens(body: Self.body(model: "gpt-4o", messages: messages)) == 3 + 1 + 85 + 1105 + 765 + 3)
    }

    @Test func aDataURLImageIsMeasuredFromItsHeader() throws {
        // A PNG header (signature, IHDR of 1024×1024), base64: 4 tiles = 765 at high detail.
        var png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52]
        png += [0, 0, 0x04, 0x00, 0, 0, 0x02, 0x00, 8, 6, 0, 0, 0]  // 1024 × 512
        let url = "data:image/png;base64," + Data(png).base64EncodedString()
        let messages = #"[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "\#(url)", "detail": "high"}}]}]"#
        // 1024×512: short side 512 ≤ 768 stays, 2 × 1 tiles = 85 + 340.
        #expect(try ChatTokenCounter.promptTokens(body: Self.body(model: "gpt-4o", messages: messages)) == 3 + 1 + 425 + 3)
    }

    @Test func notAChatBodyIsRefused() {
        #expect(throws: ChatTokenCounter.BodyError.notJSONObject) { try ChatTokenCounter.promptTokens(body: Data("hello".utf8)) }
        #expect(throws: ChatTokenCounter.BodyError.noMessages) { try ChatTokenCounter.promptTokens(body: Data(#"{"input": "x"}"#.utf8)) }
        #expect(ChatTokenCounter.isChatBody(Self.body(model: "gpt-4o", messages: Self.weatherMessages)))
        #expect(!ChatTokenCounter.isChatBody(Data(#"{"a": 1}"#.utf8)))
        #expect(!ChatTokenCounter.isChatBody(Data("messages".utf8)))
    }
}

struct ImageTokenCostTests {
    /// OpenAI's vision guide: 1024×1024 high = 765; 2048×4096 high = 1105; 4096×8192 low = 85.
    @Test(arguments: [
        (ImageTokenCost.Detail.high, 1024, 1024, 765), (.high, 2048, 4096, 1105), (.low, 4096, 8192, 85), (.auto, 1024, 1024, 765),
        (.high, 512, 512, 255), (.high, 513, 512, 425), (.high, 100, 100, 255), (.high, 768, 768, 765), (.high, 8000, 100, 85 + 170 * 4),
    ])
    func tileCounts(_ detail: ImageTokenCost.Detail, width: Int, height: Int, expected: Int) {
        #expect(ImageTokenCost.tokens(detail: detail, width: width, height: height, model: "gpt-4o") == expected)
    }

    @Test func unknownSizeAndGpt4oMiniRates() {
        #expect(ImageTokenCost.tokens(detail: .high, width: nil, height: nil, model: "gpt-4o") == 765)
        #expect(ImageTokenCost.tokens(detail: .low, width: nil, height: nil, model: "gpt-4o-mini") == 2_833)
        #expect(ImageTokenCost.tokens(detail: .high, width: 1024, height: 1024, model: "gpt-4o-mini") == 2_833 + 4 * 5_667)
    }
}
