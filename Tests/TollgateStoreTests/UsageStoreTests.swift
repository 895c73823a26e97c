import Foundation
import Logging
import NIOCore
import PostgresNIO
import Testing
import TollgateCore
import TollgateStore
import TollgateTestSupport

// 2026-11-25T10:00:00Z and 11:00:00Z, in Unix seconds.
private let hour10 = 1_795_600_800.0
private let hour11 = 1_795_604_400.0

/// Event `i` of a test batch. Events 1…60 fall in the 10:00 hour (60 on its last microsecond), 61… in the 11:00 hour
/// (61 on its first microsecond). Tokens: prompt i, completion 2i, total 3i, cached i % 2, reasoning i % 3.
private func event(_ i: Int, subscription: SubscriptionID) -> UsageEvent {
    let started: Double
    switch i {
    case 60: started = hour11 - 0.000_001
    case 61: started = hour11
    case ...59: started = hour10 + Double(i)
    default: started = hour11 + Double(i)
    }
    let start = Date(timeIntervalSince1970: started)
    return UsageEvent(
        requestID: UUIDv7.make(at: start), responseID: "chatcmpl-\(i)", startedAt: start, endedAt: start.addingTimeInterval(1.5),
        subscription: subscription, product: "standard", team: "search", costCenter: "cc-1", backend: "openai", deployment: "gpt-4o-mini",
        model: "gpt-4o-mini-2024-07-18", route: "chat.completions", httpStatus: 200, streamed: i % 4 == 0,
        usage: TokenUsage(promptTokens: i, completionTokens: 2 * i, totalTokens: 3 * i, cachedPromptTokens: i % 2, reasoningTokens: i % 3),
        usageSource: .reported)
}

private func events(_ range: ClosedRange<Int>, subscription: SubscriptionID) -> [UsageEvent] {
    range.map { event($0, subscription: subscription) }
}

private struct Totals: Equatable, CustomStringConvertible {
    var requests, prompt, completion, total, cached, reasoning: Int
    var description: String {
        "requests \(requests), prompt \(prompt), completion \(completion), total \(total), cached \(cached), reasoning \(reasoning)"
    }
}

/// Sums of the ledger and of the hourly rollup for one subscription; both must agree with the literal expectations.
private func totals(_ client: PostgresClient, _ subscription: SubscriptionID) async throws -> (ledger: Totals, hourly: Totals) {
    let ledger = try await client.query(
        """
        SELECT count(*)::bigint, coalesce(sum(prompt_tokens), 0)::bigint, coalesce(sum(completion_tokens), 0)::bigint,
               coalesce(sum(total_tokens), 0)::bigint, coalesce(sum(cached_tokens), 0)::bigint, coalesce(sum(reasoning_tokens), 0)::bigint
        FROM usage_events WHERE subscription_id = \(subscription.rawValue)
        """, logger: TestDatabase.logger
    ).collect().first!.decode((Int, Int, Int, Int, Int, Int).self)
    let hourly = try await client.query(
        """
        SELECT coalesce(sum(requests), 0)::bigint, coalesce(sum(prompt_tokens), 0)::bigint, coalesce(sum(completion_tokens), 0)::bigint,
               coalesce(sum(total_tokens), 0)::bigint, coalesce(sum(cached_tokens), 0)::bigint, coalesce(sum(reasoning_tokens), 0)::bigint
        FROM usage_hourly WHERE subscription_id = \(subscription.rawValue)
        """, logger: TestDatabase.logger
    ).collect().first!.decode((Int, Int, Int, Int, Int, Int).self)
    return (
        Totals(requests: ledger.0, prompt: ledger.1, completion: ledger.2, total: ledger.3, cached: ledger.4, reasoning: ledger.5),
        Totals(requests: hourly.0, prompt: hourly.1, completion: hourly.2, total: hourly.3, cached: hourly.4, reasoning: hourly.5)
    )
}

/// Each test writes its own subscription, so the suite's tests can share one database and run in parallel.
@Suite(.freshDatabase) struct UsageStoreTests {
    private let hundred = Totals(requests: 100, prompt: 5050, completion: 10100, total: 15150, cached: 50, reasoning: 100)

    @Test func replayingABatchAddsNothing() async throws {
        try await TestDatabase.withClient { client in
            let store = UsageStore(client: client)
            let batch = events(1...100, subscription: "replay")
            #expect(try await store.insert(batch, logger: TestDatabase.logger) == 100)
            var sums = try await totals(client, "replay")
            #expect(sums.ledger == hundred)
            #expect(sums.hourly == hundred)

            #expect(try await store.insert(batch, logger: TestDatabase.logger) == 0)
            sums = try await totals(client, "replay")
            #expect(sums.ledger == hundred)
            #expect(sums.hourly == hundred)

            // A batch that overlaps the stored one by half lands only its new half.
            let overlapping = Array(batch[50...]) + events(101...150, subscription: "replay")
            #expect(try await store.insert(overlapping, logger: TestDatabase.logger) == 50)
            let hundredFifty = Totals(requests: 150, prompt: 11325, completion: 22650, total: 33975, cached: 75, reasoning: 150)
            sums = try await totals(client, "replay")
            #expect(sums.ledger == hundredFifty)
            #expect(sums.hourly == hundredFifty)
        }
    }

    @Test func aRequestIDRepeatedInsideOneBatchCountsOnce() async throws {
        try await TestDatabase.withClient { client in
            let batch = events(1...10, subscription: "dupes")
            #expect(try await UsageStore(client: client).insert(batch + [batch[0], batch[9]], logger: TestDatabase.logger) == 10)
            let sums = try await totals(client, "dupes")
            let ten = Totals(requests: 10, prompt: 55, completion: 110, total: 165, cached: 5, reasoning: 10)
            #expect(sums.ledger == ten)
            #expect(sums.hourly == ten)
        }
    }

    @Test func concurrentReplaysOfOneBatchLandItOnce() async throws {
        try await TestDatabase.withClient { client in
            let store = UsageStore(client: client)
            let batch = events(1...100, subscription: "race")
            async let first = store.insert(batch, logger: TestDatabase.logger)
            async let second = store.insert(batch, logger: TestDatabase.logger)
            let landed = try await [first, second]
            #expect(landed.reduce(0, +) == 100)
            let sums = try await totals(client, "race")
            #expect(sums.ledger == hundred)
            #expect(sums.hourly == hundred)
        }
    }

    @Test func rowsInTwoHoursLandInTwoHourlyBuckets() async throws {
        try await TestDatabase.withClient { client in
            try await UsageStore(client: client).insert(events(1...100, subscription: "hours"), logger: TestDatabase.logger)
            let rows = try await client.query(
                """
                SELECT hour_start, requests, prompt_tokens, completion_tokens, total_tokens, cached_tokens, reasoning_tokens,
                       product, team, cost_center, backend, deployment, model, usage_source
                FROM usage_hourly WHERE subscription_id = 'hours' ORDER BY hour_start
                """, logger: TestDatabase.logger
            ).collect()
            #expect(rows.count == 2)
            let buckets = try rows.map { try $0.decode((Date, Int, Int, Int, Int, Int, Int).self) }
            #expect(buckets.map(\.0) == [Date(timeIntervalSince1970: hour10), Date(timeIntervalSince1970: hour11)])
            #expect(
                buckets.map { Totals(requests: $0.1, prompt: $0.2, completion: $0.3, total: $0.4, cached: $0.5, reasoning: $0.6) } == [
                    Totals(requests: 60, prompt: 1830, completion: 3660, total: 5490, cached: 30, reasoning: 60),
                    Totals(requests: 40, prompt: 3220, completion: 6440, total: 9660, cached: 20, reasoning: 40),
                ])
            let keys = try rows.map {
                try $0.decode((Date, Int, Int, Int, Int, Int, Int, String, String, String, String, String, String, String).self)
            }
            for key in keys {
                #expect(
                    [key.7, key.8, key.9, key.10, key.11, key.12, key.13]
                        == ["standard", "search", "cc-1", "openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", "reported"])
            }
        }
    }

    @Test func textFieldsWithTabsNewlinesAndBackslashesRoundTrip() async throws {
        try await TestDatabase.withClient { client in
            let start = Date(timeIntervalSince1970: 1_793_491_200.123_456)  // 2026-11-01T00:00:00.123456Z
            let tricky = UsageEvent(
                requestID: UUID(uuidString: "019A7E3C-0000-7000-8000-0000000000AA")!, responseID: "chat\tcmpl\nid\\x\r",
                startedAt: start, endedAt: start.addingTimeInterval(0.25), subscription: "escapes", product: nil,
                team: "a\\b\\N", costCenter: "\\N", backend: "openai", deployment: "dep\t1", model: "gpt-🚀-é",
                route: "chat.completions", httpStatus: 429, streamed: true,
                usage: TokenUsage(promptTokens: 7, completionTokens: 0), usageSource: .missing, source: "other\tgateway\n")
            #expect(try await UsageStore(client: client).insert([tricky], logger: TestDatabase.logger) == 1)
            let row = try #require(
                try await client.query(
                    """
                    SELECT response_id, product, team, cost_center, deployment, model, source, usage_source, http_status::int, latency_ms,
                           streamed, to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'),
                           to_char(ended_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'), request_id::text
                    FROM usage_events WHERE subscription_id = 'escapes'
                    """, logger: TestDatabase.logger
                ).collect().first)
            let (responseID, product, team, costCenter, deployment, model, source, usageSource, status, latency, streamed, started, ended, id) =
                try row.decode((String, String?, String, String, String, String, String, String, Int, Int, Bool, String, String, String).self)
            #expect(responseID == "chat\tcmpl\nid\\x\r")
            #expect(product == nil)
            #expect(team == "a\\b\\N")
            #expect(costCenter == "\\N")  // the two characters backslash and N, not NULL
            #expect(deployment == "dep\t1")
            #expect(model == "gpt-🚀-é")
            #expect(source == "other\tgateway\n")
            #expect(usageSource == "missing")
            #expect(status == 429)
            #expect(latency == 250)
            #expect(streamed)
            #expect(started == "2026-11-01T00:00:00.123456")
            #expect(ended == "2026-11-01T00:00:00.373456")
            #expect(id == "019a7e3c-0000-7000-8000-0000000000aa")

            // The rollup, computed from the escaped line on the fast path, groups by the unescaped values.
            let hourly = try #require(
                try await client.query(
                    """
                    SELECT hour_start, product, team, cost_center, deployment, model, usage_source, requests, prompt_tokens
                    FROM usage_hourly WHERE subscription_id = 'escapes'
                    """, logger: TestDatabase.logger
                ).collect().first)
            let rolled = try hourly.decode((Date, String, String, String, String, String, String, Int, Int).self)
            #expect(rolled.0 == Date(timeIntervalSince1970: 1_793_491_200))
            #expect([rolled.1, rolled.2, rolled.3, rolled.4, rolled.5, rolled.6] == ["", "a\\b\\N", "\\N", "dep\t1", "gpt-🚀-é", "missing"])
            #expect(rolled.7 == 1)
            #expect(rolled.8 == 7)
        }
    }

    @Test func aMissingAndAnEmptyAttributeShareOneHourlyRow() async throws {
        try await TestDatabase.withClient { client in
            let start = Date(timeIntervalSince1970: hour10 + 60)
            func make(product: String?, deployment: String?, tokens: Int) -> UsageEvent {
                UsageEvent(
                    requestID: UUIDv7.make(at: start), startedAt: start, endedAt: start, subscription: "nulls", product: product,
                    backend: "openai", deployment: deployment, model: "m", route: "chat.completions", httpStatus: 200, streamed: false,
                    usage: TokenUsage(promptTokens: tokens, completionTokens: 0), usageSource: .reported)
            }
            let batch = [
                make(product: nil, deployment: "", tokens: 3), make(product: "", deployment: nil, tokens: 4),
                make(product: nil, deployment: nil, tokens: 5),
            ]
            #expect(try await UsageStore(client: client).insert(batch, logger: TestDatabase.logger) == 3)
            let rows = try await client.query(
                "SELECT product, deployment, requests, prompt_tokens FROM usage_hourly WHERE subscription_id = 'nulls'", logger: TestDatabase.logger
            ).collect()
            #expect(rows.count == 1)
            let row = try #require(rows.first).decode((String, String, Int, Int).self)
            #expect(row.0 == "")
            #expect(row.1 == "")
            #expect(row.2 == 3)
            #expect(row.3 == 12)
            // The ledger keeps NULL and '' apart.
            let nulls = try await client.query(
                "SELECT count(*) FILTER (WHERE product IS NULL)::int, count(*) FILTER (WHERE deployment IS NULL)::int FROM usage_events WHERE subscription_id = 'nulls'",
                logger: TestDatabase.logger
            ).collect().first?.decode((Int, Int).self)
            #expect(nulls?.0 == 2)
            #expect(nulls?.1 == 2)
        }
    }

    @Test func aLineNotWrittenByCopyLineStillLandsThroughStaging() async throws {
        try await TestDatabase.withClient { client in
            // Hand-written COPY text with an ISO timestamp in another zone: not the canonical form, so the general path
            // (PostgreSQL parses the time) takes it.
            let line =
                "019a7e3c-0000-7000-8000-0000000000bb\t\\N\t2026-11-25T11:30:00+01:00\t2026-11-25T11:30:01+01:00\tforeign\t\\N\t\\N\t\\N\t"
                + "openai\t\\N\tgpt-4o\tchat.completions\t200\t1000\tf\t10\t5\t15\t0\t0\treported\tother-gateway\n"
            #expect(try await UsageStore(client: client).insert(copyText: [ByteBuffer(string: line)], logger: TestDatabase.logger) == 1)
            let hour = try await client.query("SELECT hour_start FROM usage_hourly WHERE subscription_id = 'foreign'", logger: TestDatabase.logger)
                .collect().first?.decode(Date.self)
            #expect(hour == Date(timeIntervalSince1970: hour10))  // 11:30+01:00 is 10:30Z
        }
    }

    @Test func anEmptyBatchWritesNothing() async throws {
        try await TestDatabase.withClient { client in
            let fromEvents = try await UsageStore(client: client).insert([], logger: TestDatabase.logger)
            let fromText = try await UsageStore(client: client).insert(copyText: [], logger: TestDatabase.logger)
            #expect(fromEvents == 0)
            #expect(fromText == 0)
        }
    }

    @Test func preEncodedCopyTextLandsLikeEvents() async throws {
        try await TestDatabase.withClient { client in
            var buffer = ByteBuffer()
            for e in events(1...100, subscription: "copytext") { buffer.writeString(UsageStore.copyLine(for: e)) }
            // Split mid-line: COPY reassembles rows across chunks.
            let half = buffer.readableBytes / 2 + 7
            let chunks = [buffer.getSlice(at: 0, length: half)!, buffer.getSlice(at: half, length: buffer.readableBytes - half)!]
            #expect(try await UsageStore(client: client).insert(copyText: chunks, logger: TestDatabase.logger) == 100)
            let sums = try await totals(client, "copytext")
            #expect(sums.ledger == hundred)
            #expect(sums.hourly == hundred)
        }
    }
}

struct UsageCopyLineTests {
    @Test(arguments: [
        (1_793_491_200.123_456, "2026-11-01 00:00:00.123456+00"),
        (0.0, "1970-01-01 00:00:00.000000+00"),
        (-0.000_001, "1969-12-31 23:59:59.999999+00"),
        (-1.0, "1969-12-31 23:59:59.000000+00"),
        (1_709_251_199.999_999, "2024-02-29 23:59:59.999999+00"),  // leap day
        (951_868_800.0, "2000-03-01 00:00:00.000000+00"),  // 2000 is a leap year, so 29 February came before
        (-2_208_988_800.0, "1900-01-01 00:00:00.000000+00"),
        (253_402_300_799.0, "9999-12-31 23:59:59.000000+00"),
    ])
    func writesTimesAsUTCWithMicroseconds(unixSeconds: Double, expected: String) {
        let start = Date(timeIntervalSince1970: unixSeconds)
        let fields = UsageStore.copyLine(
            for: UsageEvent(
                requestID: UUID(), startedAt: start, endedAt: start, subscription: "s", backend: "b", model: "m", route: "r",
                httpStatus: 200, streamed: false, usage: .zero, usageSource: .missing)
        ).split(separator: "\t")
        #expect(fields[2] == expected)
        #expect(fields[3] == expected)
    }

    @Test func encodesOneEventAsOneEscapedLine() {
        let start = Date(timeIntervalSince1970: 1_793_491_200.5)
        let line = UsageStore.copyLine(
            for: UsageEvent(
                requestID: UUID(uuidString: "019A7E3C-0000-7000-8000-0000000000AA")!, responseID: nil, startedAt: start,
                endedAt: start.addingTimeInterval(2), subscription: "team-a", product: "p", team: "t\\u", costCenter: nil, backend: "b",
                deployment: "d\te", model: "m\nn", route: "embeddings", httpStatus: 200, streamed: false,
                usage: TokenUsage(promptTokens: 11, completionTokens: 3, totalTokens: 14, cachedPromptTokens: 2, reasoningTokens: 1),
                usageSource: .estimated))
        #expect(
            line
                == "019A7E3C-0000-7000-8000-0000000000AA\t\\N\t2026-11-01 00:00:00.500000+00\t2026-11-01 00:00:02.500000+00\tteam-a\tp\tt\\\\u\t\\N\tb\td\\te\tm\\nn\tembeddings\t200\t2000\tf\t11\t3\t14\t2\t1\testimated\tgateway\n"
        )
    }
}

/// Its own suite, so no other test's batch notifies the listener first.
@Suite(.freshDatabase) struct UsageStoreNotificationTests {
    @Test(.timeLimit(.minutes(1))) func aLandedBatchNotifiesWithItsRowCountAndAReplayDoesNot() async throws {
        try await TestDatabase.withClient { client in
            try await client.withConnection { connection in
                let notifications = try await connection.listen(NotificationChannel.usage.name)
                let store = UsageStore(client: client)
                let batch = events(1...3, subscription: "notify")
                #expect(try await store.insert(batch, logger: TestDatabase.logger) == 3)
                #expect(try await store.insert(batch, logger: TestDatabase.logger) == 0)  // nothing new: no notification
                #expect(try await store.insert(events(4...5, subscription: "notify"), logger: TestDatabase.logger) == 2)
                var payloads: [String] = []
                for try await notification in notifications {
                    payloads.append(notification.payload)
                    if payloads.count == 2 { break }
                }
                #expect(payloads == ["3", "2"])
            }
        }
    }
}
