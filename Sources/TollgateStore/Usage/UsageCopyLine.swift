import Foundation
import NIOCore
import TollgateCore

/// The ledger's COPY text format: one line per event, in `usage_events`' own columns. The gateway's durable spool stores
/// exactly these lines, and `HourlyRollup` reads them back.
extension UsageStore {
    /// The columns of a COPY line, in order: every column of `usage_events` but `recorded_at`.
    static let columns = [
        "request_id", "response_id", "started_at", "ended_at", "subscription_id", "product", "team", "cost_center",
        "backend", "deployment", "model", "route", "http_status", "latency_ms", "streamed", "prompt_tokens",
        "completion_tokens", "total_tokens", "cached_tokens", "reasoning_tokens", "usage_source", "source",
    ]

    /// One event as a COPY text line, newline included. Times are UTC with microseconds (`2026-11-01 00:00:00.123456+00`).
    public static func copyLine(for event: UsageEvent) -> String {
        var buffer = ByteBuffer()
        appendCopyLine(for: event, to: &buffer)
        return String(buffer: buffer)
    }

    /// Appends one event as a COPY text line to `buffer`. The writer encodes every event it lands, so the line is
    /// written straight into the buffer's memory, sized beforehand for the worst case (`worstCaseLength(of:)`). Each
    /// field checks that its own worst case fits what is left before writing, so a sizing mistake stops the process
    /// instead of writing past the buffer.
    public static func appendCopyLine(for event: UsageEvent, to buffer: inout ByteBuffer) {
        let worstCase = worstCaseLength(of: event)
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: worstCase) { out in
            var at = 0
            func reserve(_ count: Int) {
                precondition(at + count <= out.count, "COPY line longer than its computed worst case")
            }
            func byte(_ value: UInt8) {
                out[at] = value
                at += 1
            }
            func tab() { byte(0x09) }
            func field(_ value: String?) {
                reserve(2 * (value?.utf8.count ?? 1) + 1)  // every byte escaped, or \N; then a tab or the newline
                guard let value else {
                    byte(0x5C)  // \N: NULL
                    byte(0x4E)
                    return
                }
                var copy = value
                copy.withUTF8 { utf8 in
                    for b in utf8 {
                        switch b {
                        case 0x5C: byte(0x5C); byte(0x5C)
                        case 0x09: byte(0x5C); byte(0x74)
                        case 0x0A: byte(0x5C); byte(0x6E)
                        case 0x0D: byte(0x5C); byte(0x72)
                        default: byte(b)
                        }
                    }
                }
            }
            func number(_ value: Int) {
                reserve(Self.longestNumber + 1)
                if value < 0 { byte(0x2D) }
                var magnitude = value.magnitude
                var digits = 1
                var probe = magnitude
                while probe >= 10 {
                    probe /= 10
                    digits += 1
                }
                var position = at + digits - 1
                repeat {
                    out[position] = UInt8(48 + magnitude % 10)
                    magnitude /= 10
                    position -= 1
                } while magnitude > 0
                at += digits
            }
            func fixed(_ value: Int, width: Int) {
                var rest = value
                var position = at + width - 1
                for _ in 0..<width {
                    out[position] = UInt8(48 + rest % 10)
                    rest /= 10
                    position -= 1
                }
                at += width
            }
            func time(_ date: Date) {
                reserve(Self.timeLength + 1)
                let t = CivilTime(microseconds: CivilTime.microseconds(date))
                fixed(t.year, width: 4)
                byte(0x2D)
                fixed(t.month, width: 2)
                byte(0x2D)
                fixed(t.day, width: 2)
                byte(0x20)
                fixed(t.hour, width: 2)
                byte(0x3A)
                fixed(t.minute, width: 2)
                byte(0x3A)
                fixed(t.second, width: 2)
                byte(0x2E)
                fixed(t.microsecond, width: 6)
                byte(0x2B)  // +00
                byte(0x30)
                byte(0x30)
            }
            func uuid(_ id: UUID) {
                reserve(36 + 1)
                let hex = hexDigits
                withUnsafeBytes(of: id.uuid) { bytes in
                    for (i, b) in bytes.enumerated() {
                        if i == 4 || i == 6 || i == 8 || i == 10 { byte(0x2D) }
                        byte(hex[Int(b >> 4)])
                        byte(hex[Int(b & 0x0F)])
                    }
                }
            }
            uuid(event.requestID)
            tab()
            field(event.responseID)
            tab()
            time(event.startedAt)
            tab()
            time(event.endedAt)
            tab()
            field(event.subscription.rawValue)
            tab()
            field(event.product)
            tab()
            field(event.team)
            tab()
            field(event.costCenter)
            tab()
            field(event.backend)
            tab()
            field(event.deployment)
            tab()
            field(event.model)
            tab()
            field(event.route)
            tab()
            number(event.httpStatus)
            tab()
            number(event.latencyMilliseconds)
            tab()
            reserve(2)
            byte(event.streamed ? 0x74 : 0x66)  // t / f
            tab()
            number(event.usage.promptTokens)
            tab()
            number(event.usage.completionTokens)
            tab()
            number(event.usage.totalTokens)
            tab()
            number(event.usage.cachedPromptTokens)
            tab()
            number(event.usage.reasoningTokens)
            tab()
            field(event.usageSource.rawValue)
            tab()
            field(event.source)
            byte(0x0A)
            return at
        }
    }

    private static let hexDigits: [UInt8] = Array("0123456789ABCDEF".utf8)

    /// `-9223372036854775808`: the longest decimal `Int`.
    static let longestNumber = 20
    /// `2026-11-01 00:00:00.123456+00`.
    static let timeLength = 29

    /// The most bytes `appendCopyLine` can write for `event`: every text byte escaped (two bytes), a NULL as `\N`,
    /// the uuid, two times, seven integers at their longest, the boolean, and 21 tabs plus the newline.
    static func worstCaseLength(of event: UsageEvent) -> Int {
        let texts = [
            event.responseID, event.subscription.rawValue, event.product, event.team, event.costCenter, event.backend,
            event.deployment, event.model, event.route, event.usageSource.rawValue, event.source,
        ]
        return texts.reduce(0) { $0 + ($1.map { 2 * $0.utf8.count } ?? 2) } + 36 + 2 * timeLength + 7 * longestNumber + 1 + 22
    }
}
