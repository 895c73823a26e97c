import Synchronization

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
    ///
    /// A caller that must not wait (a request on an event loop) asks `loaded(forModel:)` instead.
    public static func forEncoding(_ encoding: TokenEncoding) throws(TokenizerError) -> Tokenizer {
        try SharedTokenizers.slot(encoding).get()
    }

    /// The shared tokenizer of an encoding if its vocabulary has loaded (or nil, at once, while it loads or when it
    /// failed to load): never blocks, so it is what the gateway's request path uses.
    public static func loaded(_ encoding: TokenEncoding) -> Tokenizer? {
        SharedTokenizers.slot(encoding).ifLoaded()
    }

    /// `loaded(_:)` for a model name (see `TokenEncoding.forModel(_:)`).
    public static func loaded(forModel model: String) -> Tokenizer? {
        loaded(TokenEncoding.forModel(model))
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

/// The process-wide tokenizers, each loaded once and kept. A load runs on the thread that first asks for it; other
/// callers of `get()` wait for it, while `ifLoaded()` never waits (a Swift-concurrency thread or an event loop must
/// not block for a vocabulary). A failure is kept and thrown to every caller.
enum SharedTokenizers {
    static let o200kBase = Slot(.o200kBase)
    static let cl100kBase = Slot(.cl100kBase)

    static func slot(_ encoding: TokenEncoding) -> Slot {
        switch encoding {
        case .o200kBase: o200kBase
        case .cl100kBase: cl100kBase
        }
    }

    final class Slot: Sendable {
        let encoding: TokenEncoding
        private let result = Mutex<Result<Tokenizer, TokenizerError>?>(nil)
        /// Held while the vocabulary loads, so it loads once.
        private let loading = Mutex<Void>(())

        init(_ encoding: TokenEncoding) { self.encoding = encoding }

        func get() throws(TokenizerError) -> Tokenizer {
            if let loaded = result.withLock({ $0 }) { return try loaded.get() }
            let loaded = loading.withLock { _ in
                if let loaded = result.withLock({ $0 }) { return loaded }
                let loaded = Result { () throws(TokenizerError) in try Tokenizer.load(encoding) }
                result.withLock { $0 = loaded }
                return loaded
            }
            return try loaded.get()
        }

        func ifLoaded() -> Tokenizer? {
            guard case .success(let tokenizer) = result.withLock({ $0 }) else { return nil }
            return tokenizer
        }
    }
}
