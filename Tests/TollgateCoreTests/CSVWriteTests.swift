import Testing
import TollgateCore

/// Writing CSV fields (RFC 4180): quoted when they hold a comma, quote, CR or LF, quotes doubled; a text cell that a
/// spreadsheet would run as a formula gets a leading apostrophe.
struct CSVWriteTests {
    @Test(arguments: [
        ("search", "search"),
        ("", ""),
        ("a,b", "\"a,b\""),
        ("say \"hi\"", "\"say \"\"hi\"\"\""),
        ("line\r\nbreak", "\"line\r\nbreak\""),
        ("cr\ronly", "\"cr\ronly\""),
        ("lf\nonly", "\"lf\nonly\""),
        ("a,\u{301}b", "\"a,\u{301}b\""),
        ("\"\u{301}", "\"\"\"\u{301}\""),
        ("Zürich 東京", "Zürich 東京"),
        ("=HYPERLINK(\"http://evil.example\",\"x\")", "\"'=HYPERLINK(\"\"http://evil.example\"\",\"\"x\"\")\""),
        ("-CC-300", "'-CC-300"),
    ])
    func textFields(_ value: String, _ written: String) {
        #expect(CSV.text(value).unicodeScalars.elementsEqual(written.unicodeScalars))
    }

    @Test func numbersAndJSONCellsAreQuotedOnlyWhenNeeded() {
        #expect(CSV.number("-1.50") == "-1.50")
        #expect(CSV.number(#"{"team":"a,b"}"#) == #""{""team"":""a,b""}""#)
        #expect(CSV.row(["a", "b"]) == "a,b\r\n")
    }
}
