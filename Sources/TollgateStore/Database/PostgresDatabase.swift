import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
import TollgateCore

/// The process's PostgreSQL: the pooled client and where it points. The one place outside tests where a
/// `PostgresClient` exists; the repositories (`extension PostgresDatabase` in each aggregate's file) are built from it,
/// and the composition root hands them to the engine, the gateway and the admin API as protocols.
///
/// A `Service`: the pool's run loop must be running (the application's `ServiceGroup`, or `withDatabase`) before any
/// repository is used.
public final class PostgresDatabase: Service, Sendable {
    /// Where the database is; safe to log (no password).
    public let location: DatabaseLocation
    /// The pool. `package`: visible to this package's tests (real-PostgreSQL suites), never part of the public API.
    package let client: PostgresClient
    let logger: Logger

    /// - Parameters:
    ///   - maximumConnections: the pool's size for this process.
    public init(location: DatabaseLocation, maximumConnections: Int = 20, logger: Logger) {
        self.location = location
        self.client = PostgresClient(configuration: location.clientConfiguration(maximumConnections: maximumConnections), backgroundLogger: logger)
        self.logger = logger
    }

    public func run() async {
        await client.run()
    }

    /// Runs `body` with a short-lived database whose pool runs for the duration (migrations, CLI commands, tests).
    public static func withDatabase<T: Sendable>(
        _ location: DatabaseLocation, maximumConnections: Int = 4, logger: Logger, _ body: @Sendable (PostgresDatabase) async throws -> T
    ) async throws -> T {
        let database = PostgresDatabase(location: location, maximumConnections: maximumConnections, logger: logger)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await database.run() }
            defer { group.cancelAll() }
            return try await body(database)
        }
    }

    /// LISTEN/NOTIFY between instances, on dedicated connections outside the pool.
    public var notifications: PostgresChangeNotifications {
        PostgresChangeNotifications(location: location, logger: logger)
    }
}
