import Foundation

/// RFC 4180 CSV: reading price lists, writing exports.
public enum CSV {
    /// One parsed record and the line of the file it starts on (1-based), for error messages.
    public struct Record: Hashable, Sendable {
        public var line: Int
        public var fields: [String]
        public init(line: Int, fields: [String]) {
            self.line = line
            self.fields = fields
        }
    }

    public struct SyntaxError: Error, Hashable, Sendable, CustomStringConvertible {
        public var line: Int
        public var message: String
        public var description: String { "line \(line): \(message)" }
    }

    /// Parses RFC 4180 text: fields separated by `,`, records by CRLF or LF, `"` quoting with `""` for a quote.
    /// Blank lines are skipped.
    public static func parse(_ text: String) throws(SyntaxError) -> [Record] {
        var records: [Record] = []
        var fields: [String] = []
        var field = ""
        var line = 1
        var recordLine = 1
        var inQuotes = false
        var fieldWasQuoted = false
        var iterator = Array(text.unicodeScalars)
        if iterator.first == "\u{FEFF}" { iterator.removeFirst() }  // a byte-order mark from spreadsheet exports
        var i = 0
        func endRecord() {
            fields.append(field)
            if !(fields.count == 1 && fields[0].isEmpty && !fieldWasQuoted) {
                records.append(Record(line: recordLine, fields: fields))
            }
            fields = []
            field = ""
            fieldWasQuoted = false
        }
        while i < iterator.count {
            let c = iterator[i]
            if inQuotes {
                if c == "\"" {
                    if i + 1 < iterator.count && iterator[i + 1] == "\"" {
                        field.unicodeScalars.append("\"")
                        i += 2
                        continue
                    }
                    inQuotes = false
                    i += 1
                    if i < iterator.count && !["," as Unicode.Scalar, "\n", "\r"].contains(iterator[i]) {
                        throw SyntaxError(line: line, message: "a closing quote must be followed by a comma or the end of the line")
                    }
                    continue
                }
                if c == "\n" { line += 1 }
                field.unicodeScalars.append(c)
                i += 1
                continue
            }
            switch c {
            case "\"":
                guard field.isEmpty else { throw SyntaxError(line: line, message: "a quote may only open a field") }
                inQuotes = true
                fieldWasQuoted = true
            case ",":
                fields.append(field)
                field = ""
                fieldWasQuoted = false
            case "\r":
                if i + 1 < iterator.count && iterator[i + 1] == "\n" { i += 1 }
                endRecord()
                line += 1
                recordLine = line
            case "\n":
                endRecord()
                line += 1
                recordLine = line
            default:
                field.unicodeScalars.append(c)
            }
            i += 1
        }
        if inQuotes { throw SyntaxError(line: recordLine, message: "a quoted field is not closed") }
        if !field.isEmpty || !fields.isEmpty || fieldWasQuoted { endRecord() }
        return records
    }

    /// One field for an export: quoted when it holds a comma, quote, CR or LF; and a text cell that a spreadsheet
    /// would run as a formula (starting with `=`, `+`, `-`, `@`, tab or CR) gets a leading apostrophe.
    /// Amounts are written with `number(_:)`, which is not neutralised, so a negative correction stays a number.
    public static func text(_ value: String) -> String {
        var value = value
        if let first = value.unicodeScalars.first, ["=", "+", "-", "@", "\t", "\r"].contains(first) {
            value = "'" + value
        }
        return quoted(value)
    }

    /// A numeric field, written as is (quoted only if it somehow needs it).
    public static func number(_ value: String) -> String { quoted(value) }

    static func quoted(_ value: String) -> String {
        // By byte, not by Character: it is what every export line pays for every field, and a CR LF pair (one Character)
        // or a comma followed by a combining mark (another) must be quoted too.
        let needsQuotes = value.utf8.contains { byte in
            byte == UInt8(ascii: ",") || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r")
        }
        guard needsQuotes else { return value }
        var quoted = "\""
        for scalar in value.unicodeScalars {
            if scalar == "\"" { quoted += "\"\"" } else { quoted.unicodeScalars.append(scalar) }
        }
        return quoted + "\""
    }

    /// A record, CRLF-terminated as RFC 4180 says.
    public static func row(_ fields: [String]) -> String { fields.joined(separator: ",") + "\r\n" }
}

/// A problem in an imported price list, located by line.
public struct PriceListError: Error, Hashable, Sendable, CustomStringConvertible {
    public var line: Int
    public var message: String
    public init(line: Int, message: String) {
        self.line = line
        self.message = message
    }
    public var description: String { "line \(line): \(message)" }
}

/// Price lists as CSV, the format of `tollgate prices import`:
///
///     model,backend,deployment,currency,effective_from,input_per_1m,cached_input_per_1m,output_per_1m,reasoning_per_1m
///     gpt-4o,,,USD,2026-10-01T00:00:00Z,2.50,1.25,10.00,
///
/// `model`, `currency`, `effective_from`, `input_per_1m` and `output_per_1m` are required columns; the others may be
/// left out of the header or left empty. `effective_from` is RFC 3339 or a date (`2026-10-15` is midnight UTC) and must
/// fall on a whole UTC hour. Amounts are plain decimals with a `.` (no exponent, no grouping).
public enum PriceListCSV {
    public static let columns = [
        "model", "backend", "deployment", "currency", "effective_from", "input_per_1m", "cached_input_per_1m", "output_per_1m",
        "reasoning_per_1m",
    ]
    static let required: Set<String> = ["model", "currency", "effective_from", "input_per_1m", "output_per_1m"]

    /// Parses the whole file; every problem is reported, each with its line, and nothing is returned unless all lines are valid.
    public static func parse(_ text: String) throws(PriceListErrors) -> [ModelPrice] {
        let records: [CSV.Record]
        do { records = try CSV.parse(text) } catch { throw PriceListErrors([PriceListError(line: error.line, message: error.message)]) }
        guard let header = records.first else {
            throw PriceListErrors([PriceListError(line: 1, message: "the file is empty; expected a header row")])
        }
        var index: [String: Int] = [:]
        var errors: [PriceListError] = []
        for (i, name) in header.fields.enumerated() {
            let name = name.trimmingCharacters(in: .whitespaces).lowercased()
            if !columns.contains(name) {
                errors.append(PriceListError(line: header.line, message: "unknown column '\(name)'; expected: \(columns.joined(separator: ", "))"))
            } else if index[name] != nil {
                errors.append(PriceListError(line: header.line, message: "column '\(name)' appears twice"))
            } else {
                index[name] = i
            }
        }
        for name in columns where required.contains(name) && index[name] == nil {
            errors.append(PriceListError(line: header.line, message: "missing required column '\(name)'"))
        }
        guard errors.isEmpty else { throw PriceListErrors(errors) }
        var prices: [ModelPrice] = []
        var seen: [String: Int] = [:]
        for record in records.dropFirst() {
            func value(_ column: String) -> String {
                guard let i = index[column], i < record.fields.count else { return "" }
                return record.fields[i].trimmingCharacters(in: .whitespaces)
            }
            func fail(_ message: String) { errors.append(PriceListError(line: record.line, message: message)) }
            if record.fields.count != header.fields.count {
                fail("expected \(header.fields.count) fields, found \(record.fields.count)")
                continue
            }
            func amount(_ column: String, required: Bool) -> Decimal?? {
                let text = value(column)
                if text.isEmpty {
                    if required { fail("\(column) is required") }
                    return required ? nil : .some(nil)
                }
                guard let decimal = Decimal(exactly: text) else {
                    fail("\(column) '\(text)' is not a plain decimal number such as 2.50")
                    return nil
                }
                return .some(decimal)
            }
            let fromText = value("effective_from")
            let from: Date?
            if fromText.range(of: #"^\d{4}-\d{2}-\d{2}$"#, options: .regularExpression) != nil {
                from = Date(iso8601: fromText + "T00:00:00Z")
            } else {
                from = Date(iso8601: fromText)
            }
            if from == nil { fail("effective_from '\(fromText)' is not an RFC 3339 timestamp or a yyyy-MM-dd date") }
            let input = amount("input_per_1m", required: true)
            let cached = amount("cached_input_per_1m", required: false)
            let output = amount("output_per_1m", required: true)
            let reasoning = amount("reasoning_per_1m", required: false)
            guard let from, let input = input ?? nil, let cached, let output = output ?? nil, let reasoning else { continue }
            let price = ModelPrice(
                model: value("model"), backend: value("backend"), deployment: value("deployment"), currency: value("currency"),
                effectiveFrom: from, inputPerMillion: input, cachedInputPerMillion: cached, outputPerMillion: output,
                reasoningPerMillion: reasoning)
            let problems = price.problems
            if !problems.isEmpty {
                for problem in problems { fail(problem) }
                continue
            }
            let key = "\(price.model)\u{0}\(price.backend)\u{0}\(price.deployment)\u{0}\(from.timeIntervalSince1970)"
            if let earlier = seen[key] {
                fail("the same model, backend, deployment and effective_from is already on line \(earlier)")
                continue
            }
            seen[key] = record.line
            prices.append(price)
        }
        guard errors.isEmpty else { throw PriceListErrors(errors) }
        return prices
    }

    /// The inverse of `parse`, for `tollgate prices list --format csv`.
    public static func render(_ prices: [ModelPrice]) -> String {
        var text = CSV.row(columns)
        for p in prices {
            text += CSV.row([
                CSV.text(p.model), CSV.text(p.backend), CSV.text(p.deployment), CSV.text(p.currency), p.effectiveFrom.iso8601,
                p.inputPerMillion.plain, p.cachedInputPerMillion?.plain ?? "", p.outputPerMillion.plain, p.reasoningPerMillion?.plain ?? "",
            ])
        }
        return text
    }
}

/// Every problem found in a price list.
public struct PriceListErrors: Error, Hashable, Sendable, CustomStringConvertible {
    public var errors: [PriceListError]
    public init(_ errors: [PriceListError]) { self.errors = errors }
    public var description: String { errors.map(\.description).joined(separator: "\n") }
}

extension Decimal {
    /// The shortest exact plain rendering ("2.5", "10", "0.000001"): `description` of a `Decimal` never uses an exponent.
    public var plain: String { description }
}
