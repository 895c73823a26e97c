import ArgumentParser
import Foundation
import TollgateServer

// Stand-in until the root command's CLIDatabase lands on main: same names, DATABASE_URL only.

/// Where the database is. `--database-url` or `DATABASE_URL`.
struct DatabaseOptions: ParsableArguments {
    @Option(name: .customLong("database-url"), help: "postgres://USER:PASSWORD@HOST:5432/DATABASE (default: $DATABASE_URL)")
    var databaseURL: String?
}

enum CLIDatabase {
    static func withClient<T: Sendable>(_ options: DatabaseOptions, _ body: @Sendable (RulesAdmin.Database) async throws -> T) async throws -> T {
        guard let url = options.databaseURL ?? ProcessInfo.processInfo.environment["DATABASE_URL"] else {
            throw ValidationError("set DATABASE_URL or pass --database-url")
        }
        return try await RulesAdmin.withDatabase(url: url, body)
    }
}
