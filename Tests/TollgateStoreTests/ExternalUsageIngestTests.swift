import Foundation
import Testing
import TollgateCore
import TollgateStore

@Suite struct ExternalUsageIngestValidationTests {
    static let now = Date(iso8601: "2026-11-05T09:00:00Z")!
    static let subscriptions: [SubscriptionID: IngestSubscription] = [
        "search-prod": IngestSubscription(team: "search", costCenter: "CC-100", product: "search")
    ]

    static func validate(_ body: String, contentType: String? = nil) throws -> ExternalUsageIngest.Validated {
        try ExternalUsageIngest.validate(body: Data(body.utf8), contentType: contentType, source: "apim-east", subscriptions: subscriptions, now: now)
    }

    @Test func acceptsAGoodEventAndSnapshotsTheSubscription() throws {
        let result = try Self.validate(
            """
            [{"id":"0192f000-0000-7000-8000-000000000001","subscription":"search-prod","model":"gpt-4o","timestamp":"2026-11-01T10:00:00Z",
              "prompt_tokens":1200,"completion_tokens":300,"cached_tokens":1000,"total_tokens":1500,"extra":"ignored"}]
            """)
        #expect(result.rejections.isEmpty)
        let event = try #require(result.accepted.first)
        #expect(event.requestID == UUID(uuidString: "0192f000-0000-7000-8000-000000000001")!)
        #expect(event.source == "apim-east")
        #expect(event.backend == "apim-east")
        #expect(event.team == "search" && event.costCenter == "CC-100" && event.product == "search")
        #expect(event.usage == TokenUsage(promptTokens: 1200, completionTokens: 300, cachedPromptTokens: 1000))
    }

    @Test func rejectsBadEventsOneByOneWithReasons() throws {
        let body = """
            {"id":"0192f000-0000-7000-8000-000000000001","subscription":"search-prod","model":"gpt-4o","timestamp":"2026-11-01T10:00:00Z","prompt_tokens":-5,"completion_tokens":300}
            {"id":"0192f000-0000-7000-8000-000000000002","subscription":"nobody","model":"gpt-4o","timestamp":"2026-11-01T10:00:00Z","prompt_tokens":5,"completion_tokens":3}
            {"id":"0192f000-0000-7000-8000-000000000003","subscription":"search-prod","model":"gpt-4o","timestamp":"yesterday","prompt_tokens":5,"completion_tokens":3}
            {"id":"0192f000-0000-7000-8000-000000000004","subscription":"search-prod","model":"gpt-4o","timestamp":"2026-12-01T00:00:00Z","prompt_tokens":5,"completion_tokens":99999999999}
            not json
            {"id":"7","subscription":"search-prod","model":"gpt-4o","timestamp":"2026-11-01T10:00:00Z","prompt_tokens":1.5,"completion_tokens":3,"cached_tokens":9}
            {"id":"0192f000-0000-7000-8000-000000000005","subscription":"search-prod","model":"gpt-4o","timestamp":"2026-11-01T10:00:00Z","prompt_tokens":5,"completion_tokens":3}
            """
        let result = try Self.validate(body, contentType: "application/x-ndjson")
        #expect(result.received == 7)
        #expect(result.accepted.map(\.requestID.uuidString) == ["0192F000-0000-7000-8000-000000000005"])
        #expect(
            result.rejections == [
                IngestRejection(index: 0, id: "0192f000-0000-7000-8000-000000000001", reasons: ["prompt_tokens must not be negative"]),
                IngestRejection(index: 1, id: "0192f000-0000-7000-8000-000000000002", reasons: ["unknown subscription 'nobody'"]),
                IngestRejection(
                    index: 2, id: "0192f000-0000-7000-8000-000000000003",
                    reasons: [
                        "timestamp 'yesterday' is not an RFC 3339 timestamp such as 2026-10-03T12:00:01Z"
                    ]),
                IngestRejection(
                    index: 3, id: "0192f000-0000-7000-8000-000000000004",
                    reasons: [
                        "timestamp 2026-12-01T00:00:00Z is in the future",
                        "completion_tokens 99999999999 is absurd for one request (at most 10000000)",
                    ]),
                IngestRejection(index: 4, id: nil, reasons: ["line 5 is not a JSON object"]),
                // Any non-empty string is an event id now (issue 11 point 7): only the token count is wrong.
                IngestRejection(index: 5, id: "7", reasons: ["prompt_tokens must be a whole number"]),
            ])
    }

    @Test func batchLevelErrors() {
        #expect(throws: IngestError.emptyBody) { try Self.validate("\n\n") }
        #expect(throws: IngestError.notJSON("the JSON array does not parse")) { try Self.validate("[{") }
        #expect(throws: IngestError.invalidSource("Bad Source")) {
            try ExternalUsageIngest.validate(body: Data("[]".utf8), contentType: nil, source: "Bad Source", subscriptions: [:], now: Self.now)
        }
    }
}
