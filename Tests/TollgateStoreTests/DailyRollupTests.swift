import Foundation
import Logging
import PostgresNIO
import Testing
import TollgateCore
import TollgateStore
import TollgateTestSupport

// usage_daily_rollup must hold, at every commit, the sums of usage_hourly by UTC day, whoever wrote the hours: the usage
// writer's fast path (COPY), its staging path (duplicates, replays), concurrent writers, late usage after a close, and SQL
// by hand (the triggers of sql/0302). Every expected figure is a literal, worked out from `event(_:_:midnight:)`.

private typealias Totals = Rollups.Totals

/// 2026-11-25T00:00:00Z and 2026-11-01T00:00:00Z, in Unix seconds.
private let midnight25 = 1_795_564_800.0
private let midnightNovember = 1_793_491_200.0

/// Event `i` around `midnight`: 1…50 and 101… on the day before (50 on its last microsecond, 101… i seconds before
/// midnight), 51…100 on the day of `midnight` (51 on its first microsecond). Tokens: prompt i, completion 2i, total 3i,
/// cached i % 2, reasoning i % 3.
private func event(_ i: Int, _ subscription: SubscriptionID, midnight: Double = midnight25) -> UsageEvent {
    let started: Double
    switch i {
    case 50: started = midnight - 0.000_001
    case 51: started = midnight
    case 52...100: started = midnight + Double(i)
    default: started = midnight - Double(i)
    }
    let start = Date(timeIntervalSince1970: started)
    return UsageEvent(
        requestID: UUIDv7.make(at: start), startedAt: start, endedAt: start.addingTimeInterval(0.5), subscription: subscription,
        product: "standard", team: "search", costCenter: "cc-1", backend: "openai", deployment: "gpt-4o-mini", model: "gpt-4o-mini",
        route: "chat.completions", httpStatus: 200, streamed: false,
        usage: TokenUsage(promptTokens: i, completionTokens: 2 * i, totalTokens: 3 * i, cachedPromptTokens: i % 2, reasoningTokens: i % 3),
        usageSource: .reported)
}

private func events(_ range: ClosedRange<Int>, _ subscription: SubscriptionID, midnight: Double = midnight25) -> [UsageEvent] {
    range.map { event($0, subscription, midnight: midnight) }
}

// Sums of events 1…50, 51…100, and 1…50 plus 101…110 (101…110 alone: 10, 1055, 2110, 3165, 5, 11).
private let first50 = Totals(requests: 50, prompt: 1275, completion: 2550, total: 3825, cached: 25, reasoning: 51)
private let second50 = Totals(requests: 50, prompt: 3775, completion: 7550, total: 11325, cached: 25, reasoning: 49)
private let first50AndLate10 = Totals(requests: 60, prompt: 2330, completion: 4660, total: 6990, cached: 30, reasoning: 62)

/// The usage writer's two paths. Each test writes its own subscription, so the suite's tests share one database; the
/// drift check covers every subscription, so it also sees the others' commits (each one exact on its own).
@Suite(.freshDatabase) struct DailyRollupWriterTests {
    @Test func theFastPathAddsEachEventToItsUTCDay() async throws {
        try await TestDatabase.withClient { client async throws in
            #expect(try await UsageStore(client: client).insert(events(1...100, "fast"), logger: TestDatabase.logger) == 100)
            #expect(
                try await Rollups.daily(client, subscription: "fast", logger: TestDatabase.logger) == ["2026-11-24": first50, "2026-11-25": second50])
            #expect(try await Rollups.dailyDrift(client, logger: TestDatabase.logger) == [])
            #expect(try await Rollups.corrections(client, subscription: "fast", logger: TestDatabase.logger) == [:])  // nothing is closed
        }
    }

    @Test func theStagingPathAddsOnlyTheNewRowsAndAReplayNothing() async throws {
        try await TestDatabase.withClient { client async throws in
            let store = UsageStore(client: client)
            let all = events(1...110, "staging")  // event i is all[i - 1]; a replay sends the same request ids again
            #expect(try await store.insert(Array(all[0..<60]), logger: TestDatabase.logger) == 60)
            // 41…60 are stored: the fast path's COPY fails and the batch goes through staging, landing 61…100 only.
            #expect(try await store.insert(Array(all[40..<100]), logger: TestDatabase.logger) == 40)
            #expect(
                try await Rollups.daily(client, subscription: "staging", logger: TestDatabase.logger) == [
                    "2026-11-24": first50, "2026-11-25": second50,
                ])
            #expect(try await store.insert(Array(all[0..<100]), logger: TestDatabase.logger) == 0)
            // A request id twice in one batch, nothing stored yet: staging again, counted once.
            let repeated = Array(all[100..<110])
            #expect(try await store.insert(repeated + repeated.prefix(3), logger: TestDatabase.logger) == 10)
            #expect(
                try await Rollups.daily(client, subscription: "staging", logger: TestDatabase.logger) == [
                    "2026-11-24": first50AndLate10, "2026-11-25": second50,
                ])
            #expect(try await Rollups.dailyDrift(client, logger: TestDatabase.logger) == [])
        }
    }

    /// Eight writers at once on the same two hours and two days, half of them replaying another's batch: every event
    /// lands once, in both rollups, and no writer fails (a deadlock between two of them would throw here).
    @Test func concurrentWritersAndReplaysLandEveryEventOnceInEveryRollup() async throws {
        try await TestDatabase.withClient { client async throws in
            let store = UsageStore(client: client)
            for round in 1...3 {
                let subscription = SubscriptionID("concurrent-\(round)")
                let all = events(1...100, subscription)
                let shares = (0..<4).map { k in all.enumerated().filter { $0.offset % 4 == k }.map(\.element) }
                let landed = try await withThrowingTaskGroup(of: Int.self) { group in
                    for writer in 0..<8 {
                        group.addTask { try await store.insert(shares[writer % 4], logger: TestDatabase.logger) }
                    }
                    return try await group.reduce(0, +)
                }
                #expect(landed == 100)
                #expect(
                    try await Rollups.daily(client, subscription: subscription.rawValue, logger: TestDatabase.logger) == [
                        "2026-11-24": first50, "2026-11-25": second50,
                    ])
            }
            #expect(try await Rollups.dailyDrift(client, logger: TestDatabase.logger) == [])
        }
    }
}

/// Late usage: October is closed, and usage for its last day arrives through both of the writer's paths.
@Suite(.freshDatabase) struct DailyRollupLateUsageTests {
    @Test func lateUsageIsBookedOnceAndStillCountsInItsDay() async throws {
        try await TestDatabase.withClient { client async throws in
            let october = try #require(BillingPeriod.month("2026-10"))
            try await PeriodStore(client: client).close(
                october, closedBy: "test", now: Date(timeIntervalSince1970: midnightNovember + 86_400), logger: TestDatabase.logger)
            let store = UsageStore(client: client)

            let all = events(1...110, "late", midnight: midnightNovember)  // event i is all[i - 1]
            // Fast path: 1…50 fall on 31 October (closed), 51…100 on 1 November (open).
            #expect(try await store.insert(Array(all[0..<100]), logger: TestDatabase.logger) == 100)
            #expect(try await Rollups.corrections(client, subscription: "late", logger: TestDatabase.logger) == ["2026-11 2026-10-31": first50])
            // Staging path: 91…100 are stored, 101…110 are new and fall on 31 October.
            #expect(try await store.insert(Array(all[90..<110]), logger: TestDatabase.logger) == 10)
            #expect(
                try await Rollups.corrections(client, subscription: "late", logger: TestDatabase.logger) == ["2026-11 2026-10-31": first50AndLate10])
            // A replay books nothing.
            #expect(try await store.insert(all, logger: TestDatabase.logger) == 0)
            #expect(
                try await Rollups.corrections(client, subscription: "late", logger: TestDatabase.logger) == ["2026-11 2026-10-31": first50AndLate10])

            #expect(
                try await Rollups.daily(client, subscription: "late", logger: TestDatabase.logger) == [
                    "2026-10-31": first50AndLate10, "2026-11-01": second50,
                ])
            #expect(try await Rollups.dailyDrift(client, logger: TestDatabase.logger) == [])
        }
    }
}

/// SQL by hand on usage_hourly (what bench/chargeback/generate.sql or an operator does): the triggers keep the daily
/// rollup and the late-usage bookings. Serialized: one test empties the table.
@Suite(.freshDatabase, .serialized) struct DailyRollupTriggerTests {
    static func hourly(_ client: PostgresClient, _ sql: String) async throws {
        try await client.query(PostgresQuery(unsafeSQL: sql), logger: TestDatabase.logger)
    }

    static let columns = """
        usage_hourly (hour_start, subscription_id, backend, model, usage_source, requests, prompt_tokens, completion_tokens, total_tokens,
            cached_tokens, reasoning_tokens)
        """

    @Test func insertUpdateAndDeleteKeepTheDaysAndBookClosedHours() async throws {
        try await TestDatabase.withClient { client async throws in
            try await Self.hourly(
                client,
                """
                INSERT INTO \(Self.columns) VALUES
                    ('2026-11-24 22:00Z', 'sql', 'openai', 'm', 'reported', 1, 10, 20, 30, 1, 2),
                    ('2026-11-24 23:00Z', 'sql', 'openai', 'm', 'reported', 2, 20, 40, 60, 2, 4),
                    ('2026-11-25 00:00Z', 'sql', 'openai', 'm', 'reported', 4, 40, 80, 120, 4, 8)
                """)
            #expect(
                try await Rollups.daily(client, subscription: "sql", logger: TestDatabase.logger) == [
                    "2026-11-24": Totals(requests: 3, prompt: 30, completion: 60, total: 90, cached: 3, reasoning: 6),
                    "2026-11-25": Totals(requests: 4, prompt: 40, completion: 80, total: 120, cached: 4, reasoning: 8),
                ])

            // An upsert by hand fires both statement triggers: one new hour, one existing hour increased.
            try await Self.hourly(
                client,
                """
                INSERT INTO \(Self.columns) VALUES
                    ('2026-11-25 01:00Z', 'sql', 'openai', 'm', 'reported', 8, 80, 160, 240, 8, 16),
                    ('2026-11-24 22:00Z', 'sql', 'openai', 'm', 'reported', 16, 160, 320, 480, 16, 32)
                ON CONFLICT (hour_start, subscription_id, product, team, cost_center, backend, deployment, model, usage_source) DO UPDATE SET
                    requests = usage_hourly.requests + EXCLUDED.requests, prompt_tokens = usage_hourly.prompt_tokens + EXCLUDED.prompt_tokens,
                    completion_tokens = usage_hourly.completion_tokens + EXCLUDED.completion_tokens,
                    total_tokens = usage_hourly.total_tokens + EXCLUDED.total_tokens,
                    cached_tokens = usage_hourly.cached_tokens + EXCLUDED.cached_tokens,
                    reasoning_tokens = usage_hourly.reasoning_tokens + EXCLUDED.reasoning_tokens
                """)
            #expect(
                try await Rollups.daily(client, subscription: "sql", logger: TestDatabase.logger) == [
                    "2026-11-24": Totals(requests: 19, prompt: 190, completion: 380, total: 570, cached: 19, reasoning: 38),
                    "2026-11-25": Totals(requests: 12, prompt: 120, completion: 240, total: 360, cached: 12, reasoning: 24),
                ])

            // An update that moves an hour to another day, and one that changes a counter.
            try await Self.hourly(
                client, "UPDATE usage_hourly SET hour_start = '2026-11-26 05:00Z' WHERE subscription_id = 'sql' AND hour_start = '2026-11-25 00:00Z'")
            try await Self.hourly(
                client, "UPDATE usage_hourly SET requests = requests + 100 WHERE subscription_id = 'sql' AND hour_start = '2026-11-24 23:00Z'")
            #expect(
                try await Rollups.daily(client, subscription: "sql", logger: TestDatabase.logger) == [
                    "2026-11-24": Totals(requests: 119, prompt: 190, completion: 380, total: 570, cached: 19, reasoning: 38),
                    "2026-11-25": Totals(requests: 8, prompt: 80, completion: 160, total: 240, cached: 8, reasoning: 16),
                    "2026-11-26": Totals(requests: 4, prompt: 40, completion: 80, total: 120, cached: 4, reasoning: 8),
                ])

            // Deleting every hour of a day leaves no daily row for it; deleting one hour of a day subtracts it.
            try await Self.hourly(
                client,
                "DELETE FROM usage_hourly WHERE subscription_id = 'sql' AND hour_start >= '2026-11-25 00:00Z' AND hour_start < '2026-11-26 00:00Z'")
            try await Self.hourly(client, "DELETE FROM usage_hourly WHERE subscription_id = 'sql' AND hour_start = '2026-11-24 22:00Z'")
            #expect(
                try await Rollups.daily(client, subscription: "sql", logger: TestDatabase.logger) == [
                    "2026-11-24": Totals(requests: 102, prompt: 20, completion: 40, total: 60, cached: 2, reasoning: 4),
                    "2026-11-26": Totals(requests: 4, prompt: 40, completion: 80, total: 120, cached: 4, reasoning: 8),
                ])
            #expect(try await Rollups.dailyDrift(client, logger: TestDatabase.logger) == [])
            #expect(try await Rollups.corrections(client, subscription: "sql", logger: TestDatabase.logger) == [:])

            // Once November is closed, a change to a November hour is booked in December: the net change, once; a change
            // that changes nothing books nothing.
            let november = try #require(BillingPeriod.month("2026-11"))
            try await PeriodStore(client: client).close(
                november, closedBy: "test", now: Date(timeIntervalSince1970: midnightNovember + 40 * 86_400), logger: TestDatabase.logger)
            try await Self.hourly(
                client, "UPDATE usage_hourly SET requests = requests + 5, prompt_tokens = prompt_tokens + 50 WHERE subscription_id = 'sql'")
            try await Self.hourly(client, "UPDATE usage_hourly SET requests = requests WHERE subscription_id = 'sql'")
            try await Self.hourly(client, "DELETE FROM usage_hourly WHERE subscription_id = 'sql' AND hour_start = '2026-11-26 05:00Z'")
            #expect(
                try await Rollups.corrections(client, subscription: "sql", logger: TestDatabase.logger) == [
                    "2026-12 2026-11-24": Totals(requests: 5, prompt: 50, completion: 0, total: 0, cached: 0, reasoning: 0),
                    "2026-12 2026-11-26": Totals(requests: -4, prompt: -40, completion: -80, total: -120, cached: -4, reasoning: -8),
                ])
            #expect(
                try await Rollups.daily(client, subscription: "sql", logger: TestDatabase.logger) == [
                    "2026-11-24": Totals(requests: 107, prompt: 70, completion: 40, total: 60, cached: 2, reasoning: 4)
                ])
            #expect(try await Rollups.dailyDrift(client, logger: TestDatabase.logger) == [])
        }
    }

    /// The writer's statement tells the triggers to stand aside for its own transaction only: the next transaction on the
    /// same connection (a pool of one) is SQL by hand again, and the triggers keep the daily rollup for it.
    @Test func theWritersSettingEndsWithItsTransaction() async throws {
        let location = try await TestDatabase.location()
        let client = PostgresClient(configuration: location.clientConfiguration(maximumConnections: 1), backgroundLogger: TestDatabase.logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            #expect(try await UsageStore(client: client).insert(events(51...100, "one-connection"), logger: TestDatabase.logger) == 50)
            try await Self.hourly(
                client, "INSERT INTO \(Self.columns) VALUES ('2026-11-25 02:00Z', 'one-connection', 'openai', 'm', 'reported', 1, 1, 1, 1, 0, 0)")
            #expect(try await Rollups.daily(client, subscription: "one-connection", logger: TestDatabase.logger)["2026-11-25"]?.requests == 51)
            #expect(try await Rollups.dailyDrift(client, logger: TestDatabase.logger) == [])
        }
    }

    @Test func emptyingTheHourlyRollupEmptiesTheDailyOne() async throws {
        try await TestDatabase.withClient { client async throws in
            try await UsageStore(client: client).insert(events(1...100, "truncated"), logger: TestDatabase.logger)
            try await Self.hourly(client, "TRUNCATE usage_hourly")
            #expect(
                try await client.query("SELECT count(*) FROM usage_daily_rollup", logger: TestDatabase.logger).collect().first?.decode(Int.self) == 0)
            #expect(try await Rollups.dailyDrift(client, logger: TestDatabase.logger) == [])
        }
    }
}
