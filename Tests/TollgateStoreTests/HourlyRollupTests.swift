import Foundation
import Logging
import NIOCore
import PostgresNIO
import Testing
import TollgateCore
import TollgateTestSupport

@testable import TollgateStore

// The fast path sends each hourly group's hour to PostgreSQL as a binary timestamptz (microseconds since 2000-01-01 UTC)
// that it computes from the line's text. Expected figures are literals (worked out apart, with Python's datetime).

/// (start of the event in Unix seconds, its hour in microseconds since 2000-01-01 00:00:00 UTC, that hour in Unix seconds)
private let hourEdges: [(Double, Int64, Double)] = [
    (-0.000_001, -946_688_400_000_000, -3_600),  // 1969-12-31 23:59:59.999999 → 23:00
    (0, -946_684_800_000_000, 0),  // 1970-01-01 00:00
    (-2_203_894_200, -3_150_579_600_000_000, -2_203_894_800),  // 1900-02-28 23:10 → 23:00 (1900 is not a leap year)
    (-2_203_890_600, -3_150_576_000_000_000, -2_203_891_200),  // 1900-03-01 00:10 → 00:00
    (946_684_799, -3_600_000_000, 946_681_200),  // 1999-12-31 23:59:59 → 23:00
    (946_684_800, 0, 946_684_800),  // 2000-01-01 00:00
    (951_827_696, 5_140_800_000_000, 951_825_600),  // 2000-02-29 12:34:56 → 12:00 (2000 is)
    (1_709_251_199.999_999, 762_562_800_000_000, 1_709_247_600),  // 2024-02-29 23:59:59.999999 → 23:00
    (4_107_544_200, 3_160_857_600_000_000, 4_107_542_400),  // 2100-03-01 00:30 → 00:00 (2100 is not)
    (253_402_300_799, 252_455_612_400_000_000, 253_402_297_200),  // 9999-12-31 23:59:59 → 23:00
]

private func event(startingAt seconds: Double, subscription: SubscriptionID, id: UUID = UUID()) -> UsageEvent {
    let start = Date(timeIntervalSince1970: seconds)
    return UsageEvent(
        requestID: id, startedAt: start, endedAt: start, subscription: subscription, backend: "openai", model: "gpt-4o-mini",
        route: "chat.completions", httpStatus: 200, streamed: false, usage: TokenUsage(promptTokens: 10, completionTokens: 1),
        usageSource: .reported)
}

struct HourlyRollupParsingTests {
    @Test(arguments: hourEdges)
    func anHourIsSentAsMicrosecondsSince2000(started: Double, hourStart: Int64, hourUnixSeconds: Double) throws {
        let line = ByteBuffer(string: UsageStore.copyLine(for: event(startingAt: started, subscription: "s")))
        let rollup = try #require(HourlyRollup(lines: [line]))
        #expect(rollup.groups.map(\.hourStart) == [hourStart])
        #expect(rollup.rows == 1)
    }

    @Test func oneBatchInTwoChunksIsReadLikeOne() throws {
        var buffer = ByteBuffer()
        for (started, _, _) in hourEdges { buffer.writeString(UsageStore.copyLine(for: event(startingAt: started, subscription: "s"))) }
        let half = buffer.readableBytes / 2 + 3
        let chunks = [buffer.getSlice(at: 0, length: half)!, ByteBuffer(), buffer.getSlice(at: half, length: buffer.readableBytes - half)!]
        let whole = try #require(HourlyRollup(lines: [buffer]))
        let split = try #require(HourlyRollup(lines: chunks))
        #expect(whole.groups.map(\.hourStart) == hourEdges.map(\.1))
        #expect(split.groups.map(\.hourStart) == hourEdges.map(\.1))
        #expect(split.rows == hourEdges.count)
    }

    /// The line scanner reads eight bytes at a time: fields of every length put tabs at every offset of a word, and bytes
    /// one off a tab or a newline (0x08, 0x0B) must not be taken for one.
    @Test func tabsAtEveryOffsetAndTheirNeighboursAreReadExactly() throws {
        var buffer = ByteBuffer()
        var expected: [String: Int] = [:]  // team -> lines
        for length in 1...17 {
            for neighbour in ["", "\u{08}", "\u{0B}", "\u{08}\u{0B}"] {
                let team = String(repeating: "t", count: length) + neighbour
                let start = Date(timeIntervalSince1970: 1_793_491_200 + Double(length))
                let event = UsageEvent(
                    requestID: UUID(), responseID: String(repeating: "r", count: length % 9), startedAt: start, endedAt: start,
                    subscription: "s", team: team, backend: "openai", model: "m" + neighbour, route: "chat.completions", httpStatus: 200,
                    streamed: false, usage: TokenUsage(promptTokens: length, completionTokens: 1), usageSource: .reported, source: neighbour)
                buffer.writeString(UsageStore.copyLine(for: event))
                expected[team, default: 0] += 1
            }
        }
        let rollup = try #require(HourlyRollup(lines: [buffer]))
        #expect(rollup.rows == 68)
        var lines: [String: Int] = [:]
        for group in rollup.groups {
            lines[group.key.team, default: 0] += group.sums.requests
            let neighbour = String(group.key.team.drop { $0 == "t" })
            #expect(group.key.model == "m" + neighbour)
        }
        #expect(lines == expected)
        let prompt = rollup.groups.reduce(0) { $0 + $1.sums.prompt }
        #expect(prompt == 612)  // 4 × (1 + 2 + … + 17)
    }

    @Test(arguments: [
        "2026-11-01 24:00:00.000000+00",  // PostgreSQL reads it as 2026-11-02 00:00
        "2026-13-01 10:00:00.000000+00", "2026-11-00 10:00:00.000000+00", "2026-11-01T10:00:00.000000+00", "2026-1x-01 10:00:00.000000+00",
    ])
    func aTimeOutsideTheCanonicalFormIsLeftToPostgreSQL(started: String) {
        let line =
            "019a7e3c-0000-7000-8000-0000000000cc\t\\N\t\(started)\t\(started)\ts\t\\N\t\\N\t\\N\topenai\t\\N\tgpt-4o\tchat.completions\t200\t"
            + "1000\tf\t10\t5\t15\t0\t0\treported\tother-gateway\n"
        #expect(HourlyRollup(lines: [ByteBuffer(string: line)]) == nil)
    }
}

@Suite(.freshDatabase) struct HourlyRollupStoreTests {
    @Test func theFastPathPutsEveryEventInTheHourPostgreSQLComputes() async throws {
        try await TestDatabase.withClient { client in
            let batch = hourEdges.map { event(startingAt: $0.0, subscription: "hour-edges") }
            #expect(try await UsageStore(client: client).insert(batch, logger: TestDatabase.logger) == hourEdges.count)
            let hours = try await client.query(
                "SELECT hour_start, requests FROM usage_hourly WHERE subscription_id = 'hour-edges' ORDER BY hour_start", logger: TestDatabase.logger
            ).collect().map { try $0.decode((Date, Int).self) }
            #expect(hours.map(\.0) == hourEdges.map { Date(timeIntervalSince1970: $0.2) }.sorted())
            #expect(hours.map(\.1) == Array(repeating: 1, count: hourEdges.count))
            // And where PostgreSQL puts the ledger's rows itself.
            let misplaced = try await client.query(
                """
                SELECT count(*)::int FROM usage_events e
                WHERE e.subscription_id = 'hour-edges'
                    AND NOT EXISTS (SELECT FROM usage_hourly h WHERE h.subscription_id = e.subscription_id
                        AND h.hour_start = date_trunc('hour', e.started_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')
                """, logger: TestDatabase.logger
            ).collect().first?.decode(Int.self)
            #expect(misplaced == 0)
            #expect(try await Rollups.dailyDrift(client, logger: TestDatabase.logger) == [])
        }
    }

    @Test func hour24AndTheNextDaysFirstHourShareOneHourlyRow() async throws {
        try await TestDatabase.withClient { client in
            // Not copyLine's form (it never writes hour 24), but PostgreSQL takes it: the batch must still land, both events
            // in 2026-11-02 00:00, rather than fail on two groups with one key.
            func line(_ id: String, _ started: String) -> String {
                "019a7e3c-0000-7000-8000-0000000000\(id)\t\\N\t\(started)\t\(started)\thour-24\t\\N\t\\N\t\\N\topenai\t\\N\tgpt-4o\tchat.completions\t"
                    + "200\t1000\tf\t10\t5\t15\t0\t0\treported\tother-gateway\n"
            }
            let batch = ByteBuffer(string: line("d1", "2026-11-01 24:00:00.000000+00") + line("d2", "2026-11-02 00:30:00.000000+00"))
            #expect(try await UsageStore(client: client).insert(copyText: [batch], logger: TestDatabase.logger) == 2)
            let hours = try await client.query(
                "SELECT hour_start, requests FROM usage_hourly WHERE subscription_id = 'hour-24'", logger: TestDatabase.logger
            ).collect().map { try $0.decode((Date, Int).self) }
            #expect(hours.map(\.0) == [Date(timeIntervalSince1970: 1_793_577_600)])  // 2026-11-02T00:00:00Z
            #expect(hours.map(\.1) == [2])
        }
    }
}
