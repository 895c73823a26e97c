import Foundation
import Testing
import TollgateCore

@testable import TollgateReports

/// The FOCUS `Tags` object is written by hand (JSONSerialization cost most of the export's time); it must stay byte for
/// byte what `JSONSerialization` with sorted keys and unescaped slashes writes.
struct FocusTagsTests {
    @Test(arguments: [
        "search", "", "=HYPERLINK(\"http://evil.example\",\"x\")", "a/b\\c", "tab\tnew\nline\rcr", "\u{0}\u{1}\u{8}\u{b}\u{c}\u{f}\u{10}\u{1f}\u{7f}",
        "Zürich – 東京 🚀", "\u{2028}\u{2029}", "-CC-300",
    ])
    func tagsMatchJSONSerialization(_ value: String) throws {
        let expected = try JSONSerialization.data(
            withJSONObject: ["team": value, "cost_center": "CC-\(value)", "product": value, "deployment": "\(value)/eu", "pricing": "priced"],
            options: [.sortedKeys, .withoutEscapingSlashes])
        let written = FocusExport.tags(costCenter: "CC-\(value)", deployment: "\(value)/eu", pricing: "priced", product: value, team: value)
        #expect(written == String(decoding: expected, as: UTF8.self))
    }
}

/// FOCUS quantities are written by integer arithmetic; they must print exactly what the `Decimal` path printed.
struct FocusQuantityTests {
    @Test(arguments: [0, 1, 999_999, 1_000_000, 1_000_001, 123_456_789, -1, -4_000, -2_500_000, 9_000_000_000_000] as [Int64])
    func quantitiesMatchDecimal(_ tokens: Int64) {
        #expect(FocusExport.millions(tokens) == (Decimal(tokens) / 1_000_000).fixedPoint(scale: 6))
        #expect("\(tokens).0" == Decimal(tokens).fixedPoint(scale: 1))
    }
}
