import Foundation
import Testing

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
