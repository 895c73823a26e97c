import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
import TollgateCore
import TollgateStore

/// Runs `body` with a short-lived client whose run loop is alive for the duration (migrations, CLI commands).
public func withPostgresClient<T: Sendable>(
    _ location: DatabaseLocation, logger: Logger, _ body: @Sendable (PostgresClient) async throws -> T
) async throws -> T {
    let client = PostgresClient(configuration: location.clientConfiguration(maximumConnections: 4), backgroundLogger: logger)
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { await client.run() }
        defer { group.cancelAll() }
        return try await body(client)
    }
}

/// Where the database is for this process: `DATABASE_URL`, or the embedded cluster (started if it is not running).
public struct DatabaseResolution: Sendable {
    public var location: DatabaseLocation
    /// The embedded cluster, when this process started it (and so stops it).
    public var startedCluster: EmbeddedPostgres?

    public static func resolve(configuration: TollgateConfiguration, logger: Logger) async throws -> DatabaseResolution {
        if let database = configuration.database { return DatabaseResolution(location: database, startedCluster: nil) }
        let cluster = EmbeddedPostgres(baseDirectory: configuration.dataDirectory, logger: logger)
        let (location, startedHere) = try await cluster.start()
        return DatabaseResolution(location: location, startedCluster: startedHere ? cluster : nil)
    }
}

/// Stops the embedded cluster after every other service has stopped (it is added first, so it stops last).
struct EmbeddedPostgresService: Service {
    let cluster: EmbeddedPostgres
    let logger: Logger

    func run() async throws {
        try? await gracefulShutdown()
        do {
            try await cluster.stop()
        } catch {
            logger.error("Embedded PostgreSQL did not stop cleanly", metadata: ["error": "\(error)"])
        }
    }
}
