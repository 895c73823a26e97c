import Crypto
import Foundation
import Testing

@testable import TollgateTokenizer

/// The shipped vocabularies are the files whose provenance Resources/README.md records, and they load completely.
struct TokenizerResourceTests {
    @Test(arguments: [
        (TokenEncoding.cl100kBase, "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7", 100_256),
        (TokenEncoding.o200kBase, "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d", 199_998),
    ])
    func theBundledFileHasTheRecordedHashAndLoadsEveryToken(_ encoding: TokenEncoding, sha256: String, tokens: Int) throws {
        let url = try #require(VocabularyFile.url(of: encoding))
        let digest = SHA256.hash(data: try Data(contentsOf: url))
        #expect(digest.map { String(format: "%02x", $0) }.joined() == sha256)
        #expect(try Tokenizer.forEncoding(encoding).vocabularySize == tokens)
    }

    @Test func theSharedTokenizerIsLoadedOnceForConcurrentCallers() async throws {
        let identities = await withTaskGroup(of: ObjectIdentifier?.self) { group in
            for _ in 0..<8 { group.addTask { (try? Tokenizer.forEncoding(.cl100kBase)).map(ObjectIdentifier.init) } }
            return await group.reduce(into: Set<ObjectIdentifier?>()) { $0.insert($1) }
        }
        #expect(identities.count == 1)
        #expect(!identities.contains(nil))
    }

    /// What the request path asks never waits: nothing until the vocabulary has loaded, then the loaded tokenizer.
    @Test func aSlotAnswersIfLoadedWithoutLoading() throws {
        let slot = SharedTokenizers.Slot(.cl100kBase)
        #expect(slot.ifLoaded() == nil)
        #expect(slot.ifLoaded() == nil)  // asking did not load it
        let loaded = try slot.get()
        #expect(slot.ifLoaded().map(ObjectIdentifier.init) == ObjectIdentifier(loaded))
        #expect(try ObjectIdentifier(slot.get()) == ObjectIdentifier(loaded))
    }

    @Test func aMalformedVocabularyLineIsReportedWithItsLineNumber() {
        let data = Data("IQ== 0\nIg== 1\n!!!! 2\n".utf8)
        #expect(throws: TokenizerError.vocabularyMalformed(.cl100kBase, line: 3)) {
            try VocabularyFile.parse(data, encoding: .cl100kBase)
        }
        #expect(throws: TokenizerError.vocabularyMalformed(.cl100kBase, line: 2)) {
            try VocabularyFile.parse(Data("IQ== 0\nIg== 5\n".utf8), encoding: .cl100kBase)
        }
    }
}
