import Foundation

/// How long a billing or budget period lasts. Periods are aligned to UTC calendar boundaries.
public enum PeriodKind: String, Hashable, Sendable, Codable, CaseIterable {
    case daily, weekly, monthly, yearly
}

/// A half-open interval of time, `start <= t < end`, so adjacent periods never share an instant.
public struct BillingPeriod: Hashable, Sendable, Codable, CustomStringConvertible {
    /// Inclusive.
    public let start: Date
    /// Exclusive: the next period's start.
    public let end: Date

    public init(start: Date, end: Date) {
        precondition(start < end, "a period must not be empty")
        self.start = start
        self.end = end
    }

    public func contains(_ instant: Date) -> Bool { start <= instant && instant < end }

    public var description: String { "[\(start.iso8601), \(end.iso8601))" }

    /// The period of `kind` that contains `instant`, in `timeZone` (UTC unless a budget names another).
    /// Weeks start on Monday (ISO 8601).
    public static func containing(_ instant: Date, kind: PeriodKind, timeZone: TimeZone = .utc) -> BillingPeriod {
        var calendar = Calendar(identifier: .iso8601)
        calendar.timeZone = timeZone
        let component: Calendar.Component
        switch kind {
        case .daily: component = .day
        case .weekly: component = .weekOfYear
        case .monthly: component = .month
        case .yearly: component = .year
        }
        guard let interval = calendar.dateInterval(of: component, for: instant) else {
            preconditionFailure("the ISO 8601 calendar has an interval for every instant")
        }
        return BillingPeriod(start: interval.start, end: interval.end)
    }

    /// The calendar month `yyyy-MM` in UTC, as used by `--period 2026-10`.
    public static func month(_ text: String) -> BillingPeriod? {
        let parts = text.split(separator: "-")
        guard parts.count == 2, parts[0].count == 4, parts[1].count == 2,
            let year = Int(parts[0]), let month = Int(parts[1]), (1...12).contains(month)
        else { return nil }
        var components = DateComponents()
        components.year = year
        components.month = month
        components.day = 1
        var calendar = Calendar(identifier: .iso8601)
        calendar.timeZone = .utc
        guard let start = calendar.date(from: components) else { return nil }
        return containing(start, kind: .monthly)
    }

    /// The period that follows this one, of the same kind.
    public func next(kind: PeriodKind, timeZone: TimeZone = .utc) -> BillingPeriod {
        BillingPeriod.containing(end, kind: kind, timeZone: timeZone)
    }

    /// `yyyy-MM` of the start, in UTC.
    public var monthLabel: String {
        let c = Calendar.utc.dateComponents([.year, .month], from: start)
        return String(format: "%04d-%02d", c.year ?? 0, c.month ?? 0)
    }
}

extension TimeZone {
    public static let utc = TimeZone(identifier: "UTC")!
}

extension Calendar {
    public static let utc: Calendar = {
        var calendar = Calendar(identifier: .iso8601)
        calendar.timeZone = .utc
        return calendar
    }()
}

extension Date {
    /// RFC 3339 with fractional seconds, UTC: `2026-10-01T00:00:00.000Z`.
    public var iso8601: String {
        self.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: .utc))
    }

    /// Parses RFC 3339 timestamps with or without fractional seconds.
    public init?(iso8601 text: String) {
        if let date = try? Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: .utc).parse(text) {
            self = date
        } else if let date = try? Date.ISO8601FormatStyle(timeZone: .utc).parse(text) {
            self = date
        } else {
            return nil
        }
    }
}
