import Testing
import TollgateTokenizer

/// Known ids (the first from the OpenAI cookbook, the others from tiktoken 0.14) and the pre-tokenizer's edges.
struct TokenizerTests {
    @Test func theCookbookExampleHasTheCookbookIds() throws {
        #expect(try Tokenizer.forEncoding(.cl100kBase).encode("tiktoken is great!") == [83, 1609, 5963, 374, 2294, 0])
        #expect(try Tokenizer.forEncoding(.o200kBase).encode("tiktoken is great!") == [83, 8251, 2488, 382, 2212, 0])
    }

    @Test(arguments: [
        ("hello world", [15339, 1917], [24912, 2375]),
        ("I'm HERE'S we'LL", [40, 2846, 19804, 13575, 584, 6, 4178], [15390, 32396, 31233, 581, 6, 7454]),
        ("  \n\n  x", [19124, 220, 865], [11691, 220, 1215]),
        ("<|endoftext|>", [27, 91, 8862, 728, 428, 91, 29], [27, 91, 419, 1440, 919, 91, 29]),
        ("", [], []),
    ])
    func knownIds(_ text: String, cl100k: [Int], o200k: [Int]) throws {
        #expect(try Tokenizer.forEncoding(.cl100kBase).encode(text) == cl100k)
        #expect(try Tokenizer.forEncoding(.o200kBase).encode(text) == o200k)
        #expect(try Tokenizer.forEncoding(.o200kBase).count(text) == o200k.count)
    }

    @Test func specialTokensAreOrdinaryText() throws {
        let tokenizer = try Tokenizer.forEncoding(.o200kBase)
        #expect(!tokenizer.encode("a<|endoftext|>b").contains(199_999))
    }

    @Test func aMegabyteOfOneLetterEncodesInLinearishTime() throws {
        let tokenizer = try Tokenizer.forEncoding(.cl100kBase)
        let text = String(repeating: "a", count: 200_000)
        let clock = ContinuousClock()
        let elapsed = clock.measure { #expect(tokenizer.count(text) > 0) }
        // The quadratic merge would take minutes here (debug build); the heap takes well under a second.
        #expect(elapsed < .seconds(20))
        #expect(tokenizer.decode(tokenizer.encode(text)) == Array(text.utf8))
    }
}
