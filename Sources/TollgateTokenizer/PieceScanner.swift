/// Splits UTF-8 text into the pieces tiktoken's pre-tokenizer regex finds, without a regex engine.
///
/// Each `next…` function returns where the piece starting at `start` ends, reproducing the leftmost-first,
/// backtracking semantics of the encoding's pattern (fancy-regex, as tiktoken runs it) alternative by alternative.
/// The input is valid UTF-8 (it comes from a Swift `String`), so a scalar's length follows from its first byte.
struct PieceScanner {
    let bytes: UnsafePointer<UInt8>
    let count: Int
    /// `ScalarClass.table`'s storage.
    let classes: UnsafePointer<UInt8>

    /// The class bits and UTF-8 length of the scalar at `index`.
    @inline(__always) func scalar(at index: Int) -> (bits: UInt8, length: Int) {
        let b0 = bytes[index]
        if b0 < 0x80 { return (classes[Int(b0)], 1) }
        if b0 < 0xE0 {
            let value = Int(b0 & 0x1F) << 6 | Int(bytes[index + 1] & 0x3F)
            return (classes[value], 2)
        }
        if b0 < 0xF0 {
            let value = Int(b0 & 0x0F) << 12 | Int(bytes[index + 1] & 0x3F) << 6 | Int(bytes[index + 2] & 0x3F)
            return (classes[value], 3)
        }
        let value =
            UInt32(b0 & 0x07) << 18 | UInt32(bytes[index + 1] & 0x3F) << 12 | UInt32(bytes[index + 2] & 0x3F) << 6
            | UInt32(bytes[index + 3] & 0x3F)
        return (value < ScalarClass.tableLimit ? classes[Int(value)] : ScalarClass.compute(value), 4)
    }

    /// The end of the run of scalars from `index` whose class shares a bit with `mask`.
    @inline(__always) func run(of mask: UInt8, from index: Int) -> Int {
        var i = index
        while i < count {
            let (bits, length) = scalar(at: i)
            guard bits & mask != 0 else { break }
            i += length
        }
        return i
    }

    /// The end of the run of `[^\s\p{L}\p{N}]` scalars from `index`.
    @inline(__always) func punctuationRun(from index: Int) -> Int {
        var i = index
        while i < count {
            let (bits, length) = scalar(at: i)
            guard ScalarClass.isPunctuation(bits) else { break }
            i += length
        }
        return i
    }

    /// `\r`, `\n` (and `/` when `slash`) bytes from `index`.
    @inline(__always) func newlineRun(from index: Int, slash: Bool) -> Int {
        var i = index
        while i < count {
            let b = bytes[i]
            guard b == 0x0A || b == 0x0D || (slash && b == 0x2F) else { break }
            i += 1
        }
        return i
    }

    /// The whitespace alternatives both patterns end with, for a whitespace scalar at `start`:
    /// `\s*[\r\n]` (cl100k; o200k's `\s*[\r\n]+` ends at the same place), then `\s+(?!\S)`, then one `\s`.
    /// `toEndFirst` adds cl100k's leading `\s++$`.
    @inline(__always) func whitespacePiece(from start: Int, toEndFirst: Bool) -> Int {
        var i = start
        var lastStart = start
        var afterLastNewline = -1
        while i < count {
            let b = bytes[i]
            if b < 0x80 {
                guard classes[Int(b)] & ScalarClass.whitespace != 0 else { break }
                if b == 0x0A || b == 0x0D { afterLastNewline = i + 1 }
                lastStart = i
                i += 1
            } else {
                let (bits, length) = scalar(at: i)
                guard bits & ScalarClass.whitespace != 0 else { break }
                lastStart = i
                i += length
            }
        }
        if i == count && toEndFirst { return i }
        // The greedy `\s*` gives back scalars until a `\r` or `\n` follows it: the match ends after the last one.
        if afterLastNewline > 0 { return afterLastNewline }
        // `\s+(?!\S)`: all of the run at the end of the text, or all of it but its last scalar before a non-space.
        if i == count { return i }
        if lastStart > start { return lastStart }
        return i
    }

    /// `'(?i:[sdmt]|ll|ve|re)` after the apostrophe at `index - 1`, or nil. `byte | 0x20` folds exactly an ASCII
    /// letter's two cases together, and with Unicode case folding `s` also matches U+017F (ſ).
    @inline(__always) func contractionEnd(afterApostrophe index: Int) -> Int? {
        guard index < count else { return nil }
        switch bytes[index] | 0x20 {
        case UInt8(ascii: "s"), UInt8(ascii: "d"), UInt8(ascii: "m"), UInt8(ascii: "t"): return index + 1
        default: break
        }
        guard index + 1 < count else { return nil }
        if bytes[index] == 0xC5 && bytes[index + 1] == 0xBF { return index + 2 }  // ſ
        switch (bytes[index] | 0x20, bytes[index + 1] | 0x20) {
        case (UInt8(ascii: "l"), UInt8(ascii: "l")), (UInt8(ascii: "v"), UInt8(ascii: "e")), (UInt8(ascii: "r"), UInt8(ascii: "e")):
            return index + 2
        default: return nil
        }
    }

    /// The end of the piece at `start` under cl100k_base's pattern:
    /// `'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s`
    @inline(__always) func nextCl100k(from start: Int) -> Int {
        let (bits, length) = scalar(at: start)
        let b0 = bytes[start]
        if b0 == UInt8(ascii: "'"), let end = contractionEnd(afterApostrophe: start + 1) { return end }
        if bits & ScalarClass.letter != 0 { return run(of: ScalarClass.letter, from: start + length) }
        // `?+` is possessive: once a prefix scalar is taken, a letter must follow or the alternative fails.
        if ScalarClass.isLetterPrefix(bits) && start + length < count && scalar(at: start + length).bits & ScalarClass.letter != 0 {
            return run(of: ScalarClass.letter, from: start + length)
        }
        if bits & ScalarClass.number != 0 { return numberEnd(from: start, length: length) }
        if b0 == 0x20 && start + 1 < count && ScalarClass.isPunctuation(scalar(at: start + 1).bits) {
            return newlineRun(from: punctuationRun(from: start + 1), slash: false)
        }
        if ScalarClass.isPunctuation(bits) { return newlineRun(from: punctuationRun(from: start), slash: false) }
        return whitespacePiece(from: start, toEndFirst: true)
    }

    /// o200k's `(?i:'s|'t|'re|'ve|'m|'ll|'d)?` at `index`: the same suffixes as cl100k's first alternative, optional.
    @inline(__always) func optionalContraction(at index: Int) -> Int {
        guard index < count, bytes[index] == UInt8(ascii: "'"), let end = contractionEnd(afterApostrophe: index + 1) else { return index }
        return end
    }

    /// `\p{N}{1,3}` for a number at `start` of `length` bytes.
    @inline(__always) func numberEnd(from start: Int, length: Int) -> Int {
        var end = start + length
        for _ in 0..<2 where end < count {
            let next = scalar(at: end)
            guard next.bits & ScalarClass.number != 0 else { break }
            end += next.length
        }
        return end
    }

    /// `[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+` from `index` (o200k's first alternative without
    /// its prefix), with the backtracking resolved: the upper run is given back until a lower scalar follows.
    @inline(__always) func casedWordLowerEnd(from index: Int) -> Int? {
        var i = index
        var afterLastLower = -1
        while i < count {
            let (bits, length) = scalar(at: i)
            guard bits & ScalarClass.upper != 0 else {
                if bits & ScalarClass.lower != 0 { return run(of: ScalarClass.lower, from: i + length) }
                break
            }
            i += length
            if bits & ScalarClass.lower != 0 { afterLastLower = i }
        }
        return afterLastLower > 0 ? afterLastLower : nil
    }

    /// `[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*` from `index` (o200k's second alternative).
    @inline(__always) func casedWordUpperEnd(from index: Int) -> Int? {
        let upperEnd = run(of: ScalarClass.upper, from: index)
        guard upperEnd > index else { return nil }
        return run(of: ScalarClass.lower, from: upperEnd)
    }

    /// The end of the piece at `start` under o200k_base's pattern (tiktoken_ext/openai_public.py):
    /// `[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?`,
    /// `[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?`,
    /// `\p{N}{1,3}`, ` ?[^\s\p{L}\p{N}]+[\r\n/]*`, `\s*[\r\n]+`, `\s+(?!\S)`, `\s+`.
    @inline(__always) func nextO200k(from start: Int) -> Int {
        let (bits, length) = scalar(at: start)
        // ASCII lower-case words (the common case) take the first alternative at once.
        let hasPrefix = ScalarClass.isLetterPrefix(bits) && start + length < count
        if hasPrefix, let end = casedWordLowerEnd(from: start + length) { return optionalContraction(at: end) }
        if bits & (ScalarClass.upper | ScalarClass.lower) != 0, let end = casedWordLowerEnd(from: start) { return optionalContraction(at: end) }
        if hasPrefix, let end = casedWordUpperEnd(from: start + length) { return optionalContraction(at: end) }
        if bits & ScalarClass.upper != 0, let end = casedWordUpperEnd(from: start) { return optionalContraction(at: end) }
        if bits & ScalarClass.number != 0 { return numberEnd(from: start, length: length) }
        if bytes[start] == 0x20 && start + 1 < count && ScalarClass.isPunctuation(scalar(at: start + 1).bits) {
            return newlineRun(from: punctuationRun(from: start + 1), slash: true)
        }
        if ScalarClass.isPunctuation(bits) { return newlineRun(from: punctuationRun(from: start), slash: true) }
        return whitespacePiece(from: start, toEndFirst: false)
    }
}
