import Foundation
import Logging
import PostgresNIO
import Testing
import TollgateCore
import TollgateServer
import TollgateStore

#if canImport(Glibc)
import Glibc
#endif

/// The test run's PostgreSQL: one throwaway cluster per test process, a `tollgate_template` database migrated once,
/// and a fresh clone of it for each suite (`@Suite(.freshDatabase)`).
///
/// `TOLLGATE_TEST_DATABASE_URL` points the tests at a server that is already running (what `.ci/run` does);
/// without it the first test starts a cluster of its own under the temporary directory, stopped when the process exits.
public enum TestDatabase {
    /// The database of the suite being run (set by `FreshDatabase`).
    @TaskLocal public static var name: String?

    public static let logger: Logger = {
        var logger = Logger(label: "tollgate.tests")
        logger.logLevel = ProcessInfo.processInfo.environment["TOLLGATE_TEST_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .error
        return logger
    }()

    /// The server, with the template built. Created once per process.
    public static func server() async throws -> DatabaseLocation {
        try await Cluster.shared.ready()
    }

    /// The current suite's database.
    public static func location() async throws -> DatabaseLocation {
        let server = try await server()
        guard let name else { throw TestDatabaseError.noSuiteDatabase }
        return server.with(database: name)
    }

    /// Runs `body` with a client connected to `database`, the client's run loop alive for the duration.
    public static func withClient<T: Sendable>(
        _ location: DatabaseLocation, _ body: @Sendable (PostgresClient) async throws -> T
    ) async throws -> T {
        try await PostgresDatabase.withDatabase(location, logger: logger) { database in try await body(database.client) }
    }

    /// The current suite's database, with a client.
    public static func withClient<T: Sendable>(_ body: @Sendable (PostgresClient) async throws -> T) async throws -> T {
        try await withClient(try await location(), body)
    }

    static func createFromTemplate(_ name: String) async throws {
        let server = try await server()
        _ = try await withClient(server.with(database: "postgres")) { client in
            try await client.query("CREATE DATABASE \(unescaped: name) TEMPLATE tollgate_template", logger: logger)
        }
    }

    static func drop(_ name: String) async {
        guard let server = try? await server() else { return }
        _ = try? await withClient(server.with(database: "postgres")) { client in
            try await client.query("DROP DATABASE IF EXISTS \(unescaped: name) WITH (FORCE)", logger: logger)
        }
    }
}

public enum TestDatabaseError: Error, CustomStringConvertible {
    case noSuiteDatabase
    public var description: String { "this test needs `@Suite(.freshDatabase)`" }
}

/// Starts (or finds) the cluster and builds the template database exactly once.
actor Cluster {
    static let shared = Cluster()
    private var task: Task<DatabaseLocation, any Error>?

    func ready() async throws -> DatabaseLocation {
        if let task { return try await task.value }
        let task = Task { try await Self.prepare() }
        self.task = task
        return try await task.value
    }

    private static func prepare() async throws -> DatabaseLocation {
        let server: DatabaseLocation
        if let url = ProcessInfo.processInfo.environment["TOLLGATE_TEST_DATABASE_URL"] {
            server = try DatabaseLocation(url: url)
        } else {
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tollgate-tests-\(getpid())")
            var cluster = EmbeddedPostgres(baseDirectory: directory, logger: TestDatabase.logger)
            cluster.serverSettings = ["fsync=off", "synchronous_commit=off", "full_page_writes=off", "max_connections=300"]
            cluster.syncOnInit = false
            let started = try await cluster.start()
            server = started.location
            ClusterCleanup.register(cluster)
        }
        // The template is rebuilt per run, so it always matches this build's migrations.
        _ = try await TestDatabase.withClient(server.with(database: "postgres")) { client in
            try await client.query("DROP DATABASE IF EXISTS tollgate_template WITH (FORCE)", logger: TestDatabase.logger)
            try await client.query("CREATE DATABASE tollgate_template", logger: TestDatabase.logger)
        }
        _ = try await TestDatabase.withClient(server.with(database: "tollgate_template")) { client in
            try await Migrator(client: client, migrations: try Migration.bundled(), logger: TestDatabase.logger).migrate()
        }
        return server
    }
}

/// Stops the cluster this process started, when the process exits.
enum ClusterCleanup {
    nonisolated(unsafe) static var cluster: EmbeddedPostgres?  // written once, before any test reads it; read at exit

    static func register(_ cluster: EmbeddedPostgres) {
        Self.cluster = cluster
        atexit {
            // No child processes at exit: signal the postmaster directly (SIGINT is a fast shutdown).
            guard let cluster = ClusterCleanup.cluster,
                let pidFile = try? String(contentsOf: cluster.dataDirectory.appendingPathComponent("postmaster.pid"), encoding: .utf8),
                let pid = pidFile.split(separator: "\n").first.flatMap({ Int32($0) })
            else { return }
            kill(pid, SIGINT)
        }
    }
}

/// Gives each suite (or, with `perTest`, each test) its own database, cloned from the migrated template in milliseconds.
public struct FreshDatabase: SuiteTrait, TestTrait, TestScoping {
    /// One database per test instead of one per suite.
    public var perTest = false
    public var isRecursive: Bool { perTest }

    public func provideScope(for test: Test, testCase: Test.Case?, performing body: @Sendable () async throws -> Void) async throws {
        if perTest && test.isSuite { return try await body() }
        let name = "tollgate_test_\(UInt32.random(in: .min ... .max))"  // generated here, so `unescaped:` is safe
        try await TestDatabase.createFromTemplate(name)
        do {
            try await TestDatabase.$name.withValue(name, operation: body)
        } catch {
            await TestDatabase.drop(name)
            throw error
        }
        await TestDatabase.drop(name)
    }
}

extension Trait where Self == FreshDatabase {
    /// A database of the suite's own, cloned from the migrated template.
    public static var freshDatabase: Self { .init() }
    /// A database of each test's own: for tests that each need an empty one.
    public static var freshDatabasePerTest: Self { .init(perTest: true) }
}
