/// Reads the members of a JSON object straight from its UTF-8 bytes, without building a dictionary of the document:
/// the gateway needs a handful of fields of each request (`model`, `stream`, `stream_options`) and of each reply
/// (`id`, `model`, `usage`), and parsing whole documents into `[String: Any]` was a tenth of its CPU time per request.
///
/// The whole value is checked as it is read (strings closed, escapes and literals well formed, brackets matched,
/// nothing after the end), so a body this accepts is JSON. Numbers are checked for their characters only; the upstream
/// rejects a malformed one. When a key occurs twice the last one counts, as in the parsers upstreams use.
struct JSONObjectReader {
    enum Kind: Equatable { case object, array, string, number, bool, null }

    struct Member {
        /// The key's bytes between its quotes, still escaped.
        let key: Range<Int>
        let keyHasEscapes: Bool
        /// The value's bytes, from its first to its last character.
        let value: Range<Int>
        let kind: Kind
    }

    let bytes: [UInt8]
    /// The object's bytes, from `{` to `}`.
    let range: Range<Int>
    let members: [Member]

    /// Reads a whole document that must be one object (surrounding whitespace allowed).
    init?(document bytes: [UInt8]) {
        var scanner = Scanner(bytes: bytes, position: 0)
        scanner.skipWhitespace()
        guard scanner.peek == UInt8(ascii: "{"), let members = scanner.objectMembers() else { return nil }
        let end = scanner.position
        scanner.skipWhitespace()
        guard scanner.position == bytes.count else { return nil }
        self.init(bytes: bytes, range: members.start..<end, members: members.members)
    }

    private init(bytes: [UInt8], range: Range<Int>, members: [Member]) {
        self.bytes = bytes
        self.range = range
        self.members = members
    }

    /// The last member named `name`, if any.
    func member(_ name: StaticString) -> Member? {
        let key = UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount)
        return members.last { member in
            member.key.count == key.count && !member.keyHasEscapes && bytes[member.key].elementsEqual(key)
        }
    }

    /// Whether any key carries an escape sequence: a reader that compares raw key bytes could then miss a field.
    var hasEscapedKeys: Bool { members.contains { $0.keyHasEscapes } }

    func string(_ name: StaticString) -> String? {
        guard let member = member(name), member.kind == .string else { return nil }
        return Self.decodeString(bytes[member.value])
    }

    func bool(_ name: StaticString) -> Bool? {
        guard let member = member(name), member.kind == .bool else { return nil }
        return bytes[member.value.lowerBound] == UInt8(ascii: "t")
    }

    /// An integer member; fractions and exponents (never used for token counts) are not integers.
    func int(_ name: StaticString) -> Int? {
        guard let member = member(name), member.kind == .number else { return nil }
        var value = 0
        var negative = false
        for (offset, byte) in bytes[member.value].enumerated() {
            if offset == 0 && byte == UInt8(ascii: "-") {
                negative = true
                continue
            }
            guard byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") else { return nil }
            let (times, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times.addingReportingOverflow(Int(byte - UInt8(ascii: "0")))
            guard !overflow1 && !overflow2 else { return nil }
            value = sum
        }
        return negative ? -value : value
    }

    func object(_ name: StaticString) -> JSONObjectReader? {
        guard let member = member(name), member.kind == .object else { return nil }
        var scanner = Scanner(bytes: bytes, position: member.value.lowerBound)
        guard let members = scanner.objectMembers() else { return nil }
        return JSONObjectReader(bytes: bytes, range: member.value, members: members.members)
    }

    /// Whether the member is an array with no elements (`[]`, whitespace allowed).
    func isEmptyArray(_ name: StaticString) -> Bool? {
        guard let member = member(name), member.kind == .array else { return nil }
        return bytes[member.value].dropFirst().dropLast().allSatisfy(Scanner.isWhitespace)
    }

    // MARK: - Editing

    /// One change to the document: the bytes in `range` replaced by `bytes` (an empty range inserts).
    struct Splice {
        let range: Range<Int>
        let bytes: [UInt8]
    }

    /// Replaces a member's value (the member must be one of this object's, or of an object inside it).
    func replacing(_ member: Member, with value: [UInt8]) -> Splice {
        Splice(range: member.value, bytes: value)
    }

    /// Adds a member at the start of this object.
    func inserting(key: String, value: [UInt8]) -> Splice {
        let afterBrace = range.lowerBound + 1
        return Splice(range: afterBrace..<afterBrace, bytes: Self.encodeString(key) + [UInt8(ascii: ":")] + value + (members.isEmpty ? [] : [UInt8(ascii: ",")]))
    }

    /// The document with the splices applied (they must not overlap); every other byte is passed through as it came.
    func applying(_ splices: [Splice]) -> [UInt8] {
        let ordered = splices.enumerated().sorted { ($0.element.range.lowerBound, $0.offset) < ($1.element.range.lowerBound, $1.offset) }.map(\.element)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + ordered.reduce(0) { $0 + $1.bytes.count })
        var position = 0
        for splice in ordered {
            out.append(contentsOf: bytes[position..<splice.range.lowerBound])
            out.append(contentsOf: splice.bytes)
            position = splice.range.upperBound
        }
        out.append(contentsOf: bytes[position...])
        return out
    }

    /// `text` as a JSON string literal, quotes included.
    static func encodeString(_ text: String) -> [UInt8] {
        var out: [UInt8] = [UInt8(ascii: "\"")]
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out += [UInt8(ascii: "\\"), UInt8(ascii: "\"")]
            case UInt8(ascii: "\\"): out += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
            case 0x0A: out += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
            case 0x0D: out += [UInt8(ascii: "\\"), UInt8(ascii: "r")]
            case 0x09: out += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
            case 0..<0x20:
                out += [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), lowercaseHexDigits[Int(byte >> 4)],
                    lowercaseHexDigits[Int(byte & 0xF)]]
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
        return out
    }

    /// The text of a string value (quotes included in `literal`), escapes resolved; nil if an escape is malformed.
    static func decodeString(_ literal: ArraySlice<UInt8>) -> String? {
        let inner = literal.dropFirst().dropLast()
        guard inner.contains(UInt8(ascii: "\\")) else { return String(decoding: inner, as: UTF8.self) }
        var scalars = String.UnicodeScalarView()
        var utf8: [UInt8] = []
        func flush() {
            if !utf8.isEmpty { scalars.append(contentsOf: String(decoding: utf8, as: UTF8.self).unicodeScalars) }
            utf8.removeAll(keepingCapacity: true)
        }
        var index = inner.startIndex
        func hex4(at position: Int) -> UInt32? {
            guard position + 4 <= inner.endIndex else { return nil }
            return UInt32(String(decoding: inner[position..<position + 4], as: UTF8.self), radix: 16)
        }
        while index < inner.endIndex {
            let byte = inner[index]
            guard byte == UInt8(ascii: "\\") else {
                utf8.append(byte)
                index += 1
                continue
            }
            guard index + 1 < inner.endIndex else { return nil }
            let escaped = inner[index + 1]
            index += 2
            switch escaped {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(escaped)
            case UInt8(ascii: "b"): utf8.append(0x08)
            case UInt8(ascii: "f"): utf8.append(0x0C)
            case UInt8(ascii: "n"): utf8.append(0x0A)
            case UInt8(ascii: "r"): utf8.append(0x0D)
            case UInt8(ascii: "t"): utf8.append(0x09)
            case UInt8(ascii: "u"):
                guard var code = hex4(at: index) else { return nil }
                index += 4
                if (0xD800..<0xDC00).contains(code), index + 6 <= inner.endIndex, inner[index] == UInt8(ascii: "\\"),
                    inner[index + 1] == UInt8(ascii: "u"), let low = hex4(at: index + 2), (0xDC00..<0xE000).contains(low)
                {
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    index += 6
                }
                flush()
                scalars.append(Unicode.Scalar(code) ?? "\u{FFFD}")
            default: return nil
            }
        }
        flush()
        return String(scalars)
    }

    // MARK: - Scanning

    private struct Scanner {
        let bytes: [UInt8]
        var position: Int
        /// Nesting limit: a hostile body must not recurse the stack away.
        var depth = 0

        var peek: UInt8? { position < bytes.count ? bytes[position] : nil }

        static func isWhitespace(_ byte: UInt8) -> Bool {
            byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09
        }

        mutating func skipWhitespace() {
            while position < bytes.count && Self.isWhitespace(bytes[position]) { position += 1 }
        }

        mutating func expect(_ byte: UInt8) -> Bool {
            guard peek == byte else { return false }
            position += 1
            return true
        }

        /// At `{`: reads to after the matching `}`.
        mutating func objectMembers() -> (start: Int, members: [Member])? {
            let start = position
            guard expect(UInt8(ascii: "{")) else { return nil }
            depth += 1
            defer { depth -= 1 }
            guard depth <= 512 else { return nil }
            var members: [Member] = []
            skipWhitespace()
            if expect(UInt8(ascii: "}")) { return (start, members) }
            while true {
                skipWhitespace()
                let keyStart = position
                guard let keyEscaped = string() else { return nil }
                let key = keyStart + 1..<position - 1
                skipWhitespace()
                guard expect(UInt8(ascii: ":")) else { return nil }
                skipWhitespace()
                let valueStart = position
                guard let kind = value() else { return nil }
                members.append(Member(key: key, keyHasEscapes: keyEscaped, value: valueStart..<position, kind: kind))
                skipWhitespace()
                if expect(UInt8(ascii: ",")) { continue }
                guard expect(UInt8(ascii: "}")) else { return nil }
                return (start, members)
            }
        }

        mutating func value() -> Kind? {
            switch peek {
            case UInt8(ascii: "{"): return objectMembers() == nil ? nil : .object
            case UInt8(ascii: "["): return array() ? .array : nil
            case UInt8(ascii: "\""): return string() == nil ? nil : .string
            case UInt8(ascii: "t"): return literal("true") ? .bool : nil
            case UInt8(ascii: "f"): return literal("false") ? .bool : nil
            case UInt8(ascii: "n"): return literal("null") ? .null : nil
            case .some(let byte) where byte == UInt8(ascii: "-") || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")):
                let start = position
                while let byte = peek, Self.isNumberCharacter(byte) { position += 1 }
                return position > start ? .number : nil
            default: return nil
            }
        }

        static func isNumberCharacter(_ byte: UInt8) -> Bool {
            (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "+")
                || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "e") || byte == UInt8(ascii: "E")
        }

        mutating func array() -> Bool {
            guard expect(UInt8(ascii: "[")) else { return false }
            depth += 1
            defer { depth -= 1 }
            guard depth <= 512 else { return false }
            skipWhitespace()
            if expect(UInt8(ascii: "]")) { return true }
            while true {
                skipWhitespace()
                guard value() != nil else { return false }
                skipWhitespace()
                if expect(UInt8(ascii: ",")) { continue }
                return expect(UInt8(ascii: "]"))
            }
        }

        /// At `"`: reads to after the closing quote. Returns whether the string had escapes, nil if malformed.
        mutating func string() -> Bool? {
            guard expect(UInt8(ascii: "\"")) else { return nil }
            var escaped = false
            while position < bytes.count {
                let byte = bytes[position]
                switch byte {
                case UInt8(ascii: "\""):
                    position += 1
                    return escaped
                case UInt8(ascii: "\\"):
                    escaped = true
                    guard position + 1 < bytes.count else { return nil }
                    switch bytes[position + 1] {
                    case UInt8(ascii: "u"):
                        guard position + 6 <= bytes.count, bytes[position + 2..<position + 6].allSatisfy(Self.isHexDigit) else { return nil }
                        position += 6
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"), UInt8(ascii: "n"),
                        UInt8(ascii: "r"), UInt8(ascii: "t"):
                        position += 2
                    default: return nil
                    }
                case 0..<0x20: return nil  // control characters must be escaped
                default: position += 1
                }
            }
            return nil
        }

        static func isHexDigit(_ byte: UInt8) -> Bool {
            (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "f"))
                || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "F"))
        }

        mutating func literal(_ word: StaticString) -> Bool {
            let count = word.utf8CodeUnitCount
            guard position + count <= bytes.count else { return false }
            let text = UnsafeRawBufferPointer(start: word.utf8Start, count: count)
            guard bytes[position..<position + count].elementsEqual(text) else { return false }
            position += count
            return true
        }
    }
}
