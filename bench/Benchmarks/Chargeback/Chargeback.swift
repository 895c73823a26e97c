// The monthly chargeback, in process: the store's query and the three exports, timed call by call against a database
// that ../../run-chargeback.sh filled with ../../chargeback/generate.sql (October 2026, 1M and then 10M usage events).
// Nothing is migrated or written here; the script migrates with the tollgate binary built from the same checkout.
// See ../../README.md.

import Benchmark
import Foundation
import Logging
import PostgresNIO
import TollgateCore
import TollgateReports
import TollgateStore

let benchmarks: @Sendable () -> Void = {
    let samples = Int(ProcessInfo.processInfo.environment["TOLLGATE_BENCH_SAMPLES"] ?? "") ?? 30
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .mallocCountTotal],
        warmupIterations: 0,  // Fixture.start runs every path once, so connections and caches are warm
        maxDuration: .seconds(300),
        maxIterations: samples
    )
    Benchmark.setup = { try await Fixture.start() }
    Benchmark.teardown = { await Fixture.stop() }

    for path in ReportPath.allCases {
        Benchmark(path.title) { benchmark in
            let fixture = try Fixture.current()
            let clock = ContinuousClock()
            let started = clock.now
            let bytes = try await path.run(fixture)
            let elapsed = clock.now - started
            blackHole(bytes)
            fixture.record(path, seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18, bytes: bytes)
        }
    }
}

/// What finance asks for: the store's facts (the SQL), and each export the CLI and the admin API produce.
enum ReportPath: String, CaseIterable {
    case facts, csvByTeam = "csv-by-team", jsonBySubscription = "json-by-subscription", focus

    var title: String {
        switch self {
        case .facts: "ChargebackStore.facts(for: 2026-10)"
        case .csvByTeam: "ChargebackReport.generate 2026-10, CSV by team"
        case .jsonBySubscription: "ChargebackReport.generate 2026-10, JSON by subscription"
        case .focus: "ChargebackReport.generate 2026-10, FOCUS"
        }
    }

    /// Runs the path once; returns the number of fact rows or export bytes, so nothing is optimised away.
    func run(_ fixture: Fixture) async throws -> Int {
        let report = ChargebackReport(.postgres(client: fixture.client))
        switch self {
        case .facts: return try await ChargebackStore(client: fixture.client).facts(for: fixture.period, logger: fixture.logger).count
        case .csvByTeam:
            return try await report.generate(period: fixture.period, groupBy: .team, format: .csv, now: fixture.now, logger: fixture.logger).count
        case .jsonBySubscription:
            return try await report.generate(period: fixture.period, groupBy: .subscription, format: .json, now: fixture.now, logger: fixture.logger)
                .count
        case .focus:
            return try await report.generate(period: fixture.period, groupBy: .team, format: .focus, now: fixture.now, logger: fixture.logger).count
        }
    }
}

final class Fixture: Sendable {
    // Written once by `start()` (the global setup hook, before any benchmark runs) and cleared by `stop()` after the
    // last one: the benchmark runner never overlaps them with a benchmark.
    nonisolated(unsafe) private static var shared: Fixture?

    let client: PostgresClient
    let runTask: Task<Void, Never>
    let logger: Logger
    let period = BillingPeriod.month("2026-10")!
    let now = Date(timeIntervalSince1970: 1_795_000_000)
    let label: String
    let summaryPath: String?

    private init(client: PostgresClient, runTask: Task<Void, Never>, logger: Logger, label: String) {
        self.client = client
        self.runTask = runTask
        self.logger = logger
        self.label = label
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
        // One connection, as the CLI has: the report's queries run one after another.
        let client = PostgresClient(configuration: location.clientConfiguration(maximumConnections: 1), backgroundLogger: logger)
        let runTask = Task { await client.run() }
        let fixture = Fixture(client: client, runTask: runTask, logger: logger, label: environment["TOLLGATE_BENCH_LABEL"] ?? "")
        // The schema must be the one this build expects (the script migrated it with the tollgate binary of this checkout).
        try await Migrator(client: client, migrations: try Migration.bundled(), logger: logger).requireCurrent()
        for path in ReportPath.allCases {
            guard try await path.run(fixture) > 0 else { throw BenchError.empty(path.title) }
        }
        shared = fixture
    }

    static func stop() async {
        shared?.runTask.cancel()
        shared = nil
    }

    /// One tab-separated line per sample, for run-chargeback.sh to turn into the results table.
    func record(_ path: ReportPath, seconds: Double, bytes: Int) {
        guard let summaryPath else { return }
        let line = [label, path.rawValue, String(format: "%.6f", seconds), String(bytes), path.title].joined(separator: "\t") + "\n"
        if !FileManager.default.fileExists(atPath: summaryPath) { _ = FileManager.default.createFile(atPath: summaryPath, contents: nil) }
        guard let handle = FileHandle(forWritingAtPath: summaryPath) else { return }
        handle.seekToEndOfFile()
        handle.write(Data(line.utf8))
        try? handle.close()
    }
}

enum BenchError: Error, CustomStringConvertible {
    case noDatabase, notStarted
    case empty(String)
    var description: String {
        switch self {
        case .noDatabase: "TOLLGATE_BENCH_DATABASE_URL is not set; run bench/run-chargeback.sh, which starts a cluster, fills it and sets it"
        case .notStarted: "the fixture was not set up"
        case .empty(let path): "\(path) returned nothing: is October 2026 generated in this database?"
        }
    }
}
