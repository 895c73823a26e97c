import Foundation

/// Reads tiktoken's vocabulary format: one `base64(token) rank` line per token, ranks 0, 1, 2, ... in order.
enum VocabularyFile {
    /// The shipped file of an encoding, from the package's resources.
    static func load(_ encoding: TokenEncoding) throws(TokenizerError) -> [[UInt8]] {
        guard let url = url(of: encoding), let data = try? Data(contentsOf: url, options: .mappedIfSafe)
        else { throw .vocabularyMissing(encoding) }
        return try parse(data, encoding: encoding)
    }

    /// Where the bundle holds the encoding's file.
    static func url(of encoding: TokenEncoding) -> URL? {
        Bundle.module.url(forResource: encoding.rawValue, withExtension: "tiktoken")
    }

    static func parse(_ data: Data, encoding: TokenEncoding) throws(TokenizerError) -> [[UInt8]] {
        let result: Result<[[UInt8]], TokenizerError> = data.withUnsafeBytes { raw in
            let bytes = raw.bindMemory(to: UInt8.self)
            var tokens: [[UInt8]] = []
            tokens.reserveCapacity(bytes.count / 16)
            var i = 0
            var line = 1
            while i < bytes.count {
                var token: [UInt8] = []
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
                        token.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
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
                guard digits > 0, rank == tokens.count, !token.isEmpty, i >= bytes.count || bytes[i] == UInt8(ascii: "\n") else {
                    return .failure(.vocabularyMalformed(encoding, line: line))
                }
                tokens.append(token)
                i += 1
                line += 1
            }
            return .success(tokens)
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
