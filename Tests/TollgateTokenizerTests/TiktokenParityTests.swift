import Foundation
import Testing
import TollgateTokenizer

/// The Swift tokenizer against tiktoken 0.14 itself: `Fixtures/make_corpus.py` wrote tiktoken's ids for 10,000+
/// varied strings under both encodings (many scripts, emoji with ZWJ and skin tones, combining marks, code,
/// whitespace runs, long numbers, very long words, contractions, punctuation runs, JSON). Every id must match.
struct TiktokenParityTests {
    struct Case: Decodable {
        let text: String
        let cl100k_base: [Int]
        let o200k_base: [Int]
    }
    struct Corpus: Decodable {
        let tiktoken: String
        let cases: [Case]
    }

    /// The committed fixture, gunzipped by the system's gzip (Foundation on Linux has no inflate).
    static let corpus: Corpus = {
        guard let url = Bundle.module.url(forResource: "parity-corpus.json", withExtension: "gz") else {
            fatalError("parity-corpus.json.gz is not in the test bundle")
        }
        let gunzip = Process()
        gunzip.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        gunzip.arguments = ["gzip", "-dc", url.path]
        let pipe = Pipe()
        gunzip.standardOutput = pipe
        do {
            try gunzip.run()
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            gunzip.waitUntilExit()
            return try JSONDecoder().decode(Corpus.self, from: data)
        } catch {
            fatalError("cannot read the parity corpus: \(error)")
        }
    }()

    @Test(arguments: TokenEncoding.allCases)
    func everyIdMatchesTiktoken(_ encoding: TokenEncoding) throws {
        let tokenizer = try Tokenizer.forEncoding(encoding)
        let cases = Self.corpus.cases
        #expect(cases.count >= 10_000)
        var mismatches: [String] = []
        var different = 0
        var miscounted = 0
        var tokens = 0
        for item in cases {
            let expected = encoding == .o200kBase ? item.o200k_base : item.cl100k_base
            let actual = tokenizer.encode(item.text)
            tokens += expected.count
            if actual != expected {
                different += 1
                if mismatches.count < 10 {
                    mismatches.append("\(item.text.debugDescription.prefix(200)): tiktoken \(expected.prefix(40)) swift \(actual.prefix(40))")
                }
            }
            if tokenizer.count(item.text) != expected.count { miscounted += 1 }
        }
        print("\(encoding.rawValue): compared \(cases.count) strings (\(tokens) tokens) with tiktoken \(Self.corpus.tiktoken): \(different) differ")
        #expect(different == 0, "\(different) of \(cases.count) strings differ, e.g.\n\(mismatches.joined(separator: "\n"))")
        #expect(miscounted == 0)
    }

    @Test(arguments: TokenEncoding.allCases)
    func decodingTheIdsGivesBackTheText(_ encoding: TokenEncoding) throws {
        let tokenizer = try Tokenizer.forEncoding(encoding)
        for item in Self.corpus.cases.prefix(2_000) {
            #expect(tokenizer.decode(tokenizer.encode(item.text)) == Array(item.text.utf8))
        }
    }
}
