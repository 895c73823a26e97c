import Foundation

/// Splits a SQL script into statements. postgres-nio speaks only the extended query protocol, which takes one
/// statement at a time, so migration files are split on `;` outside quotes, dollar quotes and comments.
public enum SQLScript {
    public static func statements(in script: String) -> [String] {
        var statements: [String] = []
        var current = ""
        var meaningful = false  // the current statement has something besides whitespace and comments
        let chars = Array(script)
        var i = 0
        func flush() {
            let trimmed = current.trimmingCharacters(in: .whitespacesAndNewlines)
            if meaningful && !trimmed.isEmpty { statements.append(trimmed) }
            current = ""
            meaningful = false
        }
        while i < chars.count {
            let c = chars[i]
            let next: Character? = i + 1 < chars.count ? chars[i + 1] : nil
            if c == "-" && next == "-" {  // line comment
                while i < chars.count && chars[i] != "\n" { i += 1 }
                continue
            }
            if c == "/" && next == "*" {  // block comment (PostgreSQL nests them)
                var depth = 0
                repeat {
                    if chars[i] == "/" && i + 1 < chars.count && chars[i + 1] == "*" { depth += 1; i += 2; continue }
                    if chars[i] == "*" && i + 1 < chars.count && chars[i + 1] == "/" { depth -= 1; i += 2; continue }
                    i += 1
                } while depth > 0 && i < chars.count
                current.append(" ")
                continue
            }
            if c == "'" || c == "\"" {  // quoted literal or identifier; a doubled quote stays inside
                // In an escape string (E'…') a backslash escapes the next character, so E'it\'s' is one literal.
                let escapeString =
                    c == "'" && i > 0 && (chars[i - 1] == "E" || chars[i - 1] == "e") && !(i > 1 && isIdentifierCharacter(chars[i - 2]))
                current.append(c)
                meaningful = true
                i += 1
                while i < chars.count {
                    if escapeString && chars[i] == "\\" && i + 1 < chars.count {
                        current.append(chars[i])
                        current.append(chars[i + 1])
                        i += 2
                        continue
                    }
                    current.append(chars[i])
                    if chars[i] == c {
                        if i + 1 < chars.count && chars[i + 1] == c { current.append(c); i += 2; continue }
                        i += 1
                        break
                    }
                    i += 1
                }
                continue
            }
            // $$ … $$ or $tag$ … $tag$; a `$` inside an identifier (`a$b$c`) is not a dollar quote.
            if c == "$", !(i > 0 && isIdentifierCharacter(chars[i - 1])), let tag = dollarTag(chars, at: i) {
                let tagChars = Array(tag)
                current.append(contentsOf: tag)
                meaningful = true
                i += tagChars.count
                while i < chars.count {
                    if chars[i] == "$" && Array(chars[i..<min(chars.count, i + tagChars.count)]) == tagChars {
                        current.append(contentsOf: tag)
                        i += tagChars.count
                        break
                    }
                    current.append(chars[i])
                    i += 1
                }
                continue
            }
            if c == ";" {
                flush()
                i += 1
                continue
            }
            if !c.isWhitespace { meaningful = true }
            current.append(c)
            i += 1
        }
        flush()
        return statements
    }

    private static func isIdentifierCharacter(_ c: Character) -> Bool { c == "_" || c == "$" || c.isLetter || c.isNumber }

    private static func dollarTag(_ chars: [Character], at start: Int) -> String? {
        var j = start + 1
        while j < chars.count, chars[j] == "_" || chars[j].isLetter || (chars[j].isNumber && j > start + 1) { j += 1 }
        guard j < chars.count, chars[j] == "$" else { return nil }
        return String(chars[start...j])
    }
}
