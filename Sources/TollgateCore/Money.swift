import Foundation

/// An exact amount of money in one currency. `Double` never holds an amount.
public struct Money: Hashable, Sendable, Codable, CustomStringConvertible {
    public var amount: Decimal
    /// ISO 4217 code, upper case ("USD", "EUR").
    public var currency: String

    public init(_ amount: Decimal, _ currency: String) {
        self.amount = amount
        self.currency = currency
    }

    public static func zero(_ currency: String) -> Money { Money(0, currency) }

    public var description: String { "\(amount.fixedPoint(scale: 10)) \(currency)" }

    /// Adds two amounts of the same currency.
    /// - Throws: `MoneyError.currencyMismatch` when the currencies differ.
    public func adding(_ other: Money) throws(MoneyError) -> Money {
        guard other.currency == currency else { throw .currencyMismatch(expected: currency, found: other.currency) }
        return Money(amount + other.amount, currency)
    }

    /// Rounds to `scale` decimal places with banker's rounding (half to even), the one rounding mode Tollgate uses.
    public func rounded(scale: Int) -> Money { Money(amount.rounded(scale: scale), currency) }
}

public enum MoneyError: Error, Hashable, Sendable {
    case currencyMismatch(expected: String, found: String)
}

extension Decimal {
    /// Rounds half to even at `scale` decimal places.
    public func rounded(scale: Int, mode: NSDecimalNumber.RoundingMode = .bankers) -> Decimal {
        var source = self
        var result = Decimal()
        NSDecimalRound(&result, &source, scale, mode)
        return result
    }

    /// A plain fixed-point rendering with exactly `scale` digits after the point, no grouping, no exponent:
    /// what CSV and JSON exports print. The value is rounded half to even first.
    public func fixedPoint(scale: Int) -> String {
        let value = rounded(scale: scale)
        let negative = value < 0
        let magnitude = negative ? -value : value
        // `description` of a Decimal is exact and never uses an exponent.
        var text = magnitude.description
        var integerPart = text
        var fraction = ""
        if let dot = text.firstIndex(of: ".") {
            integerPart = String(text[..<dot])
            fraction = String(text[text.index(after: dot)...])
        }
        if fraction.count < scale { fraction += String(repeating: "0", count: scale - fraction.count) }
        text = scale > 0 ? "\(integerPart).\(fraction.prefix(scale))" : integerPart
        let isZero = magnitude == 0
        return negative && !isZero ? "-\(text)" : text
    }

    /// Parses a plain decimal literal ("12.50", "-3", "0.000001") exactly, without passing through `Double`.
    public init?(exactly text: String) {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty,
            trimmed.range(of: #"^-?[0-9]+(\.[0-9]+)?$"#, options: .regularExpression) != nil,
            let value = Decimal(string: trimmed, locale: Locale(identifier: "en_US_POSIX"))
        else { return nil }
        self = value
    }
}
