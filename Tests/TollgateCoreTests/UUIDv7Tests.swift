import Foundation
import Testing
import TollgateCore

/// Returns the same 64-bit word forever, so the random part of a UUID is known.
private struct ConstantGenerator: RandomNumberGenerator {
    var word: UInt64
    mutating func next() -> UInt64 { word }
}

struct UUIDv7Tests {
    // 1_700_000_000.5 s = 1_700_000_000_500 ms = 0x018BCFE569F4.
    private let instant = Date(timeIntervalSince1970: 1_700_000_000.5)

    @Test(arguments: [
        (UInt64.min, "018BCFE5-69F4-7000-8000-000000000000"),
        (UInt64.max, "018BCFE5-69F4-7FFF-BFFF-FFFFFFFFFFFF"),
    ])
    func layoutIsTimestampThenVersionThenVariant(word: UInt64, expected: String) {
        var generator = ConstantGenerator(word: word)
        #expect(UUIDv7.make(at: instant, using: &generator).uuidString == expected)
    }

    @Test func versionAndVariantBitsAreSetWhateverTheRandomBits() {
        for _ in 0..<1_000 {
            let bytes = UUIDv7.make(at: instant).uuid
            #expect(bytes.6 >> 4 == 0x7)
            #expect(bytes.8 & 0xC0 == 0x80)
        }
    }

    @Test func laterMillisecondsSortLater() {
        var previous = UUIDv7.make(at: Date(timeIntervalSince1970: 1_790_812_800))
        for step in 1...500 {
            let next = UUIDv7.make(at: Date(timeIntervalSince1970: 1_790_812_800 + Double(step) / 1000))
            // Upper-case hex compares like the bytes, which is how PostgreSQL orders uuid.
            #expect(previous.uuidString < next.uuidString)
            previous = next
        }
    }

    @Test func beforeTheEpochClampsToZero() {
        var generator = ConstantGenerator(word: 0)
        #expect(UUIDv7.make(at: Date(timeIntervalSince1970: -5), using: &generator).uuidString == "00000000-0000-7000-8000-000000000000")
    }

    @Test func secretsNeverPrint() {
        let secret = Secret("sk-live-123")
        #expect("\(secret)" == "<redacted>")
        #expect(String(reflecting: secret) == "<redacted>")
        #expect(!String(describing: [secret]).contains("sk-live"))
        #expect(secret.value == "sk-live-123")
    }

    @Test(arguments: [
        ("team-search-prod", true), ("a", true), ("a.b_c-9", true), ("Team", false), ("-a", false), ("", false),
        ("a b", false), (String(repeating: "a", count: 64), true), (String(repeating: "a", count: 65), false),
    ])
    func subscriptionSlugs(text: String, valid: Bool) {
        #expect(SubscriptionID.isValid(text) == valid)
    }
}
