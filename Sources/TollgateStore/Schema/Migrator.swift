import Crypto
import Foundation
import Logging
import PostgresNIO

/// One numbered SQL file from `sql/`.
public struct Migration: Sendable, Hashable {
    public var version: Int
    public var name: String
    public var sql: String
    /// SHA-256 of the file, hex. An applied file is never edited; a changed checksum stops `migrate`.
    public var checksum: String { SHA256.hash(data: Data(sql.utf8)).map { String(format: "%02x", $0) }.joined() }

    public init(version: Int, name: String, sql: String) {
        self.version = version
        self.name = name
        self.sql = sql
    }

    /// The migrations compiled into this binary, from `sql/NNNN_name.sql`, in order.
    public static func bundled() throws -> [Migration] {
        guard let directory = Bundle.module.url(forResource: "sql", withExtension: nil) else {
            throw MigrationError.bundleMissing
        }
        return try load(from: directory)
    }

    public static func load(from directory: URL) throws -> [Migration] {
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        var migrations: [Migration] = []
        for file in files where file.hasSuffix(".sql") {
            let stem = String(file.dropLast(4))
            guard let underscore = stem.firstIndex(of: "_"), let version = Int(stem[..<underscore]) else { continue }
            let sql = try String(contentsOf: directory.appendingPathComponent(file), encoding: .utf8)
            migrations.append(Migration(version: version, name: String(stem[stem.index(after: underscore)...]), sql: sql))
        }
        migrations.sort { $0.version < $1.version }
        for (a, b) in zip(migrations, migrations.dropFirst()) where a.version == b.version {
            throw MigrationError.duplicateVersion(a.version)
        }
        return migrations
    }
}

public enum MigrationError: Error, CustomStringConvertible, Sendable {
    case bundleMissing
    case duplicateVersion(Int)
    case databaseIsNewer(databaseVersion: Int, binaryVersion: Int)
    case checksumMismatch(version: Int, name: String)
    case schemaOutOfDate(databaseVersion: Int, binaryVersion: Int)
    /// Migrations numbered below the newest applied one that the database lacks: applying them now would run them in
    /// another order than on a fresh database.
    case missingBelowApplied(missing: [Int], newestApplied: Int)

    public var description: String {
        switch self {
        case .bundleMissing: "the SQL migrations are missing from this build (Migrations resource)"
        case .duplicateVersion(let v): "two migrations share version \(v)"
        case .databaseIsNewer(let db, let bin):
            "the database schema is at version \(db) but this tollgate knows migrations up to \(bin) only; upgrade tollgate instead of running an older binary against a newer schema"
        case .checksumMismatch(let v, let name):
            "migration \(String(format: "%04d", v))_\(name).sql was edited after it was applied; applied migrations are never edited, add a new one"
        case .schemaOutOfDate(let db, let bin):
            "the database schema is at version \(db), this tollgate needs \(bin): run `tollgate migrate`"
        case .missingBelowApplied(let missing, let newest):
            "migration\(missing.count == 1 ? "" : "s") \(missing.map { String(format: "%04d", $0) }.joined(separator: ", ")) "
                + "\(missing.count == 1 ? "is" : "are") not applied but numbered below \(String(format: "%04d", newest)), the newest applied one; "
                + "a fresh database would run \(missing.count == 1 ? "it" : "them") in another order. Renumber "
                + "\(missing.count == 1 ? "it" : "them") above \(String(format: "%04d", newest)) (an applied migration is never edited or renumbered)"
        }
    }
}

/// Applies `sql/` migrations in order, each in its own transaction, recording version and checksum.
public struct Migrator: Sendable {
    public let client: PostgresClient
    public let migrations: [Migration]
    public let logger: Logger

    public init(client: PostgresClient, migrations: [Migration], logger: Logger) {
        self.client = client
        self.migrations = migrations
        self.logger = logger
    }

    public var latestVersion: Int { migrations.last?.version ?? 0 }

    /// Applies what is missing. Safe to run concurrently from several instances: an advisory lock serialises them.
    /// - Returns: the migrations applied by this call.
    @discardableResult
    public func migrate() async throws -> [Migration] {
        try await client.withConnection { connection in
            // Session-level lock on a fixed key: a second `migrate` waits here, then finds nothing to do.
            try await connection.query("SELECT pg_advisory_lock(7428190001)", logger: logger)
            do {
                let applied = try await apply(on: connection)
                try await connection.query("SELECT pg_advisory_unlock(7428190001)", logger: logger)
                return applied
            } catch {
                _ = try? await connection.query("SELECT pg_advisory_unlock(7428190001)", logger: logger)
                throw error
            }
        }
    }

    private func apply(on connection: PostgresConnection) async throws -> [Migration] {
        try await connection.query("""
            CREATE TABLE IF NOT EXISTS tollgate_schema_migrations (
                version    integer     PRIMARY KEY,
                name       text        NOT NULL,
                checksum   text        NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now())
            """, logger: logger)
        let recorded = try await appliedVersions(on: connection)
        try check(recorded)
        var applied: [Migration] = []
        for migration in migrations where recorded[migration.version] == nil {
            logger.info("Applying migration", metadata: ["migration.version": "\(migration.version)", "migration.name": "\(migration.name)"])
            try await connection.withTransaction(logger: logger) { tx in
                // postgres-nio sends one statement per query, so the file is split first.
                for statement in SQLScript.statements(in: migration.sql) {
                    try await tx.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await tx.query("""
                    INSERT INTO tollgate_schema_migrations (version, name, checksum)
                    VALUES (\(migration.version), \(migration.name), \(migration.checksum))
                    """, logger: logger)
            }
            applied.append(migration)
        }
        return applied
    }

    /// Throws unless the database is exactly at this binary's schema: what `serve` checks before taking traffic.
    public func requireCurrent() async throws {
        let recorded = try await client.withConnection { connection in
            let exists = try await connection.query("SELECT to_regclass('tollgate_schema_migrations') IS NOT NULL", logger: logger)
                .collect().first?.decode(Bool.self) ?? false
            return exists ? try await appliedVersions(on: connection) : [:]
        }
        try check(recorded)
        let current = recorded.keys.max() ?? 0
        if current < latestVersion { throw MigrationError.schemaOutOfDate(databaseVersion: current, binaryVersion: latestVersion) }
    }

    private func appliedVersions(on connection: PostgresConnection) async throws -> [Int: String] {
        var recorded: [Int: String] = [:]
        let rows = try await connection.query("SELECT version, checksum FROM tollgate_schema_migrations", logger: logger)
        for try await (version, checksum) in rows.decode((Int, String).self) {
            recorded[version] = checksum
        }
        return recorded
    }

    private func check(_ recorded: [Int: String]) throws {
        if let newest = recorded.keys.max(), newest > latestVersion {
            throw MigrationError.databaseIsNewer(databaseVersion: newest, binaryVersion: latestVersion)
        }
        for migration in migrations {
            if let checksum = recorded[migration.version], checksum != migration.checksum {
                throw MigrationError.checksumMismatch(version: migration.version, name: migration.name)
            }
        }
        // Every database runs the migrations in one order, by number: a file added below the newest applied one
        // would run last here and in its place on a fresh database.
        if let newest = recorded.keys.max() {
            let missing = migrations.map(\.version).filter { $0 < newest && recorded[$0] == nil }
            if !missing.isEmpty { throw MigrationError.missingBelowApplied(missing: missing, newestApplied: newest) }
        }
    }
}
