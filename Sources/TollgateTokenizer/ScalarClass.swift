/// The Unicode classes the pre-tokenizer patterns test, as bits of one byte per scalar.
///
/// The patterns use `\p{L}`, `\p{N}`, `\s` (White_Space), `\r`/`\n`, and o200k's two letter sets:
/// `[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]` ("upper") and `[\p{Ll}\p{Lm}\p{Lo}\p{M}]` ("lower"). Every other class the
/// patterns name is a combination of these.
enum ScalarClass {
    static let letter: UInt8 = 1
    static let number: UInt8 = 2
    static let whitespace: UInt8 = 4
    static let upper: UInt8 = 8
    static let lower: UInt8 = 16
    static let newline: UInt8 = 32

    /// `[^\r\n\p{L}\p{N}]`: the one optional scalar before a letter run.
    @inline(__always) static func isLetterPrefix(_ c: UInt8) -> Bool { c & (letter | number | newline) == 0 }
    /// `[^\s\p{L}\p{N}]`: punctuation, symbols, marks, controls that are not White_Space.
    @inline(__always) static func isPunctuation(_ c: UInt8) -> Bool { c & (letter | number | whitespace) == 0 }

    /// The class bits of one scalar, from its Unicode properties (the slow path the table is built from).
    static func compute(_ value: UInt32) -> UInt8 {
        guard let scalar = Unicode.Scalar(value) else { return 0 }
        var bits: UInt8 = 0
        if scalar.properties.isWhitespace { bits |= whitespace }
        if value == 0x0A || value == 0x0D { bits |= newline }
        switch scalar.properties.generalCategory {
        case .uppercaseLetter, .titlecaseLetter: bits |= letter | upper
        case .lowercaseLetter: bits |= letter | lower
        case .modifierLetter, .otherLetter: bits |= letter | upper | lower
        case .nonspacingMark, .spacingMark, .enclosingMark: bits |= upper | lower
        case .decimalNumber, .letterNumber, .otherNumber: bits |= number
        default: break
        }
        return bits
    }

    /// Scalars below this have their class in `table`: the Basic Multilingual Plane and the Supplementary
    /// Multilingual Plane (emoji, mathematical letters, historic scripts). Above it, `compute` answers.
    static let tableLimit: UInt32 = 0x2_0000

    /// Class bits of every scalar below `tableLimit`, computed once: a table read is much cheaper than a Unicode
    /// property lookup, and almost all text lives there.
    static let table: [UInt8] = (0..<tableLimit).map { compute($0) }
}
