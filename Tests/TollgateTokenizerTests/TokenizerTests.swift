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

    /// Scripts assigned after Unicode 14 (the corpus generator's Python knows no later characters, so it cannot pick
    /// them): Swift's Unicode tables and tiktoken's regex engine must still agree on their classes. Ids from tiktoken 0.14.
    @Test(arguments: [
        (
            "Kawi, Unicode 15", "a\u{11F04}\u{11F05} x\u{11F00}b", [64, 172, 239, 120, 226, 172, 239, 120, 227, 865, 172, 239, 120, 222, 65],
            [64, 172, 239, 120, 226, 172, 239, 120, 227, 1215, 172, 239, 120, 222, 65]
        ),
        (
            "Garay, Unicode 16", " \u{10D50}\u{10D51}\u{10D70} \u{10D40}",
            [220, 172, 238, 113, 238, 172, 238, 113, 239, 172, 238, 113, 108, 220, 172, 238, 113, 222],
            [220, 172, 238, 113, 238, 172, 238, 113, 239, 172, 238, 113, 108, 220, 172, 238, 113, 222]
        ),
        (
            "Tulu-Tigalari, Unicode 16", "x\u{11380}\u{11381}\u{113B8}y", [87, 172, 239, 236, 222, 172, 239, 236, 223, 172, 239, 236, 116, 88],
            [87, 172, 239, 236, 222, 172, 239, 236, 223, 172, 239, 236, 116, 88]
        ),
        (
            "CJK extension I, Unicode 15.1", "a\u{2EBF0}\u{2EBF1}", [64, 172, 106, 107, 108, 172, 106, 107, 109],
            [64, 172, 106, 107, 108, 172, 106, 107, 109]
        ),
        (
            "emoji 15 with a skin tone", "\u{1FAE8} \u{1FAF7}\u{1F3FD}", [9468, 104, 101, 11410, 104, 115, 9468, 237, 121],
            [4103, 104, 101, 9552, 104, 115, 52622, 121]
        ),
        (
            "Kirat Rai, Unicode 16", "\u{16D40}\u{16D41} \u{16D70}", [172, 244, 113, 222, 172, 244, 113, 223, 220, 172, 244, 113, 108],
            [172, 244, 113, 222, 172, 244, 113, 223, 220, 172, 244, 113, 108]
        ),
        ("Latin Extended-D, Unicode 16", "\u{A7CB}\u{A7CD} hello", [166, 253, 233, 166, 253, 235, 24748], [166, 253, 233, 166, 253, 235, 40617]),
    ])
    func scriptsNewerThanUnicode14(_ name: String, _ text: String, cl100k: [Int], o200k: [Int]) throws {
        #expect(try Tokenizer.forEncoding(.cl100kBase).encode(text) == cl100k, "\(name)")
        #expect(try Tokenizer.forEncoding(.o200kBase).encode(text) == o200k, "\(name)")
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
