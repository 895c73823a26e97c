/// A byte-pair-encoding tokenizer that produces exactly the ids of OpenAI's tiktoken for `o200k_base` and
/// `cl100k_base`, from the vocabulary files shipped in this package.
///
/// Special tokens such as `<|endoftext|>` are ordinary text here, as in tiktoken's `encode_ordinary`: a prompt that
/// contains them is counted the way the API counts a user's text. Instances are immutable and safe to share.
///
/// ```swift
/// let tokenizer = try Tokenizer.forModel("gpt-4o")
/// tokenizer.count("hello world")  // 2
/// ```
public final class Tokenizer: Sendable {
    public let encoding: TokenEncoding
    let ranks: RankTable

    init(encoding: TokenEncoding, ranks: RankTable) {
        self.encoding = encoding
        self.ranks = ranks
    }

    /// The shared tokenizer of an encoding, loaded on first use (once per process, whichever thread asks first)
    /// and kept for the process's life.
    /// - Throws: `TokenizerError` when the vocabulary file is missing from the bundle or malformed.
    public static func forEncoding(_ encoding: TokenEncoding) throws(TokenizerError) -> Tokenizer {
        switch encoding {
        case .o200kBase: try SharedTokenizers.o200kBase.get()
        case .cl100kBase: try SharedTokenizers.cl100kBase.get()
        }
    }

    /// The shared tokenizer for a model name (see `TokenEncoding.forModel(_:)`).
    public static func forModel(_ model: String) throws(TokenizerError) -> Tokenizer {
        try forEncoding(TokenEncoding.forModel(model))
    }

    /// Loads an encoding from its shipped vocabulary file (what the shared instances are made of).
    static func load(_ encoding: TokenEncoding) throws(TokenizerError) -> Tokenizer {
        Tokenizer(encoding: encoding, ranks: RankTable(try VocabularyFile.load(encoding)))
    }

    /// The token ids of `text`.
    public func encode(_ text: String) -> [Int] {
        var tokens: [Int] = []
        tokens.reserveCapacity(text.utf8.count / 4)
        forEachToken(text) { tokens.append(Int($0)) }
        return tokens
    }

    /// The number of tokens of `text`, without building the array.
    public func count(_ text: String) -> Int {
        var count = 0
        forEachToken(text) { _ in count += 1 }
        return count
    }

    /// The bytes the tokens stand for (UTF-8 when the ids came from `encode`); nil if an id is not in the vocabulary.
    public func decode(_ tokens: [Int]) -> [UInt8]? {
        var bytes: [UInt8] = []
        for token in tokens {
            guard let piece = ranks.bytes(ofRank: token) else { return nil }
            bytes.append(contentsOf: piece)
        }
        return bytes
    }

    /// The number of tokens in the vocabulary (special tokens not included).
    public var vocabularySize: Int { ranks.count }

    @inline(__always) private func forEachToken(_ text: String, _ body: (UInt32) -> Void) {
        var text = text
        text.withUTF8 { utf8 in
            guard let base = utf8.baseAddress, utf8.count > 0 else { return }
            ScalarClass.table.withUnsafeBufferPointer { classes in
                guard let classes = classes.baseAddress else { return }
                let scanner = PieceScanner(bytes: base, count: utf8.count, classes: classes)
                var scratch = MergeScratch()
                var start = 0
                switch encoding {
                case .o200kBase:
                    while start < utf8.count {
                        let end = scanner.nextO200k(from: start)
                        ranks.encodePiece(base + start, end - start, readable: utf8.count - start, scratch: &scratch, body)
                        start = end
                    }
                case .cl100kBase:
                    while start < utf8.count {
                        let end = scanner.nextCl100k(from: start)
                        ranks.encodePiece(base + start, end - start, readable: utf8.count - start, scratch: &scratch, body)
                        start = end
                    }
                }
            }
        }
    }
}

/// The process-wide tokenizers. Swift initialises a global `let` lazily and exactly once, even when several threads
/// reach it at the same time, which is the thread-safe lazy load we want; a failure is kept and thrown to every caller.
enum SharedTokenizers {
    static let o200kBase = Result { () throws(TokenizerError) in try Tokenizer.load(.o200kBase) }
    static let cl100kBase = Result { () throws(TokenizerError) in try Tokenizer.load(.cl100kBase) }
}
