import Foundation
import NIOCore
import Testing
import TollgateCore

@testable import TollgateStore

/// `appendCopyLine` writes into memory sized by `worstCaseLength(of:)`, with a checked bound per field: the event that
/// needs the most bytes (every text byte escaped, every number at its longest) fits, to the byte.
struct UsageCopyLineBoundTests {
    /// Every byte of every text escapes to two; every integer is `Int.min` (20 characters) but the latency, which the
    /// event derives from its times (0 here: ended before it started).
    static let worst = UsageEvent(
        requestID: UUID(), responseID: "\\\t\n\r", startedAt: Date(timeIntervalSince1970: 253_402_300_799), endedAt: Date(timeIntervalSince1970: 0),
        subscription: "\t\t", product: "\n", team: "\\\\\\", costCenter: "\r\r", backend: "\t", deployment: "\n\n\n\n", model: "\\",
        route: "\r", httpStatus: Int.min, streamed: true,
        usage: TokenUsage(promptTokens: Int.min, completionTokens: Int.min, totalTokens: Int.min, cachedPromptTokens: Int.min, reasoningTokens: Int.min),
        usageSource: .estimated, source: "\t\\")

    @Test func theLongestLineFitsItsWorstCase() {
        // Texts: 4 + 2 + 1 + 3 + 2 + 1 + 4 + 1 + 1 + "estimated" 9 + 2 = 30 bytes, counted at two per byte; uuid 36;
        // two times 58; seven numbers at 20; the boolean 1; 21 tabs and the newline.
        #expect(UsageStore.worstCaseLength(of: Self.worst) == 2 * 30 + 36 + 58 + 140 + 1 + 22)
        let line = UsageStore.copyLine(for: Self.worst)
        // Everything at its longest but latency_ms ("0", 19 short of 20) and usage_source (9 plain bytes, 9 short).
        #expect(line.utf8.count == UsageStore.worstCaseLength(of: Self.worst) - 19 - 9)
        #expect(line.hasSuffix("\t-9223372036854775808\t-9223372036854775808\testimated\t\\t\\\\\n"))
    }

    @Test func linesAppendedOneAfterAnotherStayWhole() {
        var buffer = ByteBuffer()
        for _ in 0..<100 { UsageStore.appendCopyLine(for: Self.worst, to: &buffer) }
        let text = String(buffer: buffer)
        #expect(text.split(separator: "\n").count == 100)
        #expect(Set(text.split(separator: "\n")).count == 1)
    }
}
