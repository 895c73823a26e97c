import Foundation

/// Every token's bytes back to back in rank order: token r is `bytes[offsets[r] ..< offsets[r + 1]]`.
struct Vocabulary {
    var bytes: [UInt8] = []
    var offsets: [UInt32] = [0]
    var count: Int { offsets.count - 1 }
}

/// Reads tiktoken's vocabulary format: one `base64(token) rank` line per token, ranks 0, 1, 2, ... in order.
enum VocabularyFile {
    /// The shipped file of an encoding, from the package's resources.
    static func load(_ encoding: TokenEncoding) throws(TokenizerError) -> Vocabulary {
        guard let url = url(of: encoding), let data = try? Data(contentsOf: url, options: .mappedIfSafe)
        else { throw .vocabularyMissing(encoding) }
        return try parse(data, encoding: encoding)
    }

    /// Where the bundle holds the encoding's file.
    static func url(of encoding: TokenEncoding) -> URL? {
        Bundle.module.url(forResource: encoding.rawValue, withExtension: "tiktoken")
    }

    static func parse(_ data: Data, encoding: TokenEncoding) throws(TokenizerError) -> Vocabulary {
        let result: Result<Vocabulary, TokenizerError> = data.withUnsafeBytes { raw in
            let bytes = raw.bindMemory(to: UInt8.self)
            var vocabulary = Vocabulary()
            // Base64 is 4/3 of the bytes, and a line carries a rank besides: this reserves a little more than needed.
            vocabulary.bytes.reserveCapacity(bytes.count * 3 / 4)
            vocabulary.offsets.reserveCapacity(bytes.count / 8)
            var i = 0
            var line = 1
            while i < bytes.count {
                let tokenStart = vocabulary.bytes.count
                var accumulator: UInt32 = 0
                var bits = 0
                while i < bytes.count && bytes[i] != UInt8(ascii: " ") {
                    let value = base64Value(bytes[i])
                    i += 1
                    if value == 64 { continue }  // "=" padding
                    guard value < 64 else { return .failure(.vocabularyMalformed(encoding, line: line)) }
                    accumulator = accumulator << 6 | UInt32(value)
                    bits += 6
                    if bits >= 8 {
                        bits -= 8
                        vocabulary.bytes.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
                    }
                }
                i += 1
                var rank = 0
                var digits = 0
                while i < bytes.count && bytes[i] >= UInt8(ascii: "0") && bytes[i] <= UInt8(ascii: "9") {
                    rank = rank * 10 + Int(bytes[i] - UInt8(ascii: "0"))
                    digits += 1
                    i += 1
                }
                let tokenEnd = vocabulary.bytes.count
                guard digits > 0, rank == vocabulary.count, tokenEnd > tokenStart, i >= bytes.count || bytes[i] == UInt8(ascii: "\n") else {
                    return .failure(.vocabularyMalformed(encoding, line: line))
                }
                vocabulary.offsets.append(UInt32(tokenEnd))
                i += 1
                line += 1
            }
            return .success(vocabulary)
        }
        return try result.get()
    }

    /// 0–63 for a base64 digit, 64 for `=`, 255 for anything else.
    @inline(__always) private static func base64Value(_ byte: UInt8) -> UInt8 {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): byte - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): byte - UInt8(ascii: "a") + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0") + 52
        case UInt8(ascii: "+"): 62
        case UInt8(ascii: "/"): 63
        case UInt8(ascii: "="): 64
        default: 255
        }
    }
}
