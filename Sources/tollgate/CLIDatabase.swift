import ArgumentParser
import Foundation
import Logging
import TollgateServer
import TollgateStore

/// Where a CLI command finds the database: `--database-url`/`DATABASE_URL`, or the embedded cluster in `--data-dir`.
struct DatabaseOptions: ParsableArguments {
    @Option(name: .customLong("database-url"), help: ArgumentHelp(
        "PostgreSQL URL, postgres://USER:PASS@HOST:5432/DB[?sslmode=require]. Default: $DATABASE_URL, else the embedded cluster.",
        valueName: "url"))
    var databaseURL: String?

    @Option(name: .customLong("data-dir"), help: ArgumentHelp(
        "Directory of the embedded PostgreSQL cluster, usage spool and admin token. Default: $TOLLGATE_DATA_DIR or ./.tollgate.",
        valueName: "dir"))
    var dataDirectory: String?

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical. Default: $TOLLGATE_LOG_LEVEL or warning for commands, info for serve.")
    var logLevel: String?

    /// The configuration these options and the environment describe (flags win over variables).
    func configuration(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> TollgateConfiguration {
        var environment = environment
        if let databaseURL { environment["DATABASE_URL"] = databaseURL }
        if let dataDirectory { environment["TOLLGATE_DATA_DIR"] = dataDirectory }
        if let logLevel { environment["TOLLGATE_LOG_LEVEL"] = logLevel }
        do {
            return try TollgateConfiguration(environment: environment)
        } catch {
            throw CLIError(error.description)
        }
    }

    func logger(defaultLevel: Logger.Level = .warning) throws -> Logger {
        var logger = Logger(label: "tollgate")
        let explicit = logLevel ?? ProcessInfo.processInfo.environment["TOLLGATE_LOG_LEVEL"]
        logger.logLevel = try explicit.map { text in
            guard let level = Logger.Level(rawValue: text.lowercased()) else { throw CLIError("--log-level must be one of trace, debug, info, notice, warning, error, critical") }
            return level
        } ?? defaultLevel
        return logger
    }
}

enum CLIDatabase {
    /// Runs `body` against the database. With the embedded cluster, starts it if needed (stopping it again after) and
    /// brings its schema up to date; with `DATABASE_URL`, requires the schema to be current (`tollgate migrate`).
    static func withDatabase<T: Sendable>(_ options: DatabaseOptions, _ body: @Sendable (PostgresDatabase, Logger) async throws -> T) async throws -> T {
        let configuration = try options.configuration()
        let logger = try options.logger()
        let resolution = try await DatabaseResolution.resolve(configuration: configuration, logger: logger)
        defer { try? resolution.startedCluster?.stopWaiting() }  // a short-lived command: blocking here is fine
        return try await PostgresDatabase.withDatabase(resolution.location, logger: logger) { database in
            let migrator = try database.migrator()
            if configuration.database == nil { try await migrator.migrate() } else { try await migrator.requireCurrent() }
            return try await body(database, logger)
        }
    }
}

/// An error for the person at the terminal: printed as `Error: <message>`, exit status 1.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
