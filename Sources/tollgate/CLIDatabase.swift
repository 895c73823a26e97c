import ArgumentParser
import Foundation
import Logging
import PostgresNIO
import TollgateStore

// Stand-in until the lead's CLIDatabase.swift (embedded cluster under --data-dir) replaces this file on merge.
// It connects to --database-url or DATABASE_URL only.

struct DatabaseOptions: ParsableArguments {
    @Option(help: "PostgreSQL URL (postgres://user:pass@host:5432/db). Default: $DATABASE_URL.")
    var databaseURL: String?

    @Option(help: "Data directory of the embedded PostgreSQL (not supported by this stand-in).")
    var dataDir: String = ".tollgate"
}

enum CLIDatabase {
    static func withClient<T: Sendable>(_ options: DatabaseOptions, _ body: @Sendable (PostgresClient) async throws -> T) async throws -> T {
        guard let url = options.databaseURL ?? ProcessInfo.processInfo.environment["DATABASE_URL"] else {
            throw ValidationError("set DATABASE_URL or pass --database-url")
        }
        let location = try DatabaseLocation(url: url)
        let client = PostgresClient(configuration: location.clientConfiguration(maximumConnections: 2), backgroundLogger: CLILogger.shared)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            return try await body(client)
        }
    }
}

enum CLILogger {
    static let shared: Logger = {
        var logger = Logger(label: "tollgate")
        logger.logLevel = .warning
        return logger
    }()
}

/// A failure the CLI reports as its message alone (no usage text), exiting non-zero.
struct CLIFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
