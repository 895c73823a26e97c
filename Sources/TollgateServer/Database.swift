import Foundation
import Logging
import ServiceLifecycle
import TollgateCore
import TollgateStore

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
