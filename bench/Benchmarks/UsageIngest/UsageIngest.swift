// Usage ingestion into PostgreSQL, in process: the batch writer's store path against a raw COPY of the same rows
// into the same indexed table. Run by ../../run-ingest.sh, which starts a durable throwaway cluster and sets
// TOLLGATE_BENCH_DATABASE_URL; see ../../README.md.
//
// Every sample starts from empty tables (or, for the replay benchmark, from the full set already stored), is timed
// around the writes only, and is followed by a count check: a sample that lost or duplicated a row fails the run.

import Benchmark
import Foundation
import Logging
import NIOCore
import PostgresNIO
import TollgateCore
import TollgateStore

let benchmarks: @Sendable () -> Void = {
    let samples = Int(ProcessInfo.processInfo.environment["TOLLGATE_BENCH_SAMPLES"] ?? "") ?? 3
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, eventsPerSecond],
        warmupIterations: 0,
        maxDuration: .seconds(600),
        maxIterations: samples
    )
    Benchmark.setup = { try await Fixture.start() }
    Benchmark.teardown = { await Fixture.stop() }

    Benchmark("raw COPY into usage_events, 10k rows per transaction, 1 connection") { benchmark in
        try await run(benchmark, kind: .rawCopy, connections: 1)
    }
    Benchmark("raw COPY into usage_events, 10k rows per transaction, 2 connections") { benchmark in
        try await run(benchmark, kind: .rawCopy, connections: 2)
    }
    Benchmark("UsageStore.insert(copyText:), 10k per batch, 1 connection") { benchmark in
        try await run(benchmark, kind: .store, connections: 1)
    }
    Benchmark("UsageStore.insert(copyText:), 10k per batch, 2 connections") { benchmark in
        try await run(benchmark, kind: .store, connections: 2)
    }
    Benchmark("UsageStore.insert(events) incl. encoding, 10k per batch, 1 connection") { benchmark in
        try await run(benchmark, kind: .storeFromEvents, connections: 1)
    }
    Benchmark("UsageStore replay of stored rows (all duplicates), 10k per batch, 1 connection") { benchmark in
        try await run(benchmark, kind: .replay, connections: 1)
    }
    // Raw COPY and the store back to back in every sample, so the ratio compares figures taken seconds apart:
    // on a shared machine that is steadier than comparing medians of runs minutes apart.
    Benchmark("paired: raw COPY then UsageStore.insert(copyText:), 1 connection") { benchmark in
        try await runPaired(benchmark, connections: 1)
    }
    Benchmark("paired: raw COPY then UsageStore.insert(copyText:), 2 connections") { benchmark in
        try await runPaired(benchmark, connections: 2)
    }
    // CPU only, no database: what the writer spends per event before PostgreSQL sees it.
    Benchmark(
        "UsageStore.appendCopyLine: encode 10k events",
        configuration: .init(metrics: [.wallClock, .mallocCountTotal, eventsPerSecond], maxIterations: 50)
    ) { benchmark in
        let fixture = try Fixture.current()
        let batch = fixture.events[benchmark.currentIteration % fixture.events.count]
        let clock = ContinuousClock()
        let started = clock.now
        var buffer = ByteBuffer()
        buffer.reserveCapacity(batch.count * 300)
        for event in batch { UsageStore.appendCopyLine(for: event, to: &buffer) }
        blackHole(buffer)
        let elapsed = clock.now - started
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        benchmark.measurement(eventsPerSecond, Int(Double(batch.count) / seconds))
    }
}

let eventsPerSecond = BenchmarkMetric.custom("events/s", polarity: .prefersLarger, useScalingFactor: false)

enum Kind: String {
    case rawCopy = "raw-copy", store, storeFromEvents = "store-from-events", replay
    case pairedRaw = "paired-raw", pairedStore = "paired-store"
}

/// One paired sample: a raw COPY of all rows, then (timed by the harness) the store writing the same rows.
func runPaired(_ benchmark: Benchmark, connections: Int) async throws {
    let fixture = try Fixture.current()
    let clock = ContinuousClock()
    func seconds(_ duration: Duration) -> Double { Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18 }
    var problems: [String] = []

    try await fixture.reset()
    var started = clock.now
    _ = try await fixture.rawCopy(connections: connections)
    let raw = seconds(clock.now - started)
    problems += try await fixture.check(landed: fixture.eventCount, expectedLanded: fixture.eventCount, rollup: false)

    try await fixture.reset()
    benchmark.startMeasurement()
    started = clock.now
    let landed = try await fixture.store(connections: connections)
    let store = seconds(clock.now - started)
    benchmark.stopMeasurement()
    benchmark.measurement(eventsPerSecond, Int(Double(fixture.eventCount) / store))
    problems += try await fixture.check(landed: landed, expectedLanded: fixture.eventCount, rollup: true)

    fixture.record(benchmark: benchmark.name, kind: .pairedRaw, connections: connections, seconds: raw, problems: problems)
    fixture.record(benchmark: benchmark.name, kind: .pairedStore, connections: connections, seconds: store, problems: problems)
    if !problems.isEmpty { benchmark.error("Zero-loss check failed: " + problems.joined(separator: "; ")) }
}

/// One sample: reset the tables, time the writes, check the counts.
func run(_ benchmark: Benchmark, kind: Kind, connections: Int) async throws {
    let fixture = try Fixture.current()
    // Outside the measurement: empty tables, or for the replay the full set already stored; then a checkpoint so
    // that every sample starts with the same amount of dirty data.
    try await fixture.reset(storingEverything: kind == .replay)

    let clock = ContinuousClock()
    benchmark.startMeasurement()
    let started = clock.now
    let landed: Int
    switch kind {
    case .rawCopy, .pairedRaw: landed = try await fixture.rawCopy(connections: connections)
    case .store, .replay, .pairedStore: landed = try await fixture.store(connections: connections)
    case .storeFromEvents: landed = try await fixture.storeEvents(connections: connections)
    }
    let elapsed = clock.now - started
    benchmark.stopMeasurement()

    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    let rate = Double(fixture.eventCount) / seconds
    benchmark.measurement(eventsPerSecond, Int(rate))

    let problems = try await fixture.check(landed: landed, expectedLanded: kind == .replay ? 0 : fixture.eventCount, rollup: kind != .rawCopy)
    fixture.record(benchmark: benchmark.name, kind: kind, connections: connections, seconds: seconds, problems: problems)
    if !problems.isEmpty { benchmark.error("Zero-loss check failed: " + problems.joined(separator: "; ")) }
}

/// The database, the client and the pre-encoded rows, shared by all benchmarks of the run.
final class Fixture: Sendable {
    // Written once by `start()` (the global setup hook, before any benchmark runs) and cleared by `stop()` after the
    // last one: the benchmark runner never overlaps them with a benchmark.
    nonisolated(unsafe) private static var shared: Fixture?

    let client: PostgresClient
    let runTask: Task<Void, Never>
    let logger: Logger
    let eventCount: Int
    let batchSize: Int
    let events: [[UsageEvent]]
    /// The rows as COPY text, 10k lines per buffer: what the store and the raw COPY both send.
    let stagingBatches: [ByteBuffer]
    let rawBatches: [ByteBuffer]
    let promptTokenSum: Int
    let summaryPath: String?

    private init(client: PostgresClient, runTask: Task<Void, Never>, logger: Logger, eventCount: Int, batchSize: Int) {
        self.client = client
        self.runTask = runTask
        self.logger = logger
        self.eventCount = eventCount
        self.batchSize = batchSize
        let generated = EventGenerator.make(count: eventCount)
        events = stride(from: 0, to: generated.count, by: batchSize).map { Array(generated[$0..<min($0 + batchSize, generated.count)]) }
        stagingBatches = events.map { batch in
            var buffer = ByteBuffer()
            for event in batch { buffer.writeString(UsageStore.copyLine(for: event)) }
            return buffer
        }
        rawBatches = stagingBatches
        promptTokenSum = generated.reduce(0) { $0 + $1.usage.promptTokens }
        summaryPath = ProcessInfo.processInfo.environment["TOLLGATE_BENCH_SUMMARY"]
    }

    static func current() throws -> Fixture {
        guard let shared else { throw BenchError.notStarted }
        return shared
    }

    static func start() async throws {
        let environment = ProcessInfo.processInfo.environment
        guard let url = environment["TOLLGATE_BENCH_DATABASE_URL"] else { throw BenchError.noDatabase }
        var quiet = Logger(label: "tollgate.bench")
        quiet.logLevel = .error
        let logger = quiet
        let location = try DatabaseLocation(url: url)
        let client = PostgresClient(configuration: location.clientConfiguration(maximumConnections: 4), backgroundLogger: logger)
        let runTask = Task { await client.run() }
        try await Migrator(client: client, migrations: try Migration.bundled(), logger: logger).migrate()
        // The events' month (November 2026) gets its partition, as the service makes it ahead of time: rows land in it,
        // not in the default partition.
        _ = try await PostgresUsageLedger(client: client).createPartitions(
            now: Date(timeIntervalSince1970: 1_793_491_200), monthsAhead: 1, logger: logger)
        let count = Int(environment["TOLLGATE_BENCH_EVENTS"] ?? "") ?? 1_000_000
        let batch = Int(environment["TOLLGATE_BENCH_BATCH"] ?? "") ?? 10_000
        let fixture = Fixture(client: client, runTask: runTask, logger: logger, eventCount: count, batchSize: batch)
        // Open both connections before the first measurement, so no sample pays for a connection handshake.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<2 {
                group.addTask { try await client.withConnection { _ = try await $0.query("SELECT pg_sleep(0.1)", logger: logger).collect() } }
            }
            try await group.waitForAll()
        }
        shared = fixture
    }

    static func stop() async {
        shared?.runTask.cancel()
        shared = nil
    }

    /// Splits the batches round-robin over `connections` workers, each writing its share one batch at a time.
    private func fanOut(_ connections: Int, _ write: @escaping @Sendable (Int) async throws -> Int) async throws -> Int {
        let batchCount = stagingBatches.count
        return try await withThrowingTaskGroup(of: Int.self) { group in
            for worker in 0..<connections {
                group.addTask {
                    var landed = 0
                    for index in stride(from: worker, to: batchCount, by: connections) { landed += try await write(index) }
                    return landed
                }
            }
            return try await group.reduce(0, +)
        }
    }

    func rawCopy(connections: Int) async throws -> Int {
        try await fanOut(connections) { [self] index in
            try await client.withConnection { connection in
                // One COPY per batch in autocommit mode: a transaction, and a durable commit, per 10k rows.
                try await connection.copyFrom(table: "usage_events", columns: RawCopy.columns, logger: logger) { writer in
                    try await writer.write(rawBatches[index])
                }
            }
            return events[index].count
        }
    }

    func store(connections: Int) async throws -> Int {
        let store = UsageStore(client: client)
        return try await fanOut(connections) { [self] index in
            try await store.insert(copyText: [stagingBatches[index]], logger: logger)
        }
    }

    func storeEvents(connections: Int) async throws -> Int {
        let store = UsageStore(client: client)
        return try await fanOut(connections) { [self] index in
            try await store.insert(events[index], logger: logger)
        }
    }

    /// Empty tables (or, for a replay, every row already stored), then a checkpoint so that every sample starts with the
    /// same amount of dirty data.
    func reset(storingEverything: Bool = false) async throws {
        try await client.query("TRUNCATE usage_events, usage_request_ids, usage_hourly, usage_daily_rollup, usage_corrections", logger: logger)
        if storingEverything {
            let landed = try await store(connections: 2)
            guard landed == eventCount else { throw BenchError.setupLost(landed: landed, expected: eventCount) }
        }
        try await client.query("CHECKPOINT", logger: logger)
    }

    /// Zero loss: every event is in the ledger exactly once, and (when the rollups are maintained) counted once in the hourly
    /// and the daily rollup, every daily row equal to the sums of its hours.
    func check(landed: Int, expectedLanded: Int, rollup: Bool) async throws -> [String] {
        let stored = try await counts()
        var problems: [String] = []
        if landed != expectedLanded { problems.append("the writes reported \(landed) new rows, expected \(expectedLanded)") }
        if stored.events != eventCount { problems.append("usage_events holds \(stored.events) rows, expected \(eventCount)") }
        if stored.promptTokens != promptTokenSum {
            problems.append("usage_events sums \(stored.promptTokens) prompt tokens, expected \(promptTokenSum)")
        }
        if rollup {
            if stored.rolledRequests != eventCount {
                problems.append("usage_hourly counts \(stored.rolledRequests) requests, expected \(eventCount)")
            }
            if stored.rolledPromptTokens != promptTokenSum {
                problems.append("usage_hourly sums \(stored.rolledPromptTokens) prompt tokens, expected \(promptTokenSum)")
            }
            if stored.dailyRequests != eventCount {
                problems.append("usage_daily_rollup counts \(stored.dailyRequests) requests, expected \(eventCount)")
            }
            if stored.dailyPromptTokens != promptTokenSum {
                problems.append("usage_daily_rollup sums \(stored.dailyPromptTokens) prompt tokens, expected \(promptTokenSum)")
            }
            if stored.dailyRowsOff != 0 {
                problems.append("\(stored.dailyRowsOff) usage_daily_rollup rows differ from the sums of their hours in usage_hourly")
            }
        }
        return problems
    }

    struct Counts { var events, promptTokens, rolledRequests, rolledPromptTokens, dailyRequests, dailyPromptTokens, dailyRowsOff: Int }

    func counts() async throws -> Counts {
        let row = try await client.query(
            """
            SELECT (SELECT count(*) FROM usage_events), (SELECT coalesce(sum(prompt_tokens), 0)::bigint FROM usage_events),
                   (SELECT coalesce(sum(requests), 0)::bigint FROM usage_hourly), (SELECT coalesce(sum(prompt_tokens), 0)::bigint FROM usage_hourly),
                   (SELECT coalesce(sum(requests), 0)::bigint FROM usage_daily_rollup),
                   (SELECT coalesce(sum(prompt_tokens), 0)::bigint FROM usage_daily_rollup),
                   (SELECT count(*) FROM (
                        SELECT date_trunc('day', hour_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS day_start, subscription_id, product, team,
                            cost_center, backend, deployment, model, usage_source, sum(requests) AS requests, sum(prompt_tokens) AS prompt_tokens,
                            sum(completion_tokens) AS completion_tokens, sum(total_tokens) AS total_tokens, sum(cached_tokens) AS cached_tokens,
                            sum(reasoning_tokens) AS reasoning_tokens
                        FROM usage_hourly GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9) h
                    FULL JOIN usage_daily_rollup d USING (day_start, subscription_id, product, team, cost_center, backend, deployment, model, usage_source)
                    WHERE (h.requests, h.prompt_tokens, h.completion_tokens, h.total_tokens, h.cached_tokens, h.reasoning_tokens)
                        IS DISTINCT FROM (d.requests, d.prompt_tokens, d.completion_tokens, d.total_tokens, d.cached_tokens, d.reasoning_tokens))
            """, logger: logger
        ).collect().first
        guard
            let (events, prompt, requests, rolledPrompt, dailyRequests, dailyPrompt, dailyOff) =
                try row?.decode((Int, Int, Int, Int, Int, Int, Int).self)
        else { throw BenchError.noRow }
        return Counts(
            events: events, promptTokens: prompt, rolledRequests: requests, rolledPromptTokens: rolledPrompt, dailyRequests: dailyRequests,
            dailyPromptTokens: dailyPrompt, dailyRowsOff: dailyOff)
    }

    /// One tab-separated line per sample, for run-ingest.sh to turn into the results table.
    func record(benchmark: String, kind: Kind, connections: Int, seconds: Double, problems: [String]) {
        guard let summaryPath else { return }
        let line =
            [
                kind.rawValue, String(connections), String(eventCount), String(format: "%.6f", seconds),
                problems.isEmpty ? "ok" : "LOSS: " + problems.joined(separator: "; "), benchmark,
            ].joined(separator: "\t") + "\n"
        if !FileManager.default.fileExists(atPath: summaryPath) { _ = FileManager.default.createFile(atPath: summaryPath, contents: nil) }
        guard let handle = FileHandle(forWritingAtPath: summaryPath) else { return }
        handle.seekToEndOfFile()
        handle.write(Data(line.utf8))
        try? handle.close()
    }
}

enum BenchError: Error, CustomStringConvertible {
    case noDatabase, notStarted, noRow
    case setupLost(landed: Int, expected: Int)
    var description: String {
        switch self {
        case .noDatabase: "TOLLGATE_BENCH_DATABASE_URL is not set; run bench/run-ingest.sh, which starts a cluster and sets it"
        case .notStarted: "the fixture was not set up"
        case .noRow: "the count query returned no row"
        case .setupLost(let landed, let expected): "storing every row before the replay landed \(landed) of \(expected): rows lost"
        }
    }
}

/// Deterministic, realistic usage events: 50 subscriptions, 2 backends, 3 models, spread evenly over 10 days
/// from 2026-11-01, in time order (so UUIDv7 request ids arrive in key order, as they do from a gateway).
enum EventGenerator {
    static func make(count: Int) -> [UsageEvent] {
        var random = SplitMix64(seed: 0x7011_6A7E)
        let start = 1_793_491_200.0  // 2026-11-01T00:00:00Z
        let span = 10.0 * 86_400
        let models = ["gpt-4o-mini-2024-07-18", "gpt-4o-2024-08-06", "text-embedding-3-small"]
        let deployments = ["gpt-4o-mini", "gpt-4o", "embed-small"]
        let routes = ["chat.completions", "chat.completions", "embeddings"]
        let subscriptions = (0..<50).map { SubscriptionID("team-\(pad($0, 2))-prod") }
        let teams = (0..<50).map { "team-\(pad($0, 2))" }
        let costCenters = (0..<50).map { "cc-\(1_000 + $0)" }
        return (0..<count).map { i in
            let startedAt = Date(timeIntervalSince1970: start + span * Double(i) / Double(count))
            let team = Int(random.next() % 50)
            let model = Int(random.next() % 3)
            let prompt = Int(random.next() % 4_000) + 10
            let completion = model == 2 ? 0 : Int(random.next() % 1_000) + 1
            let latency = Double(random.next() % 3_000) / 1_000 + 0.05
            return UsageEvent(
                requestID: UUIDv7.make(at: startedAt, using: &random),
                responseID: model == 2 ? nil : "chatcmpl-" + String(random.next(), radix: 36) + String(random.next(), radix: 36),
                startedAt: startedAt, endedAt: startedAt.addingTimeInterval(latency),
                subscription: subscriptions[team], product: team % 5 == 0 ? "premium" : "standard",
                team: teams[team], costCenter: costCenters[team],
                backend: team % 2 == 0 ? "openai-east" : "azure-west", deployment: deployments[model], model: models[model],
                route: routes[model], httpStatus: random.next() % 100 == 0 ? 429 : 200, streamed: model != 2 && random.next() % 2 == 0,
                usage: TokenUsage(
                    promptTokens: prompt, completionTokens: completion, cachedPromptTokens: prompt / 4,
                    reasoningTokens: completion / 8),
                usageSource: random.next() % 50 == 0 ? .estimated : .reported)
        }
    }
}

struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The reference: the same lines COPYed straight into `usage_events` and nothing else (no rollup, no duplicate
/// handling). `UsageStore.copyLine(for:)` writes `usage_events`' own columns, so the bytes are identical.
enum RawCopy {
    static let columns = [
        "request_id", "response_id", "started_at", "ended_at", "subscription_id", "product", "team", "cost_center",
        "backend", "deployment", "model", "route", "http_status", "latency_ms", "streamed", "prompt_tokens",
        "completion_tokens", "total_tokens", "cached_tokens", "reasoning_tokens", "usage_source", "source",
    ]
}

/// Zero-padded decimal.
func pad(_ value: Int, _ width: Int) -> String {
    let digits = String(value)
    return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
}
