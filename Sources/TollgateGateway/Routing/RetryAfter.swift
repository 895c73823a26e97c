import Foundation
import NIOHTTP1

/// How long an upstream that answered 429 asked to be left alone, from the headers OpenAI and Azure OpenAI send:
/// `retry-after-ms`, else `Retry-After` (seconds, or an HTTP date), else the longer of `x-ratelimit-reset-requests`
/// and `x-ratelimit-reset-tokens` (Go durations such as `1s`, `6m0s`, `20ms`). Nil when none is there or readable.
enum RetryAfter {
    static func wait(in headers: HTTPHeaders, now: Date) -> Duration? {
        if let ms = headers.first(name: "retry-after-ms").flatMap({ Double($0.trimmingCharacters(in: .whitespaces)) }), ms >= 0 {
            return .milliseconds(Int64(ms.rounded(.up)))
        }
        if let value = headers.first(name: "retry-after")?.trimmingCharacters(in: .whitespaces) {
            if let seconds = Int(value), seconds >= 0 { return .seconds(seconds) }
            if let date = httpDate(value) { return .milliseconds(max(0, Int64((date.timeIntervalSince(now) * 1000).rounded(.up)))) }
        }
        let resets = ["x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"].compactMap { headers.first(name: $0).flatMap(goDuration) }
        return resets.max()
    }

    /// `1h2m3.5s`, `6m0s`, `20ms`, `0.5s`: Go's `time.Duration` text, as OpenAI's reset headers use it.
    static func goDuration(_ text: String) -> Duration? {
        var rest = Substring(text.trimmingCharacters(in: .whitespaces))
        guard !rest.isEmpty else { return nil }
        var total = 0.0
        let units: [(String, Double)] = [("ms", 0.001), ("us", 0.000_001), ("µs", 0.000_001), ("ns", 0.000_000_001), ("h", 3600), ("m", 60), ("s", 1)]
        while !rest.isEmpty {
            let number = rest.prefix { $0.isNumber || $0 == "." }
            guard !number.isEmpty, let value = Double(number) else { return nil }
            rest = rest.dropFirst(number.count)
            guard let (unit, scale) = units.first(where: { rest.hasPrefix($0.0) }) else { return nil }
            rest = rest.dropFirst(unit.count)
            total += value * scale
        }
        return .milliseconds(Int64((total * 1000).rounded(.up)))
    }

    private static func httpDate(_ text: String) -> Date? {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        return formatter.date(from: text)
    }
}
